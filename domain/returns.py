"""Customer returns to the merchant's own address, and the returned stock they feed.

Statuses: REQUESTED → APPROVED | DECLINED; APPROVED → RECEIVED once every unit arrived (partial receipts keep
it APPROVED); RECEIVED → CLOSED, or APPROVED → CLOSED after a partial receipt (the rest will not come);
REQUESTED | APPROVED (nothing received) → CANCELED.

A return never asks for more units of an order line than were ordered less those already in other returns
(REQUESTED, APPROVED or RECEIVED ones in full, CLOSED ones for what arrived). Every use case locks the store
order row first, then the return, so that two requests on one order queue up and the second sees the first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Order,
    OrderLine,
    PolicyKind,
    Return,
    ReturnDeclineReason,
    ReturnDisposition,
    ReturnedStock,
    ReturnLine,
    ReturnReason,
    ReturnReceipt,
    ReturnStatus,
    Shop,
    StockCondition,
    SupplierOrder,
)
from db.types import utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.figures import CANCELLED_END_REASON
from domain.orders import lock_order
from domain.policies import DEFAULT_RETURN_WINDOW_DAYS, current_policies, policy_in_force
from domain.topics import Topic, announce
from domain.validation import Checker, check_text

R = ReturnStatus
MAX_LINES = 250
MAX_QUANTITY = 10_000
MAX_NOTE_LENGTH = 5000
MAX_DECLINE_NOTE_LENGTH = 500
# Units in these returns count against what an order line can still return.
HOLDING = frozenset({R.REQUESTED, R.APPROVED, R.RECEIVED})
CONDITION_OF = {ReturnDisposition.RESTOCK: StockCondition.NEW, ReturnDisposition.RESELL: StockCondition.USED}


@dataclass(frozen=True)
class ReturnLineInput:
    order_line_id: int
    quantity: int
    reason: ReturnReason
    note: str | None = None


@dataclass(frozen=True)
class ReceiptInput:
    return_line_id: int
    quantity: int
    disposition: ReturnDisposition


# --- use cases ------------------------------------------------------------------------------------------


async def request_return(
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    lines: Sequence[ReturnLineInput],
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> Return:
    """Record a customer's wish to send items back; flagged when asked after the return window."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    check_text(check, ("note",), note, max_length=MAX_NOTE_LENGTH)
    if not lines:
        check.fail(("lines",), "a return needs at least one line", ErrorCode.REQUIRED)
    if len(lines) > MAX_LINES:
        check.fail(("lines",), f"at most {MAX_LINES} lines", ErrorCode.TOO_MANY)
    seen: set[int] = set()
    for index, line in enumerate(lines):
        if not 1 <= line.quantity <= MAX_QUANTITY:
            check.fail(("lines", index, "quantity"), f"quantity must be between 1 and {MAX_QUANTITY}")
        check_text(check, ("lines", index, "note"), line.note, max_length=MAX_NOTE_LENGTH)
        if line.order_line_id in seen:
            check.fail(
                ("lines", index, "orderLineId"), "the same order line appears twice", ErrorCode.INVALID
            )
        seen.add(line.order_line_id)
    check.raise_if_any()

    order = await lock_order(session, actor, order_id, field="orderId")
    order_lines = {
        line.id: line
        for line in (await session.scalars(select(OrderLine).where(OrderLine.order_id == order.id))).all()
    }
    returned = await returned_quantities(session, order.id)
    supplier_orders = {
        so.id: so
        for so in (
            await session.scalars(select(SupplierOrder).where(SupplierOrder.order_id == order.id))
        ).all()
    }
    for index, line in enumerate(lines):
        path = ("lines", index)
        order_line = order_lines.get(line.order_line_id)
        if order_line is None:
            check.fail((*path, "orderLineId"), "not a line of this order", ErrorCode.NOT_FOUND)
            continue
        supplier_order = supplier_orders.get(order_line.supplier_order_id or 0)
        if supplier_order is not None and supplier_order.end_reason == CANCELLED_END_REASON:
            check.fail(
                (*path, "orderLineId"),
                "this line's supplier order was cancelled: nothing was delivered to return",
                ErrorCode.INVALID_STATE,
            )
            continue
        left = order_line.quantity - returned.get(order_line.id, 0)
        if line.quantity > left:
            check.fail(
                (*path, "quantity"),
                f"only {left} of {order_line.quantity} can still be returned",
                ErrorCode.EXCEEDS_RETURNABLE_QUANTITY,
            )
    check.raise_if_any()

    policy = await policy_in_force(session, order.shop_id, PolicyKind.RETURN, now)
    window_days = DEFAULT_RETURN_WINDOW_DAYS
    if policy is not None and policy.return_window_days is not None:
        window_days = policy.return_window_days
    starts = [
        _delivered_at(order, supplier_orders.get(order_lines[line.order_line_id].supplier_order_id or 0))
        for line in lines
    ]
    outside = any(now > start + timedelta(days=window_days) for start in starts)
    row = Return(
        shop_id=order.shop_id,
        order_id=order.id,
        status=R.REQUESTED,
        note=(note or "").strip() or None,
        outside_return_window=outside,
        policy_id=policy.id if policy else None,
        requested_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    for line in lines:
        session.add(
            ReturnLine(
                shop_id=order.shop_id,
                return_id=row.id,
                order_line_id=line.order_line_id,
                quantity=line.quantity,
                reason=line.reason,
                note=(line.note or "").strip() or None,
            )
        )
    units = sum(line.quantity for line in lines)
    await _changed(
        session,
        actor,
        row,
        order,
        "return_requested",
        f"Return of {units} item{'s' if units != 1 else ''} requested"
        + (f" after the {window_days}-day return window" if outside else ""),
        now,
        outsideReturnWindow=outside,
        units=units,
    )
    return row


async def approve_return(
    session: AsyncSession,
    actor: Actor,
    return_id: int,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> Return:
    """Accept the return: the customer sends the items to the shop's return address."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    _note(note, MAX_NOTE_LENGTH)
    row, order = await _lock(session, actor, return_id)
    _expect(row, {R.REQUESTED}, "approved")
    policies = await current_policies(session, row.shop_id)
    current = policies.get(PolicyKind.RETURN)
    shop = await session.get(Shop, row.shop_id)
    address = (current.return_address if current else None) or (shop.return_address if shop else None)
    if not address:
        raise DomainError.single(
            ErrorCode.NO_RETURN_ADDRESS,
            "the shop has no return address: set one with shopPoliciesUpdate before approving returns",
            "id",
        )
    row.status = R.APPROVED
    row.return_address = address
    row.approved_at = row.updated_at = now
    await _changed(session, actor, row, order, "return_approved", _with_note("Return approved", note), now)
    return row


async def decline_return(
    session: AsyncSession,
    actor: Actor,
    return_id: int,
    reason: ReturnDeclineReason,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> Return:
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    body = _note(note, MAX_DECLINE_NOTE_LENGTH)
    if reason is ReturnDeclineReason.OTHER and body is None:
        raise DomainError.single(ErrorCode.REQUIRED, "a reason of OTHER needs a note", "note")
    row, order = await _lock(session, actor, return_id)
    _expect(row, {R.REQUESTED}, "declined")
    row.status = R.DECLINED
    row.decline_reason = reason
    row.decline_note = body
    row.declined_at = row.updated_at = now
    await _changed(
        session,
        actor,
        row,
        order,
        "return_declined",
        _with_note(f"Return declined ({reason})", body),
        now,
        reason=reason.value,
    )
    return row


async def receive_return(
    session: AsyncSession,
    actor: Actor,
    return_id: int,
    receipts: Sequence[ReceiptInput],
    *,
    now: datetime | None = None,
) -> Return:
    """Record units that arrived; RESTOCK and RESELL ones go to returned stock. RECEIVED once all are in."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    if not receipts:
        check.fail(("lines",), "say which items arrived", ErrorCode.REQUIRED)
    for index, receipt in enumerate(receipts):
        if not 1 <= receipt.quantity <= MAX_QUANTITY:
            check.fail(("lines", index, "quantity"), f"quantity must be between 1 and {MAX_QUANTITY}")
    check.raise_if_any()
    row, order = await _lock(session, actor, return_id)
    _expect(row, {R.APPROVED}, "received")
    lines = {
        line.id: line
        for line in (
            await session.scalars(
                select(ReturnLine)
                .where(ReturnLine.return_id == row.id)
                .execution_options(populate_existing=True)
            )
        ).all()
    }
    arriving: dict[int, int] = defaultdict(int)
    for index, receipt in enumerate(receipts):
        line = lines.get(receipt.return_line_id)
        if line is None:
            check.fail(("lines", index, "returnLineId"), "not a line of this return", ErrorCode.NOT_FOUND)
            continue
        arriving[line.id] += receipt.quantity
        outstanding = line.quantity - line.received_quantity
        if arriving[line.id] > outstanding:
            check.fail(
                ("lines", index, "quantity"),
                f"only {outstanding} of {line.quantity} are still expected on this line",
                ErrorCode.EXCEEDS_OUTSTANDING_QUANTITY,
            )
    check.raise_if_any()

    order_lines = {
        line.id: line
        for line in (
            await session.scalars(
                select(OrderLine).where(OrderLine.id.in_([line.order_line_id for line in lines.values()]))
            )
        ).all()
    }
    for receipt in receipts:
        line = lines[receipt.return_line_id]
        line.received_quantity += receipt.quantity
        session.add(
            ReturnReceipt(
                shop_id=row.shop_id,
                return_id=row.id,
                return_line_id=line.id,
                quantity=receipt.quantity,
                disposition=receipt.disposition,
                received_by=actor.name,
                created_at=now,
            )
        )
        condition = CONDITION_OF.get(receipt.disposition)
        if condition is not None:
            await add_returned_stock(
                session, row.shop_id, order_lines[line.order_line_id], condition, receipt.quantity, now
            )
    complete = all(line.received_quantity == line.quantity for line in lines.values())
    if complete:
        row.status = R.RECEIVED
        row.received_at = now
    row.updated_at = now
    units = sum(receipt.quantity for receipt in receipts)
    await _changed(
        session,
        actor,
        row,
        order,
        "return_received" if complete else "return_partially_received",
        f"{units} returned item{'s' if units != 1 else ''} received"
        + ("; everything has arrived" if complete else "; more expected"),
        now,
        units=units,
        dispositions={
            d.value: sum(r.quantity for r in receipts if r.disposition is d) for d in ReturnDisposition
        },
    )
    return row


async def close_return(
    session: AsyncSession, actor: Actor, return_id: int, *, now: datetime | None = None
) -> Return:
    """Done with the return: everything arrived, or what arrived is all that will."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    row, order = await _lock(session, actor, return_id)
    if row.status is R.APPROVED:
        received = await session.scalar(
            select(func.coalesce(func.sum(ReturnLine.received_quantity), 0)).where(
                ReturnLine.return_id == row.id
            )
        )
        if not received:
            raise DomainError.single(
                ErrorCode.INVALID_TRANSITION,
                "nothing of this return has arrived: receive items first, or cancel the return",
                "id",
            )
    else:
        _expect(row, {R.RECEIVED}, "closed")
    row.status = R.CLOSED
    row.closed_at = row.updated_at = now
    await _changed(session, actor, row, order, "return_closed", "Return closed", now)
    return row


async def cancel_return(
    session: AsyncSession, actor: Actor, return_id: int, *, now: datetime | None = None
) -> Return:
    """The customer no longer returns anything; allowed until the first item arrives."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    row, order = await _lock(session, actor, return_id)
    _expect(row, {R.REQUESTED, R.APPROVED}, "canceled")
    received = await session.scalar(
        select(func.coalesce(func.sum(ReturnLine.received_quantity), 0)).where(ReturnLine.return_id == row.id)
    )
    if received:
        raise DomainError.single(
            ErrorCode.INVALID_TRANSITION, "items of this return have arrived: close it instead", "id"
        )
    row.status = R.CANCELED
    row.canceled_at = row.updated_at = now
    await _changed(session, actor, row, order, "return_canceled", "Return canceled", now)
    return row


async def use_returned_stock(
    session: AsyncSession,
    actor: Actor,
    sku: str,
    quantity: int,
    order_id: int,
    condition: StockCondition | None = None,
    *,
    now: datetime | None = None,
) -> ReturnedStock:
    """Take returned units of ``sku`` out to fulfil ``order_id``: NEW ones first unless a condition is given."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    check_text(check, ("sku",), sku, max_length=100, required=True)
    if not 1 <= quantity <= MAX_QUANTITY:
        check.fail(("quantity",), f"quantity must be between 1 and {MAX_QUANTITY}")
    check.raise_if_any()
    order = await lock_order(session, actor, order_id, field="orderId")
    sku = sku.strip()
    for candidate in [condition] if condition else [StockCondition.NEW, StockCondition.USED]:
        # One conditional UPDATE: concurrent takers cannot both take the last units.
        taken = await session.execute(
            update(ReturnedStock)
            .where(
                ReturnedStock.shop_id == order.shop_id,
                ReturnedStock.sku == sku,
                ReturnedStock.condition == candidate,
                ReturnedStock.quantity >= quantity,
            )
            .values(quantity=ReturnedStock.quantity - quantity, updated_at=now)
            .returning(ReturnedStock.id)
        )
        stock_id = taken.scalar()
        if stock_id is None:
            continue
        stock = (
            await session.scalars(
                select(ReturnedStock)
                .where(ReturnedStock.id == stock_id)
                .execution_options(populate_existing=True)
            )
        ).one()
        record_event(
            session,
            actor,
            shop_id=order.shop_id,
            order_id=order.id,
            type="returned_stock_used",
            message=f"{quantity} x {sku} ({candidate}) taken from returned stock for this order",
            data={"sku": sku, "quantity": quantity, "condition": candidate.value, "left": stock.quantity},
        )
        return stock
    raise DomainError.single(
        ErrorCode.INSUFFICIENT_RETURNED_STOCK,
        f"returned stock holds fewer than {quantity} units of {sku}"
        + (f" in condition {condition}" if condition else " in a single condition"),
        "quantity",
    )


# --- shared steps ---------------------------------------------------------------------------------------


async def returned_quantities(session: AsyncSession, order_id: int) -> dict[int, int]:
    """Units of each order line held by the order's returns."""
    held = case(
        (Return.status.in_(HOLDING), ReturnLine.quantity),
        (Return.status == R.CLOSED, ReturnLine.received_quantity),
        else_=0,
    )
    rows = await session.execute(
        select(ReturnLine.order_line_id, func.sum(held))
        .join(Return, Return.id == ReturnLine.return_id)
        .where(Return.order_id == order_id)
        .group_by(ReturnLine.order_line_id)
    )
    return {line_id: int(total or 0) for line_id, total in rows}


async def add_returned_stock(
    session: AsyncSession,
    shop_id: int,
    order_line: OrderLine,
    condition: StockCondition,
    quantity: int,
    now: datetime,
) -> None:
    """Add units to the shop's returned stock in one upsert, safe when two receipts race on one SKU."""
    # A line without a SKU is stocked under its title, so the units are not lost.
    sku = (order_line.sku or order_line.title)[:100]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(ReturnedStock).values(
        shop_id=shop_id,
        sku=sku,
        condition=condition,
        title=order_line.title,
        quantity=quantity,
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["shop_id", "sku", "condition"],
            set_={"quantity": ReturnedStock.quantity + statement.excluded.quantity, "updated_at": now},
        )
    )


async def _lock(session: AsyncSession, actor: Actor, return_id: int) -> tuple[Return, Order]:
    order_id = await session.scalar(
        select(Return.order_id).where(Return.id == return_id, visible(Return, actor))
    )
    if order_id is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "return not found", "id")
    order = await lock_order(session, actor, order_id, field="id")
    row = (
        await session.scalars(
            select(Return)
            .where(Return.id == return_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return row, order


def _delivered_at(order: Order, supplier_order: SupplierOrder | None) -> datetime:
    """When the return window of a line starts: delivery, else shipment, else the order itself."""
    if supplier_order is not None:
        return supplier_order.finished_at or supplier_order.shipped_at or order.created_at
    return order.created_at


def _expect(row: Return, allowed: set[ReturnStatus], verb: str) -> None:
    if row.status not in allowed:
        names = " or ".join(sorted(status.value for status in allowed))
        raise DomainError.single(
            ErrorCode.INVALID_TRANSITION,
            f"the return is {row.status}; only a {names} return can be {verb}",
            "id",
        )


def _note(note: str | None, max_length: int) -> str | None:
    check = Checker()
    check_text(check, ("note",), note, max_length=max_length)
    check.raise_if_any()
    return (note or "").strip() or None


def _with_note(message: str, note: str | None) -> str:
    body = (note or "").strip()
    return f"{message}: {body}" if body else message


async def _changed(
    session: AsyncSession,
    actor: Actor,
    row: Return,
    order: Order,
    type: str,
    message: str,
    now: datetime,
    **data: object,
) -> None:
    """Every step: the order's timeline, its updated time, and the returns/updated topic."""
    order.updated_at = now
    record_event(
        session,
        actor,
        shop_id=row.shop_id,
        order_id=row.order_id,
        type=type,
        message=message,
        data={"returnId": row.id, "status": row.status.value, **data},
    )
    await announce(
        session,
        actor,
        Topic.RETURNS_UPDATED,
        shop_id=row.shop_id,
        node_type="Return",
        node_id=row.id,
        now=now,
    )
