"""An order's money figures, computed the same way for every reader: the API, the exports, the refund rules.

For each order, in the order's currency:

- ``total``: what the customer paid; ``collected`` is the same unless the payment was VOIDED (then 0).
- ``refunded``: the refunds given to the customer; ``refundable`` = collected - refunded (never below 0).
- ``refund_due``: what is still owed to the customer of an order that was cancelled because every supplier
  order behind it was cancelled (all of ``refundable``); 0 otherwise.
- ``supplier_cost``: what was paid for the supplier orders. A supplier order that closed without being paid
  (an unpaid one cancelled at once, a payment timeout, a payment refused by risk control) costs nothing;
  one cancelled after payment keeps its cost, and the supplier refund of it is counted below.
- ``supplier_refunds``: what suppliers gave back (cancellations, disputes).
- ``margin`` = collected - refunded - refund_due - (supplier_cost - supplier_refunds). Money still owed to
  the customer is not margin: without the ``refund_due`` term an order whose supplier orders were all
  cancelled would show its whole total as margin until someone refunds it; with it, the margin is the same
  before and after that refund.

One SQL statement serves any number of orders, so a page of orders or an export batch costs the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    FinancialStatus,
    Order,
    OrderStatus,
    Refund,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)

ZERO = Decimal(0)
CANCELLED_END_REASON = "cancel_order_close_trade"
# AliExpress end reasons of trades that closed before any money reached the supplier.
UNPAID_END_REASONS = frozenset({"buyer_cancel_notpay_order", "buyer_pay_timeout", "risk_reject_closed"})
# Orders per statement: keeps the IN list within every database's bound-parameter limit.
CHUNK = 2000


@dataclass(frozen=True)
class OrderFigures:
    order_id: int
    currency: str
    total: Decimal
    collected: Decimal
    refunded: Decimal
    refundable: Decimal
    refund_due: Decimal
    supplier_cost: Decimal
    supplier_refunds: Decimal
    margin: Decimal

    @property
    def net_supplier_cost(self) -> Decimal:
        return self.supplier_cost - self.supplier_refunds


def financial_status(current: FinancialStatus, total: Decimal, refunded: Decimal) -> FinancialStatus:
    """PAID, PARTIALLY_REFUNDED or REFUNDED as the refunds say; a VOIDED payment stays VOIDED."""
    if current is FinancialStatus.VOIDED:
        return current
    if refunded <= ZERO:
        return FinancialStatus.PAID
    return FinancialStatus.REFUNDED if refunded >= total else FinancialStatus.PARTIALLY_REFUNDED


def _paid_supplier_order() -> ColumnElement[bool]:
    refunded = exists().where(SupplierRefund.supplier_order_id == SupplierOrder.id)
    closed_unpaid = and_(
        SupplierOrder.status == SupplierOrderStatus.FINISH,
        or_(
            SupplierOrder.end_reason.in_(UNPAID_END_REASONS),
            and_(
                SupplierOrder.end_reason == CANCELLED_END_REASON,
                SupplierOrder.paid_at.is_(None),
                not_(refunded),
            ),
        ),
    )
    return not_(closed_unpaid)


FiguresRow = Select[int, str, Decimal, FinancialStatus, OrderStatus, Decimal, Decimal, Decimal]


def _figures_statement(only: ColumnElement[bool] | None) -> FiguresRow:
    supplier_cost = (
        select(func.coalesce(func.sum(SupplierOrder.cost), ZERO))
        .where(SupplierOrder.order_id == Order.id, _paid_supplier_order())
        .scalar_subquery()
    )
    supplier_refunds = (
        select(func.coalesce(func.sum(SupplierRefund.amount), ZERO))
        .join(SupplierOrder, SupplierOrder.id == SupplierRefund.supplier_order_id)
        .where(SupplierOrder.order_id == Order.id)
        .scalar_subquery()
    )
    refunded = (
        select(func.coalesce(func.sum(Refund.amount), ZERO))
        .where(Refund.order_id == Order.id)
        .scalar_subquery()
    )
    return select(
        Order.id,
        Order.currency,
        Order.total,
        Order.financial_status,
        Order.status,
        supplier_cost.label("supplier_cost"),
        supplier_refunds.label("supplier_refunds"),
        refunded.label("refunded"),
    ).where(Order.id.in_(bindparam("order_ids", expanding=True)), *([] if only is None else [only]))


def _figures(
    row: Row[int, str, Decimal, FinancialStatus, OrderStatus, Decimal, Decimal, Decimal],
) -> OrderFigures:
    total: Decimal = row.total
    refunded: Decimal = row.refunded
    supplier_cost: Decimal = row.supplier_cost
    supplier_refunds: Decimal = row.supplier_refunds
    financial: FinancialStatus = row.financial_status
    collected = ZERO if financial is FinancialStatus.VOIDED else total
    refundable = max(collected - refunded, ZERO)
    refund_due = refundable if row.status is OrderStatus.CANCELLED else ZERO
    return OrderFigures(
        order_id=row.id,
        currency=row.currency,
        total=total,
        collected=collected,
        refunded=refunded,
        refundable=refundable,
        refund_due=refund_due,
        supplier_cost=supplier_cost,
        supplier_refunds=supplier_refunds,
        margin=collected - refunded - refund_due - (supplier_cost - supplier_refunds),
    )


async def order_figures(
    session: AsyncSession, order_ids: Iterable[int], *, only: ColumnElement[bool] | None = None
) -> dict[int, OrderFigures]:
    """The figures of each order by id; ids not found, or excluded by ``only`` (a tenancy clause on
    ``Order``), are absent. Without ``only`` the caller has checked tenancy."""
    ids = list(dict.fromkeys(order_ids))
    figures: dict[int, OrderFigures] = {}
    statement = _figures_statement(only)
    # The Core connection and one expanding parameter: exports ask for a thousand orders at a time.
    connection = await session.connection()
    for start in range(0, len(ids), CHUNK):
        rows = await connection.execute(statement, {"order_ids": ids[start : start + CHUNK]})
        for row in rows:
            item = _figures(row)
            figures[item.order_id] = item
    return figures
