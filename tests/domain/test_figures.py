"""An order's money figures follow its supplier orders, supplier refunds and customer refunds."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update

from db.engine import Database
from db.models import FinancialStatus, Order, Refund, SupplierOrderStatus
from domain.cancellations import Decision
from domain.figures import OrderFigures, financial_status, order_figures
from tests.domain.test_cancellations import Scene, make_scene
from tests.factories import Tenant

S = SupplierOrderStatus
D = Decimal


async def figures(scene: Scene) -> OrderFigures:
    async with scene.db.read() as session:
        return (await order_figures(session, [scene.order_id]))[scene.order_id]


async def test_open_order_margin_is_total_less_supplier_cost(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    got = await figures(scene)
    # Two lines of 20.00, supplier orders of 9.10 and 10.10.
    assert (got.total, got.supplier_cost, got.supplier_refunds) == (D("40"), D("19.20"), D(0))
    assert (got.refunded, got.refundable, got.refund_due) == (D(0), D("40"), D(0))
    assert got.margin == D("20.80")


async def test_fully_cancelled_order_owes_the_customer_and_shows_no_margin(
    db: Database, tenant: Tenant
) -> None:
    scene = await make_scene(db, tenant)
    for index in range(2):
        request = await scene.create(index)
        await scene.decide(request.id, Decision.APPROVE, index=index)
    got = await figures(scene)
    assert (got.supplier_cost, got.supplier_refunds) == (D("19.20"), D("19.20"))
    assert got.refund_due == D("40")
    assert got.margin == D(0)

    async with db.write() as session:
        session.add(
            Refund(
                shop_id=tenant.shop_id,
                order_id=scene.order_id,
                amount=D("40"),
                currency="USD",
                created_by="t",
            )
        )
    got = await figures(scene)
    assert (got.refunded, got.refundable, got.refund_due, got.margin) == (D("40"), D(0), D(0), D(0))


async def test_unpaid_cancelled_supplier_order_costs_nothing(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant, S.PLACE_ORDER_SUCCESS, split=False)
    await scene.create(0)
    got = await figures(scene)
    assert (got.supplier_cost, got.supplier_refunds, got.refund_due, got.margin) == (
        D(0),
        D(0),
        D("20"),
        D(0),
    )


async def test_voided_payment_collects_nothing(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant, split=False)
    async with db.write() as session:
        await session.execute(
            update(Order).where(Order.id == scene.order_id).values(financial_status=FinancialStatus.VOIDED)
        )
    got = await figures(scene)
    assert (got.collected, got.refundable, got.margin) == (D(0), D(0), D("-9.10"))


async def test_many_orders_in_one_statement(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    async with db.read() as session:
        got = await order_figures(session, [scene.order_id, scene.order_id, 999_999])
    assert list(got) == [scene.order_id]


def test_financial_status_follows_refunds() -> None:
    paid = FinancialStatus.PAID
    assert financial_status(paid, D(10), D(0)) is FinancialStatus.PAID
    assert financial_status(paid, D(10), D("0.01")) is FinancialStatus.PARTIALLY_REFUNDED
    assert financial_status(paid, D(10), D(10)) is FinancialStatus.REFUNDED
    assert financial_status(FinancialStatus.VOIDED, D(10), D(0)) is FinancialStatus.VOIDED
