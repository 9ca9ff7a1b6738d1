"""Tenancy in one place: which rows of each model an actor may see.

Every read of a tenant table goes through ``visible``; a row outside it answers as if it did not exist.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    CancellationMessage,
    CancellationRequest,
    Dispute,
    DisputeAttachment,
    DisputeMessage,
    NoteVisibility,
    OrderLine,
    OrderNote,
    Package,
    Shop,
    Supplier,
    SupplierOrder,
    SupplierRefund,
)
from domain.actors import Actor
from domain.errors import DomainError, ErrorCode

# Rows a supplier shares with the merchant because they hang off one of its own supplier orders.
SHARED_BY_SUPPLIER_ORDER: tuple[Any, ...] = (OrderLine, Package, CancellationRequest, SupplierRefund, Dispute)


def _own_supplier_orders(actor: Actor) -> Any:
    return select(SupplierOrder.id).where(
        SupplierOrder.shop_id == actor.shop_id, SupplierOrder.supplier_id == actor.supplier_id
    )


def visible(model: type[Any], actor: Actor) -> ColumnElement[bool]:
    """The WHERE clause limiting ``model`` to what ``actor`` may read."""
    if actor.is_admin:
        return true()
    if actor.shop_id is None:
        return false()
    if model is Shop:
        return false() if actor.is_supplier else Shop.id == actor.shop_id
    shop_clause: ColumnElement[bool] = model.shop_id == actor.shop_id
    if not actor.is_supplier:
        return shop_clause
    # A supplier sees only what is addressed to it, never the merchant's customers, prices or timeline.
    if model is SupplierOrder:
        return shop_clause & (SupplierOrder.supplier_id == actor.supplier_id)
    if model is Supplier:
        return shop_clause & (Supplier.id == actor.supplier_id)
    if model in SHARED_BY_SUPPLIER_ORDER:
        return shop_clause & model.supplier_order_id.in_(_own_supplier_orders(actor))
    if model is CancellationMessage:
        # Both parties read the whole thread of a request they may see.
        requests = select(CancellationRequest.id).where(visible(CancellationRequest, actor))
        return shop_clause & CancellationMessage.request_id.in_(requests)
    if model in (DisputeMessage, DisputeAttachment):
        # Both parties read the whole thread of a dispute they may see, evidence included.
        disputes = select(Dispute.id).where(visible(Dispute, actor))
        return shop_clause & model.dispute_id.in_(disputes)
    if model is OrderNote:
        # Only notes meant for the supplier, and only on its own supplier orders; STAFF notes never.
        return (
            shop_clause
            & (OrderNote.visibility == NoteVisibility.SUPPLIER)
            & OrderNote.supplier_order_id.in_(_own_supplier_orders(actor))
        )
    # Orders, their timeline, tokens and everything else belong to the merchant alone.
    return false()


def require_scope(actor: Actor, scope: str) -> None:
    """Merchant use cases need a merchant token holding the scope; the API checks first, this is the rule."""
    if not actor.is_merchant or not actor.has_scope(scope):
        raise DomainError.single(ErrorCode.FORBIDDEN, f"this action needs a merchant token with {scope}")


Row = TypeVar("Row")


async def lock_visible(
    session: AsyncSession, model: type[Row], actor: Actor, row_id: int, noun: str, field: str = "id"
) -> Row:
    """The row, locked and read afresh, if ``actor`` may see it (NOT_FOUND on ``field`` otherwise): writers of
    one row queue on this lock and each then sees the others' changes."""
    statement = (
        select(model)
        .where(model.id == row_id, visible(model, actor))  # type: ignore[attr-defined]
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row: Row | None = (await session.scalars(statement)).one_or_none()
    if row is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, f"{noun} not found", field)
    return row
