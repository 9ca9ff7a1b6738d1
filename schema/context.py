"""Per-request context: the actor, one database session shared under a lock, and the DataLoaders."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from config.settings import Settings
from db.engine import Database
from domain.actors import Actor
from schema.loaders import Loaders

# True while a compiled plan (schema/plan.py) answers the operation this task runs: the plan loads the children
# it reads itself. Per task rather than on the Context: a WebSocket's operations share one and may run at once.
children_loaded_by_plan: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "children_loaded_by_plan", default=False
)


@dataclass
class Context:
    actor: Actor
    database: Database
    settings: Settings
    request_id: str
    request: Any = None
    response: Any = None
    _session: AsyncSession | None = None
    # Sibling fields resolve concurrently; one AsyncSession must not run two statements at once.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _loaders: Loaders | None = None
    # Set once a compiled plan has answered the operation (schema/plan.py).
    answered_by_plan: bool = False

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self._lock:
            if self._session is None:
                self._session = self.database.read_session()
            yield self._session

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.actor, self.reading)
        return self._loaders

    def forget_loaded(self) -> None:
        """Drop cached loads after a mutation so its payload shows the committed state."""
        self._loaders = None
        if self._session is not None:
            self._session.expunge_all()

    async def read_again(self) -> None:
        """Start the request's reads afresh (after a failed statement PostgreSQL refuses the rest of its
        transaction), with nothing loaded so far kept."""
        self.forget_loaded()
        if self._session is not None:
            async with self._lock:
                await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def context_of(info: Info[Any, Any]) -> Context:
    return info.context  # type: ignore[no-any-return]


def forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def require_scope(info: Info[Any, Any], scope: str) -> Actor:
    """The actor, when it is a merchant holding ``scope`` (or an admin)."""
    actor = context_of(info).actor
    if actor.is_admin or (actor.is_merchant and actor.has_scope(scope)):
        return actor
    raise forbidden(f"this field needs a merchant token with the {scope} scope")


def require_reader(info: Info[Any, Any]) -> Actor:
    """Suppliers read what is addressed to them; merchants need read_orders."""
    actor = context_of(info).actor
    return actor if actor.is_supplier else require_scope(info, "read_orders")


def require_supplier(info: Info[Any, Any]) -> Actor:
    actor = context_of(info).actor
    if not actor.is_supplier:
        raise forbidden("this mutation is for supplier tokens")
    return actor


def require_merchant_data(info: Info[Any, Any]) -> None:
    """Retail prices, customers and timelines are the merchant's alone."""
    actor = context_of(info).actor
    if actor.is_supplier:
        raise forbidden("suppliers do not see the merchant's prices, customers or timeline")
