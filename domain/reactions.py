"""Domain events: how one subdomain reacts to another's change without importing it.

A use case announces what happened with ``await publish(session, actor, event)``. Every handler registered
for that event's type runs at once, in the caller's session and transaction, so a reaction commits or rolls
back together with the change that caused it. Handlers live in the subdomain that reacts and register with
``@reacts_to(EventType)``; the event types live in the subdomain that announces them. So the arrows point
from the reacting subdomain to the announcing one, never back.

``domain.subdomains`` imports every subdomain module, which registers their handlers; the edges (app,
worker, CLI) import it once. Publishing before that is a programming error and fails loudly rather than
silently skipping reactions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to a shop's data; subclasses say what."""

    shop_id: int
    occurred_at: datetime


E = TypeVar("E", bound=DomainEvent)
Handler = Callable[[AsyncSession, Actor, Any], Awaitable[None]]

_handlers: dict[type[DomainEvent], list[Handler]] = defaultdict(list)
_subdomains_loaded = False


def reacts_to(event_type: type[E]) -> Callable[[Callable[[AsyncSession, Actor, E], Awaitable[None]]], Any]:
    """Register the decorated coroutine as a reaction to ``event_type`` (and to its subclasses)."""

    def register(
        function: Callable[[AsyncSession, Actor, E], Awaitable[None]],
    ) -> Callable[[AsyncSession, Actor, E], Awaitable[None]]:
        _handlers[event_type].append(function)
        return function

    return register


def mark_subdomains_loaded() -> None:
    global _subdomains_loaded
    _subdomains_loaded = True


async def publish(session: AsyncSession, actor: Actor, event: DomainEvent) -> None:
    """Run every reaction to ``event`` now, inside the caller's transaction, in registration order."""
    if not _subdomains_loaded:
        raise RuntimeError("import domain.subdomains before running use cases: reactions are not registered")
    for event_type in type(event).__mro__:
        for handler in _handlers.get(event_type, ()):  # type: ignore[call-overload]
            await handler(session, actor, event)
