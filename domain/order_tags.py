"""Tags on one store order: add or remove them; the bulk action over many orders calls these same functions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Order
from db.types import utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.orders import MAX_TAGS
from domain.topics import Topic, announce
from domain.validation import Checker, unstorable

MAX_TAG_LENGTH = 40


def clean_tags(tags: Sequence[str], field: str = "tags") -> list[str]:
    """The tags trimmed and without duplicates (case-insensitively); a bad one refuses the whole list."""
    check = Checker()
    if not tags:
        check.fail((field,), "give at least one tag", ErrorCode.REQUIRED)
    if len(tags) > MAX_TAGS:
        check.fail((field,), f"at most {MAX_TAGS} tags", ErrorCode.TOO_MANY)
    cleaned: dict[str, str] = {}
    for index, tag in enumerate(tags):
        value = tag.strip()
        if unstorable(value):
            check.fail((field, str(index)), "a tag must not contain NUL characters or lone surrogates")
        elif not value or "," in value or len(value) > MAX_TAG_LENGTH:
            check.fail((field, str(index)), f"a tag is 1 to {MAX_TAG_LENGTH} characters without commas")
        else:
            cleaned.setdefault(value.casefold(), value)
    check.raise_if_any()
    return list(cleaned.values())


async def lock_order(session: AsyncSession, actor: Actor, order_id: int, field: str = "id") -> Order:
    """The order, locked and read afresh, if the actor may see it; writers of one order queue on this lock."""
    order = await session.scalar(
        select(Order)
        .where(Order.id == order_id, visible(Order, actor))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if order is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "order not found", field)
    return order


async def add_order_tags(
    session: AsyncSession, actor: Actor, order_id: int, tags: Sequence[str], *, now: datetime | None = None
) -> Order:
    """Add tags the order does not have yet; adding tags it has already changes nothing."""
    require_scope(actor, Scope.WRITE_ORDERS)
    wanted = clean_tags(tags)
    order = await lock_order(session, actor, order_id)
    present = {tag.casefold() for tag in order.tag_list}
    added = [tag for tag in wanted if tag.casefold() not in present]
    if len(order.tag_list) + len(added) > MAX_TAGS:
        raise DomainError.single(
            ErrorCode.TOO_MANY, f"an order has at most {MAX_TAGS} tags; this one would have more", "tags"
        )
    if added:
        await _changed(session, actor, order, [*order.tag_list, *added], "tags_added", added, now or utcnow())
    return order


async def remove_order_tags(
    session: AsyncSession, actor: Actor, order_id: int, tags: Sequence[str], *, now: datetime | None = None
) -> Order:
    """Remove the given tags (case-insensitively); removing tags the order lacks changes nothing."""
    require_scope(actor, Scope.WRITE_ORDERS)
    unwanted = {tag.casefold() for tag in clean_tags(tags)}
    order = await lock_order(session, actor, order_id)
    kept = [tag for tag in order.tag_list if tag.casefold() not in unwanted]
    removed = [tag for tag in order.tag_list if tag.casefold() in unwanted]
    if removed:
        await _changed(session, actor, order, kept, "tags_removed", removed, now or utcnow())
    return order


async def _changed(
    session: AsyncSession,
    actor: Actor,
    order: Order,
    tags: list[str],
    type: str,
    changed: list[str],
    now: datetime,
) -> None:
    order.tags = ",".join(tags)
    order.updated_at = now
    verb = "added" if type == "tags_added" else "removed"
    record_event(
        session,
        actor,
        shop_id=order.shop_id,
        order_id=order.id,
        type=type,
        message=f"Tags {verb}: {', '.join(changed)}",
        data={"tags": changed},
    )
    await announce(
        session,
        actor,
        Topic.ORDERS_UPDATED,
        shop_id=order.shop_id,
        node_type="Order",
        node_id=order.id,
        now=now,
    )
