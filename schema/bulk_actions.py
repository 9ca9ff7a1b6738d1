"""Bulk actions over matching orders, and the single-order tag mutations they share their use cases with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from db import models
from domain import bulk_actions as bulk_cases
from domain import order_tags as tag_cases
from domain.access import visible
from domain.actors import Actor, Scope
from schema.context import context_of, require_scope
from schema.errors import UserError, input_id, run_on_id, run_use_case
from schema.ids import id_argument
from schema.pagination import After, Connection, First, PageRequest, int_sort, keyset_page
from schema.types import BulkAction, BulkActionType, CancellationReason, ExportFormat, Order


@strawberry.input
class OrdersBulkActionInput:
    action: BulkActionType  # type: ignore[valid-type]
    query: str | None = strawberry.field(
        default=None, description="The search syntax of `orders(query:)`; with `ids`, both must match."
    )
    ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Orders to act on.")
    tags: list[str] = strawberry.field(default_factory=list, description="For ADD_TAGS and REMOVE_TAGS.")
    reason: CancellationReason | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="For CANCEL_UNSHIPPED."
    )
    message: str | None = strawberry.field(
        default=None, description="For CANCEL_UNSHIPPED: sent to the supplier; required with reason OTHER."
    )
    format: ExportFormat = models.ExportFormat.CSV  # type: ignore[valid-type]
    email: str | None = strawberry.field(default=None, description="For EXPORT: where to send the file.")


@strawberry.type
class OrdersBulkActionPayload:
    bulk_action: BulkAction | None
    user_errors: list[UserError]


@strawberry.input
class OrderTagsInput:
    id: strawberry.ID
    tags: list[str]


@strawberry.type
class OrderTagsPayload:
    order: Order | None
    user_errors: list[UserError]


def _order_ids(ids: list[strawberry.ID] | None) -> tuple[list[int] | None, list[UserError]]:
    if ids is None:
        return None, []
    found: list[int] = []
    for index, gid in enumerate(ids):
        pk, errors = input_id(gid, "Order", "ids", str(index))
        if pk is None:
            return None, errors
        found.append(pk)
    return found, []


@strawberry.type
class BulkActionsQuery:
    @strawberry.field(description="A bulk action with its progress and each order's outcome.")
    async def bulk_action(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The bulk action's id (gid://dropdesk/BulkAction/…)."),
        ],
    ) -> BulkAction | None:
        require_scope(info, Scope.READ_ORDERS)
        _, pk = id_argument(id, "BulkAction", "id")
        row = await context_of(info).loaders.bulk_action.load(pk)
        return BulkAction.of(row) if row else None

    @strawberry.field(description="The shop's bulk actions, newest first.")
    async def bulk_actions(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[BulkAction]:
        actor = require_scope(info, Scope.READ_ORDERS)
        statement = select(models.BulkAction).where(visible(models.BulkAction, actor))
        return await keyset_page(
            context_of(info),
            statement,
            int_sort(models.BulkAction.id),
            models.BulkAction.id,
            PageRequest(first, after, None, None, reverse=True),
            to_node=BulkAction.of,
        )


@strawberry.type
class BulkActionsMutation:
    @strawberry.mutation(
        description="Apply one action to every order matching `query` and/or `ids`, in the background; follow "
        "it with `bulkAction(id)`. An order already done is never done twice, even when the job is retried."
    )
    async def orders_bulk_action(
        self,
        info: Info,
        input: Annotated[OrdersBulkActionInput, strawberry.argument(description="The fields of the change.")],
    ) -> OrdersBulkActionPayload:
        action = models.BulkActionKind(input.action)
        require_scope(
            info, Scope.WRITE_EXPORTS if action is models.BulkActionKind.EXPORT else Scope.WRITE_ORDERS
        )
        ids, errors = _order_ids(input.ids)
        if errors:
            return OrdersBulkActionPayload(bulk_action=None, user_errors=errors)
        request = bulk_cases.BulkActionRequest(
            action=action,
            query=input.query,
            order_ids=ids,
            tags=input.tags,
            reason=input.reason,
            message=input.message,
            format=input.format,
            email=input.email,
        )
        row, errors = await run_use_case(
            info, lambda session, actor: bulk_cases.create_bulk_action(session, actor, request)
        )
        return OrdersBulkActionPayload(bulk_action=BulkAction.of(row) if row else None, user_errors=errors)

    @strawberry.mutation(description="Add tags to an order; tags it already has are left as they are.")
    async def order_tags_add(
        self,
        info: Info,
        input: Annotated[OrderTagsInput, strawberry.argument(description="The fields of the change.")],
    ) -> OrderTagsPayload:
        return await _change_tags(info, input, tag_cases.add_order_tags)

    @strawberry.mutation(description="Remove tags from an order (case-insensitively).")
    async def order_tags_remove(
        self,
        info: Info,
        input: Annotated[OrderTagsInput, strawberry.argument(description="The fields of the change.")],
    ) -> OrderTagsPayload:
        return await _change_tags(info, input, tag_cases.remove_order_tags)


async def _change_tags(
    info: Info,
    input: OrderTagsInput,
    use_case: Callable[[AsyncSession, Actor, int, Sequence[str]], Awaitable[models.Order]],
) -> OrderTagsPayload:
    require_scope(info, Scope.WRITE_ORDERS)
    row, errors = await run_on_id(
        info, input.id, "Order", "id", lambda session, actor, pk: use_case(session, actor, pk, input.tags)
    )
    return OrderTagsPayload(order=Order.of(row) if row else None, user_errors=errors)
