"""Refunds to the customer of a store order; the order's financial status follows them.

A refund never exceeds the order's refundable amount (``domain.figures``). The store order row is locked
before the refunds are summed, so two refunds racing on one order are checked one after the other and
their sum cannot pass the amount paid.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Dispute,
    OrderLine,
    Refund,
    RefundLine,
    Return,
    ReturnLine,
    ReturnReason,
    ReturnStatus,
    ShopPolicy,
)
from db.types import utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.figures import financial_status, order_figures
from domain.money import quantize
from domain.orders import lock_order
from domain.topics import Topic, announce, announce_order_updated
from domain.validation import Checker, check_text

MAX_LINES = 250
MAX_NOTE_LENGTH = 5000
# Reasons that are the customer's choice: a refund computed from the return deducts the restocking fee.
CHANGE_OF_MIND = frozenset(
    {
        ReturnReason.SIZE_TOO_SMALL,
        ReturnReason.SIZE_TOO_LARGE,
        ReturnReason.UNWANTED,
        ReturnReason.STYLE,
        ReturnReason.OTHER,
    }
)


@dataclass(frozen=True)
class RefundLineInput:
    order_line_id: int
    quantity: int


async def create_refund(
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    *,
    amount: Decimal | None = None,
    lines: Sequence[RefundLineInput] = (),
    return_id: int | None = None,
    dispute_id: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Refund:
    """Give money back to the customer.

    The amount is the one given, else the value of ``lines``, else the value of the return's items (what
    arrived, or all of it when nothing has yet) less the return policy's restocking fee for change-of-mind
    reasons. ``dispute_id``, when given, must name a dispute the actor sees on this same order.
    """
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    check_text(check, ("note",), note, max_length=MAX_NOTE_LENGTH)
    if len(lines) > MAX_LINES:
        check.fail(("lines",), f"at most {MAX_LINES} lines", ErrorCode.TOO_MANY)
    for index, line in enumerate(lines):
        if line.quantity < 1:
            check.fail(("lines", index, "quantity"), "quantity must be at least 1")
    check.raise_if_any()

    order = await lock_order(session, actor, order_id, field="orderId")
    if dispute_id is not None:
        dispute = await session.scalar(
            select(Dispute.id).where(
                Dispute.id == dispute_id, visible(Dispute, actor), Dispute.order_id == order.id
            )
        )
        if dispute is None:
            raise DomainError.single(ErrorCode.NOT_FOUND, "no such dispute on this order", "disputeId")
    if amount is not None:
        check.amount(("amount",), amount, order.currency, allow_zero=False)
        check.raise_if_any()
    order_lines = {
        line.id: line
        for line in (await session.scalars(select(OrderLine).where(OrderLine.order_id == order.id))).all()
    }
    refunded_units = await _refunded_quantities(session, order.id)
    asked: dict[int, int] = defaultdict(int)
    for index, line in enumerate(lines):
        order_line = order_lines.get(line.order_line_id)
        if order_line is None:
            check.fail(("lines", index, "orderLineId"), "not a line of this order", ErrorCode.NOT_FOUND)
            continue
        asked[order_line.id] += line.quantity
        left = order_line.quantity - refunded_units.get(order_line.id, 0)
        if asked[order_line.id] > left:
            check.fail(
                ("lines", index, "quantity"),
                f"only {left} of {order_line.quantity} can still be refunded",
                ErrorCode.EXCEEDS_REFUNDABLE_QUANTITY,
            )
    returned = None
    if return_id is not None:
        returned = await session.scalar(
            select(Return).where(Return.id == return_id, visible(Return, actor), Return.order_id == order.id)
        )
        if returned is None:
            check.fail(("returnId",), "no such return on this order", ErrorCode.NOT_FOUND)
        elif returned.status in (ReturnStatus.DECLINED, ReturnStatus.CANCELED):
            check.fail(("returnId",), f"the return is {returned.status}", ErrorCode.INVALID_STATE)
    check.raise_if_any()

    refund_lines = [(order_lines[line.order_line_id], line.quantity) for line in lines]
    computed = sum((ol.unit_price * quantity for ol, quantity in refund_lines), Decimal(0))
    if amount is None and not lines and returned is not None:
        refund_lines, computed = await _from_return(session, returned, order_lines, refunded_units)
        if not refund_lines:
            raise DomainError.single(
                ErrorCode.INVALID, "the items of this return are refunded already", "returnId"
            )
    if amount is None and not refund_lines:
        raise DomainError.single(
            ErrorCode.REQUIRED, "give an amount, lines, or a return to refund the items of", "amount"
        )
    value = quantize(amount if amount is not None else computed, order.currency)
    if value <= 0:
        raise DomainError.single(ErrorCode.INVALID, "nothing left to refund for these items", "amount")

    figures = (await order_figures(session, [order.id]))[order.id]
    if value > figures.refundable:
        raise DomainError.single(
            ErrorCode.EXCEEDS_REFUNDABLE_AMOUNT,
            f"at most {figures.refundable} {order.currency} can still be refunded on this order",
            "amount",
        )
    refund = Refund(
        shop_id=order.shop_id,
        order_id=order.id,
        amount=value,
        currency=order.currency,
        note=(note or "").strip() or None,
        return_id=returned.id if returned else None,
        dispute_id=dispute_id,
        created_by=actor.name,
        created_at=now,
    )
    session.add(refund)
    await session.flush()
    for order_line, quantity in refund_lines:
        session.add(
            RefundLine(
                shop_id=order.shop_id,
                refund_id=refund.id,
                order_line_id=order_line.id,
                quantity=quantity,
                amount=order_line.unit_price * quantity,
            )
        )
    previous = order.financial_status
    order.financial_status = financial_status(previous, figures.total, figures.refunded + value)
    order.updated_at = now
    record_event(
        session,
        actor,
        shop_id=order.shop_id,
        order_id=order.id,
        type="refund_created",
        message=f"Refund of {value} {order.currency} to the customer"
        + (f"; the order is now {order.financial_status}" if order.financial_status is not previous else ""),
        data={
            "refundId": refund.id,
            "amount": str(value),
            "currency": order.currency,
            "financialStatus": order.financial_status.value,
            "returnId": refund.return_id,
            "disputeId": dispute_id,
        },
    )
    await announce(
        session,
        actor,
        Topic.REFUNDS_CREATED,
        shop_id=order.shop_id,
        node_type="Refund",
        node_id=refund.id,
        now=now,
    )
    if order.financial_status is not previous:
        await announce_order_updated(session, actor, order, now)
    return refund


async def _refunded_quantities(
    session: AsyncSession, order_id: int, return_id: int | None = None
) -> dict[int, int]:
    """Units of each order line refunded so far (by refunds of one return, when given)."""
    statement = (
        select(RefundLine.order_line_id, func.sum(RefundLine.quantity))
        .join(Refund, Refund.id == RefundLine.refund_id)
        .where(Refund.order_id == order_id)
        .group_by(RefundLine.order_line_id)
    )
    if return_id is not None:
        statement = statement.where(Refund.return_id == return_id)
    rows = await session.execute(statement)
    return {line_id: int(total or 0) for line_id, total in rows}


async def _from_return(
    session: AsyncSession,
    returned: Return,
    order_lines: dict[int, OrderLine],
    refunded_units: dict[int, int],
) -> tuple[list[tuple[OrderLine, int]], Decimal]:
    """The return's items not refunded yet, and their value less the restocking fee where it applies."""
    return_lines = (
        await session.scalars(select(ReturnLine).where(ReturnLine.return_id == returned.id))
    ).all()
    anything_arrived = any(line.received_quantity for line in return_lines)
    for_this_return = await _refunded_quantities(session, returned.order_id, returned.id)
    fee = Decimal(0)
    if returned.policy_id is not None:
        policy = await session.get(ShopPolicy, returned.policy_id)
        fee = (policy.restocking_fee_percent if policy else None) or Decimal(0)
    picked: list[tuple[OrderLine, int]] = []
    value = Decimal(0)
    for line in return_lines:
        order_line = order_lines[line.order_line_id]
        units = line.received_quantity if anything_arrived else line.quantity
        units -= for_this_return.get(order_line.id, 0)
        units = min(units, order_line.quantity - refunded_units.get(order_line.id, 0))
        if units <= 0:
            continue
        picked.append((order_line, units))
        line_value = order_line.unit_price * units
        if line.reason in CHANGE_OF_MIND:
            line_value -= line_value * fee / 100
        value += line_value
    return picked, value
