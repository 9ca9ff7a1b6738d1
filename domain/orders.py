"""Store orders: bringing them in (with the supplier orders behind them) and keeping their status derived."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from db.models import (
    Dispute,
    FinancialStatus,
    Order,
    OrderLine,
    OrderStatus,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
)
from db.models.orders import email_domain
from db.types import utcnow
from domain.access import lock_visible, require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import ErrorCode
from domain.events import record_event
from domain.supplier_orders import PackageInput, apply_packages, check_packages
from domain.topics import Topic, announce
from domain.validation import Checker

MAX_ORDERS_PER_IMPORT = 100
MAX_LINES_PER_ORDER = 250
MAX_QUANTITY = 10_000
MAX_TAGS = 40
# Rows per multi-row INSERT, well under the bound-parameter limits of both databases.
INSERT_BATCH = 500


@dataclass(frozen=True)
class LineInput:
    title: str
    quantity: int
    unit_price: Decimal
    variant_title: str | None = None
    sku: str | None = None
    image_url: str | None = None
    supplier_id: int | None = None
    aliexpress_order_id: str | None = None


@dataclass(frozen=True)
class SupplierOrderInput:
    aliexpress_order_id: str
    cost: Decimal
    status: SupplierOrderStatus = SupplierOrderStatus.PLACE_ORDER_SUCCESS
    end_reason: str | None = None
    paid_at: datetime | None = None
    packages: Sequence[PackageInput] = ()


@dataclass(frozen=True)
class OrderInput:
    number: str
    currency: str
    lines: Sequence[LineInput]
    customer_name: str = ""
    customer_email: str | None = None
    customer_phone: str | None = None
    shipping_address: dict[str, Any] | None = None
    shipping: Decimal = Decimal(0)
    tags: Sequence[str] = ()
    note: str | None = None
    created_at: datetime | None = None
    supplier_orders: Sequence[SupplierOrderInput] = field(default_factory=tuple)


@dataclass(frozen=True)
class ImportResult:
    order: Order
    created: bool


def number_value(number: str) -> int:
    digits = re.sub(r"\D", "", number)
    return int(digits[:18]) if digits else 0


# Each part of a shipping address: its key as stored, its field in the API, its longest length.
ADDRESS_PARTS = (
    ("name", "name", 200),
    ("address1", "address1", 255),
    ("address2", "address2", 255),
    ("city", "city", 100),
    ("province", "province", 100),
    ("zip", "zip", 20),
    ("country_code", "countryCode", 10),
    ("phone", "phone", 40),
)


def _check_order(check: Checker, path: tuple[str | int, ...], data: OrderInput, suppliers: set[int]) -> None:
    check.text((*path, "number"), data.number, max_length=40, required=True)
    currency_ok = check.currency((*path, "currencyCode"), data.currency)
    currency = data.currency if currency_ok else None
    check.text((*path, "customer", "name"), data.customer_name, max_length=200)
    check.email((*path, "customer", "email"), data.customer_email)
    check.text((*path, "customer", "phone"), data.customer_phone, max_length=40)
    check.text((*path, "note"), data.note, max_length=5000)
    address = data.shipping_address or {}
    for key, field_name, max_length in ADDRESS_PARTS:
        check.text((*path, "shippingAddress", field_name), address.get(key), max_length=max_length)
    check.amount((*path, "shippingPrice"), data.shipping, currency)
    if len(data.tags) > MAX_TAGS:
        check.fail((*path, "tags"), f"at most {MAX_TAGS} tags", ErrorCode.TOO_MANY)
    for index, tag in enumerate(data.tags):
        if not tag.strip() or "," in tag or len(tag) > 40:
            check.fail((*path, "tags", index), "a tag is 1 to 40 characters without commas")
    if not data.lines:
        check.fail((*path, "lines"), "an order needs at least one line", ErrorCode.REQUIRED)
    if len(data.lines) > MAX_LINES_PER_ORDER:
        check.fail((*path, "lines"), f"an order has at most {MAX_LINES_PER_ORDER} lines", ErrorCode.TOO_MANY)
        return
    declared = {so.aliexpress_order_id: so for so in data.supplier_orders}
    if len(declared) != len(data.supplier_orders):
        check.fail((*path, "supplierOrders"), "aliexpressOrderId appears twice", ErrorCode.ALREADY_EXISTS)
    supplier_of: dict[str, int] = {}
    for index, line in enumerate(data.lines):
        line_path = (*path, "lines", index)
        check.text((*line_path, "title"), line.title, max_length=255, required=True)
        check.text((*line_path, "variantTitle"), line.variant_title, max_length=255)
        check.text((*line_path, "sku"), line.sku, max_length=100)
        check.url((*line_path, "imageUrl"), line.image_url)
        if not 1 <= line.quantity <= MAX_QUANTITY:
            check.fail((*line_path, "quantity"), f"quantity must be between 1 and {MAX_QUANTITY}")
        check.amount((*line_path, "unitPrice"), line.unit_price, currency)
        if line.supplier_id is not None and line.supplier_id not in suppliers:
            check.fail((*line_path, "supplierId"), "no such supplier in this shop", ErrorCode.NOT_FOUND)
        if (line.supplier_id is None) != (line.aliexpress_order_id is None):
            check.fail((*line_path, "aliexpressOrderId"), "supplierId and aliexpressOrderId go together")
        if line.aliexpress_order_id is not None and line.supplier_id is not None:
            if line.aliexpress_order_id not in declared:
                check.fail(
                    (*line_path, "aliexpressOrderId"),
                    "not among the order's supplierOrders",
                    ErrorCode.NOT_FOUND,
                )
            elif supplier_of.setdefault(line.aliexpress_order_id, line.supplier_id) != line.supplier_id:
                check.fail((*line_path, "supplierId"), "lines of one AliExpress order need one supplier")
    for index, so in enumerate(data.supplier_orders):
        so_path = (*path, "supplierOrders", index)
        check.text((*so_path, "aliexpressOrderId"), so.aliexpress_order_id, max_length=40, required=True)
        check.amount((*so_path, "cost"), so.cost, currency)
        if so.aliexpress_order_id not in supplier_of:
            check.fail((*so_path, "aliexpressOrderId"), "no line of the order is fulfilled by it")
        check_packages(check, (*so_path, "packages"), so.packages)


async def import_orders(
    session: AsyncSession, actor: Actor, orders: Sequence[OrderInput]
) -> list[ImportResult]:
    """Create or update store orders by number, all or nothing.

    Importing the same number again replaces the order's details and lines and upserts its supplier orders
    by AliExpress id; it never creates a second order. Concurrent imports of one number queue up on the
    order's row lock, so each one replaces the whole order and the last to commit wins, consistently.
    """
    require_scope(actor, Scope.WRITE_ORDERS)
    assert actor.shop_id is not None
    check = Checker()
    if not orders:
        check.fail(("orders",), "give at least one order", ErrorCode.REQUIRED)
    if len(orders) > MAX_ORDERS_PER_IMPORT:
        check.fail(("orders",), f"at most {MAX_ORDERS_PER_IMPORT} orders per import", ErrorCode.TOO_MANY)
        check.raise_if_any()
    suppliers = set(
        (await session.execute(select(Supplier.id).where(visible(Supplier, actor)))).scalars().all()
    )
    numbers = [data.number for data in orders]
    claimed_by: dict[str, int] = {}
    for index, data in enumerate(orders):
        _check_order(check, ("orders", index), data, suppliers)
        if numbers.index(data.number) != index:
            check.fail(("orders", index, "number"), "the same number appears twice", ErrorCode.ALREADY_EXISTS)
        for so_index, so in enumerate(data.supplier_orders):
            if claimed_by.setdefault(so.aliexpress_order_id, index) != index:
                check.fail(
                    ("orders", index, "supplierOrders", so_index, "aliexpressOrderId"),
                    "another order of this import names the same AliExpress order",
                    ErrorCode.ALREADY_EXISTS,
                )
    check.raise_if_any()

    created = await _insert_missing_orders(session, actor, orders)
    existing = await _lock_orders(session, actor, numbers)
    ali_ids = [so.aliexpress_order_id for data in orders for so in data.supplier_orders]
    taken = dict(
        (
            await session.execute(
                select(SupplierOrder.aliexpress_order_id, SupplierOrder.order_id).where(
                    SupplierOrder.shop_id == actor.shop_id, SupplierOrder.aliexpress_order_id.in_(ali_ids)
                )
            )
        ).all()
    )
    known_ids = [so.id for own in existing.values() for so in own.supplier_orders]
    disputed = set(await session.scalars(select(Dispute.open_key).where(Dispute.open_key.in_(known_ids))))
    for index, data in enumerate(orders):
        own = existing[data.number]
        current = {so.aliexpress_order_id: so.status for so in own.supplier_orders}
        ids = {so.aliexpress_order_id: so.id for so in own.supplier_orders}
        for so_index, so in enumerate(data.supplier_orders):
            path = ("orders", index, "supplierOrders", so_index)
            if taken.get(so.aliexpress_order_id, own.id) != own.id:
                check.fail(
                    (*path, "aliexpressOrderId"), "already belongs to another order", ErrorCode.ALREADY_EXISTS
                )
            was = current.get(so.aliexpress_order_id)
            if was is SupplierOrderStatus.FINISH and so.status is not SupplierOrderStatus.FINISH:
                # A closed trade (say, cancelled and refunded a moment ago) is not reopened by a stale import.
                check.fail(
                    (*path, "status"),
                    "the AliExpress order has finished; its status no longer changes",
                    ErrorCode.INVALID_STATE,
                )
            # IN_CANCEL belongs to an open cancellation request: only the request moves the order in or out.
            elif (was is SupplierOrderStatus.IN_CANCEL) != (so.status is SupplierOrderStatus.IN_CANCEL):
                check.fail(
                    (*path, "status"),
                    "IN_CANCEL is entered and left only through a cancellation request",
                    ErrorCode.INVALID_STATE,
                )
            # IN_ISSUE with an open dispute is left only when the dispute ends.
            if ids.get(so.aliexpress_order_id) in disputed and so.status is not SupplierOrderStatus.IN_ISSUE:
                check.fail(
                    (*path, "status"),
                    "the supplier order has an open dispute: it stays IN_ISSUE until the dispute ends",
                    ErrorCode.INVALID_STATE,
                )
    check.raise_if_any()

    # Taken after the lock, so that the order's updated_at follows the order in which imports commit.
    now = utcnow()
    await _insert_new_supplier_orders(session, actor, orders, existing, set(taken), now)
    return [
        await _write_order(session, actor, data, existing[data.number], data.number in created, now)
        for data in orders
    ]


def _insert(session: AsyncSession) -> Any:
    """INSERT with ON CONFLICT for the session's database."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _subtotal(data: OrderInput) -> Decimal:
    return sum((line.unit_price * line.quantity for line in data.lines), Decimal(0))


def _details(data: OrderInput, now: datetime) -> dict[str, Any]:
    """The order's own columns as an import sets them, whether it creates the order or replaces it."""
    subtotal = _subtotal(data)
    return {
        "number_value": number_value(data.number),
        "customer_name": data.customer_name,
        "customer_email": data.customer_email,
        # Set here, not by the column's default: a default that reads the row's other values cannot serve
        # a multi-row INSERT.
        "customer_email_domain": email_domain(data.customer_email),
        "customer_phone": data.customer_phone,
        "shipping_address": data.shipping_address,
        "currency": data.currency,
        "subtotal": subtotal,
        "shipping": data.shipping,
        "total": subtotal + data.shipping,
        "tags": ",".join(dict.fromkeys(tag.strip() for tag in data.tags)),
        "note": data.note,
        "updated_at": now,
    }


async def _insert_missing_orders(
    session: AsyncSession, actor: Actor, orders: Sequence[OrderInput]
) -> set[str]:
    """Insert the numbers the shop does not have yet; returns the numbers this transaction created.

    The unique (shop, number) index decides between concurrent imports of a new number: the first inserts,
    the others wait for it to commit and then find the row. Rows go in sorted by number so that two imports
    of several new numbers cannot wait on each other in a circle.
    """
    now = utcnow()
    rows = [
        {
            **_details(data, now),
            "shop_id": actor.shop_id,
            "number": data.number,
            "financial_status": FinancialStatus.PAID,
            "status": OrderStatus.OPEN,
            "created_at": data.created_at or now,
        }
        for data in sorted(orders, key=lambda data: data.number)
    ]
    statement = (
        _insert(session)(Order)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[Order.shop_id, Order.number])
        .returning(Order.number)
    )
    return set((await session.scalars(statement)).all())


async def _lock_orders(session: AsyncSession, actor: Actor, numbers: Sequence[str]) -> dict[str, Order]:
    """The shop's orders with these numbers, row-locked (by id, the order every locker uses) and read fresh.

    The order's row lock guards everything under it: lines, supplier orders and their packages. Use cases
    that change a supplier order take it too, before the supplier order's own lock.
    """
    statement = (
        select(Order)
        .where(visible(Order, actor), Order.number.in_(numbers))
        .order_by(Order.id)
        .with_for_update(of=Order)
        .options(
            selectinload(Order.lines),
            selectinload(Order.supplier_orders).selectinload(SupplierOrder.packages),
        )
        .execution_options(populate_existing=True)
    )
    return {order.number: order for order in (await session.scalars(statement)).all()}


async def _insert_new_supplier_orders(
    session: AsyncSession,
    actor: Actor,
    orders: Sequence[OrderInput],
    locked: dict[str, Order],
    known: set[str],
    now: datetime,
) -> None:
    """Insert the supplier orders no order has yet and attach them to their locked store orders.

    Another store order's import may claim the same AliExpress order at the same time: the unique
    (shop, AliExpress id) index lets one of them have it, and the other is refused as it would be afterwards.
    """
    check = Checker()
    rows = []
    path_of: dict[str, tuple[str | int, ...]] = {}
    for index, data in enumerate(orders):
        order = locked[data.number]
        supplier_of = {line.aliexpress_order_id: line.supplier_id for line in data.lines}
        for so_index, so in enumerate(data.supplier_orders):
            if so.aliexpress_order_id in known:
                continue
            path_of[so.aliexpress_order_id] = (
                "orders",
                index,
                "supplierOrders",
                so_index,
                "aliexpressOrderId",
            )
            rows.append(
                {
                    "shop_id": actor.shop_id,
                    "order_id": order.id,
                    "supplier_id": supplier_of[so.aliexpress_order_id],
                    "aliexpress_order_id": so.aliexpress_order_id,
                    "status": so.status,
                    "end_reason": so.end_reason,
                    "currency": data.currency,
                    "cost": so.cost,
                    "paid_at": so.paid_at,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if not rows:
        return
    # Sorted, so that two imports claiming several of the same AliExpress orders queue in one direction.
    rows.sort(key=lambda row: str(row["aliexpress_order_id"]))
    by_order = {order.id: order for order in locked.values()}
    claimed: set[str] = set()
    for start in range(0, len(rows), INSERT_BATCH):
        statement = (
            _insert(session)(SupplierOrder)
            .values(rows[start : start + INSERT_BATCH])
            .on_conflict_do_nothing(index_elements=[SupplierOrder.shop_id, SupplierOrder.aliexpress_order_id])
            .returning(SupplierOrder.id, SupplierOrder.aliexpress_order_id)
        )
        inserted = {pk: ali_id for pk, ali_id in (await session.execute(statement)).all()}
        claimed.update(inserted.values())
        fresh = await session.scalars(
            select(SupplierOrder)
            .where(SupplierOrder.id.in_(inserted))
            .options(selectinload(SupplierOrder.packages))
        )
        for supplier_order in fresh.all():
            by_order[supplier_order.order_id].supplier_orders.append(supplier_order)
    for ali_id in sorted(set(path_of) - claimed):
        check.fail(path_of[ali_id], "already belongs to another order", ErrorCode.ALREADY_EXISTS)
    check.raise_if_any()


async def _write_order(
    session: AsyncSession, actor: Actor, data: OrderInput, order: Order, created: bool, now: datetime
) -> ImportResult:
    """Replace the locked order's details and lines with ``data`` and update its supplier orders."""
    assert actor.shop_id is not None
    for name, value in _details(data, now).items():
        setattr(order, name, value)

    by_ali_id = {so.aliexpress_order_id: so for so in order.supplier_orders}
    supplier_of = {
        line.aliexpress_order_id: line.supplier_id for line in data.lines if line.aliexpress_order_id
    }
    for so_data in data.supplier_orders:
        supplier_order = by_ali_id[so_data.aliexpress_order_id]
        supplier_id = supplier_of[so_data.aliexpress_order_id]
        assert supplier_id is not None
        supplier_order.supplier_id = supplier_id
        if supplier_order.status is not SupplierOrderStatus.FINISH:
            # How a trade ended (cancelled, delivered) is settled once; refunds and order status follow it.
            supplier_order.status = so_data.status
            supplier_order.end_reason = so_data.end_reason
        supplier_order.currency = data.currency
        supplier_order.cost = so_data.cost
        supplier_order.paid_at = so_data.paid_at
        supplier_order.updated_at = now
        apply_packages(supplier_order, so_data.packages, now)

    order.lines.clear()
    await session.flush()
    for position, line in enumerate(data.lines):
        target = by_ali_id.get(line.aliexpress_order_id) if line.aliexpress_order_id else None
        order.lines.append(
            OrderLine(
                shop_id=actor.shop_id,
                position=position,
                title=line.title,
                variant_title=line.variant_title,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                image_url=line.image_url,
                supplier_order_id=target.id if target else None,
            )
        )
    await session.flush()
    record_event(
        session,
        actor,
        shop_id=actor.shop_id,
        order_id=order.id,
        type="order_imported" if created else "order_updated",
        message=f"Order {order.number} {'imported' if created else 'updated by import'}",
        data={"lines": len(data.lines), "supplierOrders": len(data.supplier_orders)},
    )
    topic = Topic.ORDERS_CREATED if created else Topic.ORDERS_UPDATED
    await announce(session, actor, topic, shop_id=order.shop_id, node_type="Order", node_id=order.id, now=now)
    return ImportResult(order=order, created=created)


async def lock_order(session: AsyncSession, actor: Actor, order_id: int, *, field: str = "id") -> Order:
    """The store order, locked and read afresh, if the actor may see it (NOT_FOUND on ``field`` otherwise)."""
    return await lock_visible(session, Order, actor, order_id, "order", field)
