"""Importing orders at the domain level: large imports, and what a re-import may and may not change."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from db.engine import Database
from db.models import ActorKind, Order, OrderLine, SupplierOrder
from domain.actors import Actor, Scope
from domain.orders import (
    INSERT_BATCH,
    MAX_LINES_PER_ORDER,
    LineInput,
    OrderInput,
    SupplierOrderInput,
    import_orders,
)
from tests.factories import Tenant


def merchant(tenant: Tenant) -> Actor:
    return Actor(kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset(Scope.ALL))


def wide_order(tenant: Tenant, number: int) -> OrderInput:
    """An order whose every line has a supplier order of its own, as many as an order may have."""
    ali_ids = [f"{number}{line:04d}" for line in range(MAX_LINES_PER_ORDER)]
    return OrderInput(
        number=f"#{number}",
        currency="USD",
        lines=[
            LineInput(
                title=f"Item {line}",
                quantity=1,
                unit_price=Decimal("1.25"),
                supplier_id=tenant.supplier_ids[line % 2],
                aliexpress_order_id=ali_id,
            )
            for line, ali_id in enumerate(ali_ids)
        ],
        supplier_orders=[
            SupplierOrderInput(aliexpress_order_id=ali_id, cost=Decimal("0.50")) for ali_id in ali_ids
        ],
    )


async def test_an_import_with_more_supplier_orders_than_one_insert_holds(
    db: Database, tenant: Tenant
) -> None:
    orders = [wide_order(tenant, 9000 + index) for index in range(3)]
    assert sum(len(order.supplier_orders) for order in orders) > INSERT_BATCH

    async with db.write() as session:
        results = await import_orders(session, merchant(tenant), orders)
    assert [result.created for result in results] == [True] * 3
    async with db.write() as session:
        again = await import_orders(session, merchant(tenant), orders)
    assert [result.created for result in again] == [False] * 3

    async with db.read() as session:
        counts = [
            await session.scalar(
                select(func.count()).select_from(model).where(model.shop_id == tenant.shop_id)
            )
            for model in (Order, SupplierOrder, OrderLine)
        ]
        linked = await session.scalar(
            select(func.count())
            .select_from(OrderLine)
            .join(SupplierOrder, OrderLine.supplier_order_id == SupplierOrder.id)
            .where(OrderLine.shop_id == tenant.shop_id)
        )
        subtotals = set((await session.scalars(select(Order.subtotal))).all())
    assert counts == [3, 3 * MAX_LINES_PER_ORDER, 3 * MAX_LINES_PER_ORDER]
    assert linked == 3 * MAX_LINES_PER_ORDER
    assert subtotals == {Decimal("1.25") * MAX_LINES_PER_ORDER}
