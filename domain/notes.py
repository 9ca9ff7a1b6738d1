"""Notes on orders: staff write them on the order's timeline; a SUPPLIER note on a supplier order is shown to
that supplier (and announced with the supplier order), a STAFF note never leaves the merchant."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from db.id_lists import among, rows_among
from db.models import NoteVisibility, OrderNote, SupplierOrder
from db.types import utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.orders import lock_order
from domain.topics import Topic, announce
from domain.validation import Checker, unstorable

MAX_BODY_LENGTH = 5000
EXCERPT = 200


@dataclass(frozen=True)
class NoteInput:
    order_id: int
    body: str
    visibility: NoteVisibility = NoteVisibility.STAFF
    supplier_order_id: int | None = None


async def add_note(
    session: AsyncSession, actor: Actor, data: NoteInput, *, now: datetime | None = None
) -> OrderNote:
    require_scope(actor, Scope.WRITE_ORDERS)
    check = Checker()
    body = data.body.strip()
    if unstorable(body):
        check.fail(("body",), "body must not contain NUL characters or lone surrogates")
    else:
        check.text(("body",), body, max_length=MAX_BODY_LENGTH, required=True)
    if data.visibility is NoteVisibility.SUPPLIER and data.supplier_order_id is None:
        check.fail(("supplierOrderId",), "a SUPPLIER note is written on a supplier order", ErrorCode.REQUIRED)
    check.raise_if_any()
    now = now or utcnow()
    order = await lock_order(session, actor, data.order_id, field="orderId")
    supplier_order = None
    if data.supplier_order_id is not None:
        supplier_order = await session.scalar(
            select(SupplierOrder).where(
                SupplierOrder.id == data.supplier_order_id,
                SupplierOrder.order_id == order.id,
                visible(SupplierOrder, actor),
            )
        )
        if supplier_order is None:
            raise DomainError.single(
                ErrorCode.NOT_FOUND, "supplier order not found on this order", "supplierOrderId"
            )
    note = OrderNote(
        shop_id=order.shop_id,
        order_id=order.id,
        supplier_order_id=supplier_order.id if supplier_order else None,
        visibility=data.visibility,
        body=body,
        author_name=actor.name,
        created_at=now,
    )
    session.add(note)
    await session.flush()
    order.updated_at = now
    excerpt = body if len(body) <= EXCERPT else body[: EXCERPT - 1] + "…"
    where = f" on AliExpress order {supplier_order.aliexpress_order_id}" if supplier_order else ""
    record_event(
        session,
        actor,
        shop_id=order.shop_id,
        order_id=order.id,
        supplier_order_id=note.supplier_order_id,
        type="note_added",
        message=f"{data.visibility.value.capitalize()} note by {actor.name}{where}: {excerpt}",
        data={"noteId": note.id, "visibility": data.visibility.value},
    )
    if supplier_order is not None and data.visibility is NoteVisibility.SUPPLIER:
        supplier_order.updated_at = now
        await announce(
            session,
            actor,
            Topic.SUPPLIER_ORDERS_UPDATED,
            shop_id=order.shop_id,
            node_type="SupplierOrder",
            node_id=supplier_order.id,
            now=now,
        )
    return note


async def delete_note(
    session: AsyncSession, actor: Actor, note_id: int, *, now: datetime | None = None
) -> int:
    """Any staff token of the shop that wrote the note may delete it; the timeline keeps that it was deleted."""
    require_scope(actor, Scope.WRITE_ORDERS)
    order_id = await session.scalar(
        select(OrderNote.order_id).where(OrderNote.id == note_id, visible(OrderNote, actor))
    )
    if order_id is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "note not found", "id")
    await lock_order(session, actor, order_id)
    note = await session.scalar(
        select(OrderNote)
        .where(OrderNote.id == note_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if note is None:  # deleted by a concurrent request while this one waited for the order
        raise DomainError.single(ErrorCode.NOT_FOUND, "note not found", "id")
    now = now or utcnow()
    await session.delete(note)
    record_event(
        session,
        actor,
        shop_id=note.shop_id,
        order_id=note.order_id,
        supplier_order_id=note.supplier_order_id,
        type="note_deleted",
        message=f"{note.visibility.value.capitalize()} note by {note.author_name} deleted by {actor.name}",
        data={"noteId": note.id, "visibility": note.visibility.value},
    )
    if note.supplier_order_id is not None and note.visibility is NoteVisibility.SUPPLIER:
        await announce(
            session,
            actor,
            Topic.SUPPLIER_ORDERS_UPDATED,
            shop_id=note.shop_id,
            node_type="SupplierOrder",
            node_id=note.supplier_order_id,
            now=now,
        )
    return note_id


@functools.cache
def _notes_text_statement(dialect: str) -> Any:
    return (
        select(
            OrderNote.order_id,
            type_coerce(OrderNote.visibility, String),
            OrderNote.author_name,
            OrderNote.body,
        )
        .where(among(OrderNote.order_id, dialect))
        .order_by(OrderNote.order_id, OrderNote.id)
    )


async def notes_text_by_order(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, str]:
    """Every note of each order as one text, oldest first, for the Notes column of exports."""
    statement = _notes_text_statement(session.get_bind().dialect.name)
    found: dict[int, list[str]] = defaultdict(list)
    # Straight from the driver, the ids as one parameter: an export asks this for a thousand orders at a time.
    for order_id, visibility, author, body in await rows_among(
        await session.connection(), statement, order_ids
    ):
        found[order_id].append(f"[{visibility.lower()}] {author}: {body}")
    return {order_id: "\n".join(lines) for order_id, lines in found.items()}


async def supplier_notes_by_supplier_order(
    session: AsyncSession, supplier_order_ids: Sequence[int]
) -> dict[int, list[dict[str, str]]]:
    """The SUPPLIER notes of each supplier order, oldest first, as a payload for its supplier carries them
    (``supplier_orders/updated``); STAFF notes are never among them."""
    statement = (
        select(OrderNote)
        .where(
            OrderNote.supplier_order_id.in_(supplier_order_ids),
            OrderNote.visibility == NoteVisibility.SUPPLIER,
        )
        .order_by(OrderNote.supplier_order_id, OrderNote.id)
    )
    found: dict[int, list[dict[str, str]]] = defaultdict(list)
    for note in (await session.scalars(statement)).all():
        assert note.supplier_order_id is not None
        found[note.supplier_order_id].append(
            {"body": note.body, "authorName": note.author_name, "createdAt": note.created_at.isoformat()}
        )
    return dict(found)
