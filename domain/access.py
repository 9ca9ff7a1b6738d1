"""Tenancy in one place: which rows of each model an actor may see.

Every read of a tenant table goes through ``visible``; a row outside it answers exactly as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, select, true

from db.models import OrderLine, Package, Shop, Supplier, SupplierOrder
from domain.actors import Actor


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
    if model is OrderLine:
        return shop_clause & OrderLine.supplier_order_id.in_(_own_supplier_orders(actor))
    if model is Package:
        return shop_clause & Package.supplier_order_id.in_(_own_supplier_orders(actor))
    if model is Supplier:
        return shop_clause & (Supplier.id == actor.supplier_id)
    # Orders, their timeline, tokens and everything else belong to the merchant alone.
    return false()
