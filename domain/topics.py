"""Changes a shop's other systems may subscribe to: outbound webhook topics, announced by the use cases.

A use case that changes an object with a topic calls ``announce`` in its transaction; subscribers (outbound
webhooks, live subscriptions) react to ``TopicChanged`` through ``domain.reactions`` without the use case
knowing about them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Order
from domain.actors import Actor
from domain.reactions import DomainEvent, publish


class Topic(enum.StrEnum):
    ORDERS_CREATED = "orders/created"
    ORDERS_UPDATED = "orders/updated"
    SUPPLIER_ORDERS_UPDATED = "supplier_orders/updated"
    CANCELLATION_REQUESTS_CREATED = "cancellation_requests/created"
    CANCELLATION_REQUESTS_DECIDED = "cancellation_requests/decided"
    DISPUTES_CREATED = "disputes/created"
    DISPUTES_UPDATED = "disputes/updated"
    RETURNS_UPDATED = "returns/updated"
    REFUNDS_CREATED = "refunds/created"
    EXPORTS_FINISHED = "exports/finished"


@dataclass(frozen=True)
class TopicChanged(DomainEvent):
    """An object with a topic changed: ``node_type`` is its GraphQL type name, ``node_id`` its primary key."""

    topic: Topic
    node_type: str
    node_id: int


async def announce(
    session: AsyncSession,
    actor: Actor,
    topic: Topic,
    *,
    shop_id: int,
    node_type: str,
    node_id: int,
    now: datetime,
) -> None:
    await publish(
        session,
        actor,
        TopicChanged(shop_id=shop_id, occurred_at=now, topic=topic, node_type=node_type, node_id=node_id),
    )


async def announce_order_updated(session: AsyncSession, actor: Actor, order: Order, now: datetime) -> None:
    await announce(
        session,
        actor,
        Topic.ORDERS_UPDATED,
        shop_id=order.shop_id,
        node_type="Order",
        node_id=order.id,
        now=now,
    )
