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

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.id_lists import among, id_list, rows_among
from db.models import (
    FinancialStatus,
    Order,
    OrderStatus,
    Refund,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)
from domain.access import visible
from domain.actors import Actor

ZERO = Decimal(0)
CANCELLED_END_REASON = "cancel_order_close_trade"
# AliExpress end reasons of trades that closed before any money reached the supplier.
UNPAID_END_REASONS = frozenset({"buyer_cancel_notpay_order", "buyer_pay_timeout", "risk_reject_closed"})
# Orders per statement: keeps the IN list within every database's bound-parameter limit.
CHUNK = 2000
# Amounts as Decimals, or as stored integer units: the margin formula is the same for both.
N = TypeVar("N", Decimal, int)


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


def _sums() -> tuple[Any, Any, Any]:
    """(supplier cost, supplier refunds, refunded) of the statement's order, as scalar subqueries."""
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
    return supplier_cost, supplier_refunds, refunded


def _figures_statement(only: ColumnElement[bool] | None, dialect: str, *, units: bool = False) -> FiguresRow:
    """With ``units``, amounts come as their stored integers and statuses as their names."""
    supplier_cost, supplier_refunds, refunded = _sums()

    def raw(column: Any, kind: Any) -> Any:
        return type_coerce(column, kind) if units else column

    return select(
        Order.id,
        Order.currency,
        raw(Order.total, BigInteger).label("total"),
        raw(Order.financial_status, String).label("financial_status"),
        raw(Order.status, String).label("status"),
        raw(supplier_cost, BigInteger).label("supplier_cost"),
        raw(supplier_refunds, BigInteger).label("supplier_refunds"),
        raw(refunded, BigInteger).label("refunded"),
    ).where(among(Order.id, dialect), *([] if only is None else [only]))


def figure_unit_sums() -> tuple[Any, Any, Any]:
    """For a statement that reads orders itself: the sums ``figure_units`` takes, as integer units."""
    return tuple(cast(total, BigInteger) for total in _sums())  # type: ignore[return-value]


def figure_units(
    total: int, financial: str, status: str, supplier_cost: int, supplier_refunds: int, refunded: int
) -> tuple[int, int, int]:
    """(supplier cost, margin, refunded) in amount units, from the order's total and statuses and the sums of
    ``figure_unit_sums``."""
    margin = _margin_terms(total, financial, status, refunded, supplier_cost, supplier_refunds, 0)[3]
    return supplier_cost, margin, refunded


def _margin_terms(
    total: N, financial: str, status: str, refunded: N, supplier_cost: N, supplier_refunds: N, zero: N
) -> tuple[N, N, N, N]:
    """(collected, refundable, refund due, margin): the formula, for Decimals or for integer units alike."""
    collected = zero if financial == FinancialStatus.VOIDED else total
    refundable = max(collected - refunded, zero)
    refund_due = refundable if status == OrderStatus.CANCELLED else zero
    return (
        collected,
        refundable,
        refund_due,
        collected - refunded - refund_due - (supplier_cost - supplier_refunds),
    )


def _figures(
    row: Row[int, str, Decimal, FinancialStatus, OrderStatus, Decimal, Decimal, Decimal],
) -> OrderFigures:
    total: Decimal = row.total
    refunded: Decimal = row.refunded
    supplier_cost: Decimal = row.supplier_cost
    supplier_refunds: Decimal = row.supplier_refunds
    collected, refundable, refund_due, margin = _margin_terms(
        total, row.financial_status, row.status, refunded, supplier_cost, supplier_refunds, ZERO
    )
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
        margin=margin,
    )


@functools.cache
def _figure_units_statement(dialect: str) -> FiguresRow:
    return _figures_statement(None, dialect, units=True)


async def order_figure_units(
    session: AsyncSession, order_ids: Sequence[int]
) -> dict[int, tuple[int, int, int]]:
    """(supplier cost, margin, refunded) of each order in stored amount units (1/AMOUNT_SCALE): the figures of
    ``order_figures`` without a Decimal per amount, for exports that read tens of thousands of orders."""
    statement = _figure_units_statement(session.get_bind().dialect.name)
    connection = await session.connection()
    found: dict[int, tuple[int, int, int]] = {}
    for start in range(0, len(order_ids), CHUNK):
        for row in await rows_among(connection, statement, order_ids[start : start + CHUNK]):
            order_id, _, total, financial, status, *sums = row
            # PostgreSQL sums integers as numeric.
            supplier_cost, supplier_refunds, refunded = (int(value) for value in sums)
            found[order_id] = figure_units(
                total, financial, status, supplier_cost, supplier_refunds, refunded
            )
    return found


async def order_figures(
    session: AsyncSession, order_ids: Iterable[int], *, only: ColumnElement[bool] | None = None
) -> dict[int, OrderFigures]:
    """The figures of each order by id; ids not found, or excluded by ``only`` (a tenancy clause on
    ``Order``), are absent. Without ``only`` the caller has checked tenancy."""
    ids = list(dict.fromkeys(order_ids))
    figures: dict[int, OrderFigures] = {}
    dialect = session.get_bind().dialect.name
    statement = _figures_statement(only, dialect)
    # The Core connection and the ids as one parameter: exports ask for a thousand orders at a time.
    connection = await session.connection()
    for start in range(0, len(ids), CHUNK):
        rows = await connection.execute(statement, {"ids": id_list(ids[start : start + CHUNK], dialect)})
        for row in rows.all():
            item = _figures(row)
            figures[item.order_id] = item
    return figures


async def supplier_refunded(
    session: AsyncSession, supplier_order_ids: Sequence[int], *, seen_by: Actor | None = None
) -> dict[int, Decimal]:
    """What the supplier has refunded so far per supplier order, whatever the source (0 when nothing);
    with ``seen_by``, only the refunds that actor may see."""
    statement = (
        select(SupplierRefund.supplier_order_id, func.sum(SupplierRefund.amount))
        .where(SupplierRefund.supplier_order_id.in_(supplier_order_ids))
        .group_by(SupplierRefund.supplier_order_id)
    )
    if seen_by is not None:
        statement = statement.where(visible(SupplierRefund, seen_by))
    totals = {key: Decimal(total or 0) for key, total in (await session.execute(statement)).all()}
    return {key: totals.get(key, ZERO) for key in supplier_order_ids}
