"""GraphQL subscriptions (graphql-transport-ws at /graphql): live order events, and the helpers to add more.

A subscription field waits for committed change notices on a topic (``db.live``), or polls, and reads what
changed through the same tenancy rules as every query. Between two results it drops its database session,
so a long-lived subscription holds no transaction open. To add one, e.g. an export's progress::

    @strawberry.subscription
    async def export_progress(self, info: Info, id: strawberry.ID) -> AsyncGenerator[Export, None]:
        async with aclosing(changes(info, f"export:{pk}", poll_every=1.0)) as notices:
            async for _ in notices:
                row = ...  # read it as the viewer may see it
                yield Export.of(row)
                if row.finished:
                    return

and merge its class into ``Subscription`` in ``schema.root``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import SchemaExtension
from strawberry.types import Info
from strawberry.types.graphql import OperationType

from db import models
from db.live import listen, order_events_topic
from domain import bulk_actions as bulk_action_cases
from domain import exports as export_cases
from domain.access import visible
from domain.actors import Scope
from schema.context import Context, context_of, forbidden, require_scope
from schema.ids import id_argument
from schema.types import BulkAction, Export, OrderEvent

R = TypeVar("R")

MAX_EVENTS_PER_NOTICE = 1000
# Exports and bulk actions write their progress in batches; a subscriber looks that often.
PROGRESS_POLL_SECONDS = 0.5


@dataclass
class SocketContext(Context):
    """The context of one WebSocket connection; its actor is set once ``connection_init`` authenticates.

    A connection lives for hours: each read takes a short session of its own, so that no transaction (and on
    SQLite no stale snapshot) is held between the operations and results it serves.
    """

    connection_params: dict[str, Any] | None = None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self._lock, self.database.read() as session:
            yield session


async def changes(
    info: Info[Any, Any], topic: str, *, poll_every: float | None = None
) -> AsyncGenerator[list[int], None]:
    """Ids announced on ``topic`` as they are committed; with ``poll_every``, also an empty list that often.

    The listener is registered before the first value is asked for, so a caller that reads the current state
    first misses nothing. Before waiting again, the connection's session is released.
    """
    context = context_of(info)
    async with listen(context.database.url, topic) as queue:
        yield []  # read the current state now, knowing that later changes are queued
        while True:
            context.forget_loaded()
            await context.close()
            try:
                if poll_every is None:
                    ids = await queue.get()
                else:
                    ids = await asyncio.wait_for(queue.get(), timeout=poll_every)
            except TimeoutError:
                ids = []
            while not queue.empty():
                ids = [*ids, *queue.get_nowait()]
            yield ids


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent over plain HTTP gets a clear error instead of a half-run stream."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.operation_type is OperationType.SUBSCRIPTION and not isinstance(
            context.context, SocketContext
        ):
            raise GraphQLError(
                "subscriptions run over WebSocket: connect to /graphql with the graphql-transport-ws protocol",
                extensions={"code": "BAD_REQUEST"},
            )
        yield


def _not_found(what: str) -> GraphQLError:
    return GraphQLError(f"{what} not found", extensions={"code": "NOT_FOUND"})


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        description="The viewer's shop's order events as they are committed, for every order or one."
    )
    async def order_events(
        self,
        info: Info,
        order_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only this order's events (gid://dropdesk/Order/…); all when left out."
            ),
        ] = None,
    ) -> AsyncGenerator[OrderEvent, None]:
        actor = require_scope(info, Scope.READ_ORDERS)
        if actor.shop_id is None:
            raise forbidden("orderEvents streams one shop's events: use a merchant token")
        context = context_of(info)
        order_pk = None
        if order_id is not None:
            order_pk = id_argument(order_id, "Order", "orderId")[1]
            async with context.reading() as session:
                found = await session.scalar(
                    select(models.Order.id).where(models.Order.id == order_pk, visible(models.Order, actor))
                )
            if found is None:
                raise _not_found("order")
        # Closed with the subscription, so that its listener goes at once.
        async with aclosing(changes(info, order_events_topic(actor.shop_id))) as notices:
            async for ids in notices:
                if not ids:
                    continue
                statement = (
                    select(models.OrderEvent)
                    .where(
                        models.OrderEvent.id.in_(ids[:MAX_EVENTS_PER_NOTICE]),
                        visible(models.OrderEvent, actor),
                    )
                    .order_by(models.OrderEvent.id)
                )
                if order_pk is not None:
                    statement = statement.where(models.OrderEvent.order_id == order_pk)
                async with context.reading() as session:
                    rows = list(await session.scalars(statement))
                for row in rows:
                    yield OrderEvent.of(row)

    @strawberry.subscription(
        description="An export as it runs: a result each time its status or progress changes, the last one "
        "when it has finished (SUCCEEDED, FAILED or EXPIRED)."
    )
    async def export_progress(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The export's id (gid://dropdesk/Export/…).")
        ],
    ) -> AsyncGenerator[Export, None]:
        actor = require_scope(info, Scope.WRITE_EXPORTS)
        pk = id_argument(id, "Export", "id")[1]
        async for row in _progress(
            info,
            f"export:{pk}",
            lambda session: export_cases.get_export(session, actor, pk),
            lambda row: (row.status, row.rows_done, row.rows_total),
            lambda row: row.status in export_cases.FINISHED,
            "export",
        ):
            yield Export.of(row)

    @strawberry.subscription(
        description="A bulk action as it runs: a result each time its status or progress changes, the last one "
        "when it has finished (SUCCEEDED or FAILED)."
    )
    async def bulk_action_progress(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The bulk action's id (gid://dropdesk/BulkAction/…)."),
        ],
    ) -> AsyncGenerator[BulkAction, None]:
        actor = require_scope(info, Scope.READ_ORDERS)
        pk = id_argument(id, "BulkAction", "id")[1]
        async for row in _progress(
            info,
            f"bulk_action:{pk}",
            lambda session: bulk_action_cases.get_bulk_action(session, actor, pk),
            lambda row: (row.status, row.done, row.total),
            lambda row: row.status in (models.BulkActionStatus.SUCCEEDED, models.BulkActionStatus.FAILED),
            "bulk action",
        ):
            yield BulkAction.of(row)


async def _progress(
    info: Info,
    topic: str,
    read: Callable[[AsyncSession], Awaitable[R | None]],
    state_of: Callable[[R], tuple[object, ...]],
    finished: Callable[[R], bool],
    what: str,
) -> AsyncGenerator[R, None]:
    """A long-running record each time its state changes, until it has finished; NOT_FOUND once it is gone."""
    context = context_of(info)
    last: tuple[object, ...] | None = None
    async with aclosing(changes(info, topic, poll_every=PROGRESS_POLL_SECONDS)) as notices:
        async for _ in notices:
            async with context.reading() as session:
                row = await read(session)
            if row is None:
                raise _not_found(what)
            state = state_of(row)
            if state != last:
                last = state
                yield row
            if finished(row):
                return
