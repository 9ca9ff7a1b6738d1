"""The order timeline: every state change writes an OrderEvent in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OrderEvent
from db.types import utcnow
from domain.actors import Actor


def record_event(
    session: AsyncSession,
    actor: Actor,
    *,
    shop_id: int,
    order_id: int,
    type: str,
    message: str,
    supplier_order_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> OrderEvent:
    event = OrderEvent(
        shop_id=shop_id,
        order_id=order_id,
        supplier_order_id=supplier_order_id,
        type=type,
        actor_kind=actor.kind,
        actor_name=actor.name,
        message=message,
        data=data or {},
        created_at=utcnow(),
    )
    session.add(event)
    return event
