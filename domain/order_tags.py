"""Tags on one store order: add or remove them; the bulk action over many orders calls these same functions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Order
from db.types import utcnow
from domain.access import require_scope
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.orders import MAX_TAGS, lock_order
from domain.topics import announce_order_updated
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


async def add_order_tags(
    session: AsyncSession, actor: Actor, order_id: int, tags: Sequence[str], *, now: datetime | None = None
) -> Order:
    """Add tags the order does not have yet; adding tags it has already changes nothing."""
    return await _change_order_tags(session, actor, order_id, tags, adding=True, now=now)


async def remove_order_tags(
    session: AsyncSession, actor: Actor, order_id: int, tags: Sequence[str], *, now: datetime | None = None
) -> Order:
    """Remove the given tags (case-insensitively); removing tags the order lacks changes nothing."""
    return await _change_order_tags(session, actor, order_id, tags, adding=False, now=now)


async def _change_order_tags(
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    tags: Sequence[str],
    *,
    adding: bool,
    now: datetime | None,
) -> Order:
    """Add or remove tags under the order's lock; an event and an announcement only when the tags change."""
    require_scope(actor, Scope.WRITE_ORDERS)
    given = {tag.casefold(): tag for tag in clean_tags(tags)}
    order = await lock_order(session, actor, order_id)
    present = order.tag_list
    if adding:
        folded = {tag.casefold() for tag in present}
        changed = [tag for key, tag in given.items() if key not in folded]
        result = [*present, *changed]
        if len(result) > MAX_TAGS:
            raise DomainError.single(
                ErrorCode.TOO_MANY, f"an order has at most {MAX_TAGS} tags; this one would have more", "tags"
            )
    else:
        changed = [tag for tag in present if tag.casefold() in given]
        result = [tag for tag in present if tag.casefold() not in given]
    if not changed:
        return order
    now = now or utcnow()
    order.tags = ",".join(result)
    order.updated_at = now
    record_event(
        session,
        actor,
        shop_id=order.shop_id,
        order_id=order.id,
        type="tags_added" if adding else "tags_removed",
        message=f"Tags {'added' if adding else 'removed'}: {', '.join(changed)}",
        data={"tags": changed},
    )
    await announce_order_updated(session, actor, order, now)
    return order
