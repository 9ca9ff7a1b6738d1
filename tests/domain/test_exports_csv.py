"""The line-item CSV export's own path (figure sums read with the orders, times as the driver gives them,
records joined from texts made once per order, supplier order and recurring line) writes the same bytes as the
general row path on varied data: the demo's orders (refunds, cancellations, disputes, returns, notes) and
orders full of awkward text, in both layouts and in batches of one order and of many; and so does the
line-item CSV read and formatted by several forked processes, which fail the export cleanly when one is lost."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from db.engine import Database
from db.models import (
    ActorKind,
    ExportFormat,
    ExportLayout,
    FinancialStatus,
    Order,
    OrderStatus,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
)
from db.types import AMOUNT_SCALE
from demo.generator import seed_demo
from domain import exports
from domain.actors import Actor, Scope
from domain.orders import LineInput, OrderInput, SupplierOrderInput, import_orders
from domain.spreadsheets import CsvWriter, XlsxWriter, money_text
from domain.supplier_orders import PackageInput
from tests.factories import Tenant

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def awkward_orders(tenant: Tenant) -> list[OrderInput]:
    """Quotes, commas, line breaks, formula prefixes, non-ASCII, empty against missing values; several supplier
    orders and packages per order, a line no supplier fulfils."""
    first, second = tenant.supplier_ids
    orders = []
    for index, prefix in enumerate(("=", "+", "-", "@", "\t", "\r", "", "'")):
        ali = f"{tenant.shop_id}9{index}"
        currency = ("USD", "JPY", "EUR")[index % 3]
        whole = currency == "JPY"
        orders.append(
            OrderInput(
                number=f"#{2000 + index}",
                currency=currency,
                customer_name=("" if index == 1 else f'{prefix}Zoë "Z", Ñandú'),
                customer_email=None if index == 2 else f"ana{index}@example.com",
                customer_phone=("" if index == 3 else None) if index % 2 else f"{prefix}600, 000",
                shipping_address=(
                    None
                    if index == 4
                    else {
                        "name": f"{prefix}Ana\nLópez",
                        "address1": 'Calle "1", bajo',
                        "address2": "" if index % 2 else None,
                        "city": "São Paulo",
                        "zip": f"{prefix}01310",
                        "country_code": "BR",
                        "phone": f"{prefix}+55 11",
                    }
                ),
                shipping=Decimal(499 if whole else "4.99"),
                tags=(f"{prefix}vip", "spring") if index % 3 else (),
                note=None if index == 5 else f'{prefix}Say "hi",\r\nthen leave; 日本語',
                created_at=NOW + timedelta(minutes=index % 3),
                lines=[
                    LineInput(
                        title=f'{prefix}Phone case "slim", 6"',
                        variant_title=("" if index % 2 else f"{prefix}Black, matte") if index != 6 else None,
                        quantity=2 + index,
                        unit_price=Decimal(1250 if whole else "12.50"),
                        sku=None if index == 7 else f"{prefix}CASE-1",
                        supplier_id=first,
                        aliexpress_order_id=f"{ali}1",
                    ),
                    LineInput(
                        title="Charger\nUSB-C",
                        quantity=1,
                        unit_price=Decimal(2000 if whole else "20.00"),
                        sku="",
                        supplier_id=second,
                        aliexpress_order_id=f"{ali}2",
                    ),
                    LineInput(
                        title=f"{prefix}Gift wrap", quantity=1, unit_price=Decimal(1 if whole else "0.99")
                    ),
                ],
                supplier_orders=[
                    SupplierOrderInput(
                        aliexpress_order_id=f"{ali}1",
                        cost=Decimal(910 if whole else "9.10"),
                        status=SupplierOrderStatus.WAIT_BUYER_ACCEPT_GOODS,
                        packages=[
                            PackageInput(tracking_number=f"{prefix}LP{index},A", carrier='"Cainiao"'),
                            PackageInput(tracking_number=f"LP{index}B", carrier='"Cainiao"'),
                        ],
                    ),
                    SupplierOrderInput(
                        aliexpress_order_id=f"{ali}2",
                        cost=Decimal(800 if whole else "8.01"),
                        status=SupplierOrderStatus.FINISH,
                        end_reason=f"{prefix}buyer_accept_goods" if index % 2 else "buyer_accept_goods",
                        packages=[PackageInput(tracking_number=f"{prefix}X{index}", carrier=None)],
                    ),
                ],
            )
        )
    return orders


async def general_path_bytes(db: Database, clause: object, layout: ExportLayout, path: Path) -> bytes:
    """The file as the general row path writes it (the XLSX export's path, and the ORDER layout's)."""
    writer = CsvWriter(path, exports.columns_for(layout))
    async for batch in exports.order_batches(db, clause, 7):
        writer.write_rows(exports.batch_rows(batch, layout, writer))
    writer.finish([])
    return path.read_bytes()


@pytest.mark.parametrize("batch_orders", [1, 1000])
async def test_line_item_csv_path_writes_the_general_paths_bytes(
    db: Database, tenant: Tenant, tmp_path: Path, batch_orders: int
) -> None:
    await seed_demo(db, orders=150, secret_key="export-test", now=NOW)
    actor = Actor(kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset(Scope.ALL))
    async with db.write() as session:
        imported = [result.order.id for result in await import_orders(session, actor, awkward_orders(tenant))]
        await session.execute(
            update(Supplier).where(Supplier.id == tenant.supplier_ids[1]).values(name='=Evil, "Co"')
        )
        await session.execute(
            update(Order).where(Order.id == imported[0]).values(financial_status=FinancialStatus.VOIDED)
        )
        # What validation keeps out of new orders may still be stored: formula-like emails, sub-cent amounts.
        await session.execute(
            update(Order)
            .where(Order.id.in_(imported[3:6]))
            .values(customer_email="=" + Order.customer_email, total=Order.total + Decimal("0.0049"))
        )
        await session.execute(
            update(Order)
            .where(Order.id == imported[1])
            .values(status=OrderStatus.CANCELLED, cancelled_at=NOW + timedelta(days=1, microseconds=999_999))
        )
        await session.execute(
            update(SupplierOrder)
            .where(SupplierOrder.order_id == imported[2])
            .values(status=SupplierOrderStatus.SELLER_PART_SEND_GOODS)
        )
        shops = list((await session.execute(select(Order.shop_id).group_by(Order.shop_id))).scalars())
        demo_lines = await session.scalar(
            select(func.count()).select_from(Order).where(Order.shop_id != tenant.shop_id)
        )
    assert len(shops) >= 2 and demo_lines
    for shop_id in shops:
        scope = exports.ExportScope(shop_id=shop_id, query=None, order_ids=None, now=NOW)
        for layout in (ExportLayout.LINE_ITEM, ExportLayout.ORDER):
            expected = await general_path_bytes(db, scope.clause(), layout, tmp_path / "expected.csv")
            async with db.read() as session:
                total = await exports.count_rows(session, scope.clause(), layout)
            # One process; three from the fork server, and two forked from this process, reading and
            # formatting batches in turn.
            for processes, one_shot in ((1, False), (3, False), (2, True)):
                path = tmp_path / f"{shop_id}-{layout.value}-{processes}.csv"
                result = await exports.write_orders_file(
                    db,
                    scope=scope,
                    format=ExportFormat.CSV,
                    layout=layout,
                    path=path,
                    total=total,
                    batch_orders=batch_orders,
                    processes=processes,
                    one_shot=one_shot,
                )
                assert result.rows == total > 0
                assert path.read_bytes() == expected, (shop_id, layout, processes)


def export_processes() -> list[multiprocessing.process.BaseProcess]:
    return [process for process in multiprocessing.active_children() if process.name == "dropdesk-export"]


@pytest.mark.parametrize("one_shot", [False, True])
@pytest.mark.parametrize("failure", ["process killed", "progress fails", "process frozen, progress fails"])
async def test_export_processes_end_with_the_export_when_it_fails(
    db: Database, tenant: Tenant, tmp_path: Path, failure: str, one_shot: bool
) -> None:
    await seed_demo(db, orders=60, secret_key="export-test", now=NOW)
    scope = exports.ExportScope(shop_id=tenant.shop_id + 1, query=None, order_ids=None, now=NOW)
    async with db.read() as session:
        total = await exports.count_rows(session, scope.clause(), ExportLayout.LINE_ITEM)
    calls: list[int] = []

    async def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) > 1:
            return
        running = export_processes()
        assert len(running) == 2
        if failure == "process killed":
            os.kill(running[0].pid or 0, signal.SIGKILL)
            return
        if failure.startswith("process frozen"):
            # A stopped process ignores a polite signal until it is continued: it must not hold the export up.
            os.kill(running[0].pid or 0, signal.SIGSTOP)
        raise RuntimeError("the caller gave up")

    expected = exports.ExportProcessError if failure == "process killed" else RuntimeError
    with pytest.raises(expected) as raised:
        export = exports.write_orders_file(
            db,
            scope=scope,
            format=ExportFormat.CSV,
            layout=ExportLayout.LINE_ITEM,
            path=tmp_path / "orders.csv",
            total=total,
            progress=progress,
            batch_orders=1,
            processes=2,
            one_shot=one_shot,
        )
        await asyncio.wait_for(export, 30)
    assert total > 4
    assert calls[-1] < total
    if failure == "process killed":
        assert "stopped before it finished" in str(raised.value)
    assert export_processes() == []


def test_an_aborted_workbook_leaves_no_temporary_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    writer = XlsxWriter(tmp_path / "orders.xlsx", exports.columns_for(ExportLayout.LINE_ITEM))
    writer.write_rows([[("#1001", 2)]])
    stream = Path(writer._sheet._writer.out)
    assert stream.exists()
    writer.abort()
    del writer
    gc.collect()
    assert not stream.exists()
    assert not (tmp_path / "orders.xlsx").exists()
    assert "Exception ignored" not in capfd.readouterr().err


@pytest.mark.parametrize("digits", [0, 2, 3, 5])
def test_money_text_is_decimals_rounding_and_text(digits: int) -> None:
    step = Decimal(1).scaleb(-digits)
    units = [0, 1, -1, 49, 50, 51, -50, -51, 5000, -15000, 10**15 + 7, -(10**15)]
    units += [
        sign * (value * 10**power + tail)
        for sign in (1, -1)
        for power in range(6)
        for value in (3, 1234)
        for tail in (0, 5)
    ]
    for value in units:
        assert money_text(value, digits) == str((Decimal(value) / AMOUNT_SCALE).quantize(step)), value
