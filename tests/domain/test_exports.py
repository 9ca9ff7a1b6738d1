"""Order exports in the domain: rows and columns, CSV and XLSX files, injection, the build job, expiry."""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.worker import Worker
from config.metrics import REGISTRY
from config.settings import Settings, parse_smtp_url
from db.engine import Database
from db.jobs import Job, JobContext, JobStatus, enqueue
from db.models import (
    ActorKind,
    DisputeKind,
    DisputeReason,
    Export,
    ExportFormat,
    ExportLayout,
    ExportStatus,
    Order,
    SupplierOrder,
    SupplierOrderStatus,
)
from db.types import utcnow
from domain import disputes, exports
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.orders import LineInput, OrderInput, SupplierOrderInput, import_orders
from domain.reactions import reacts_to
from domain.spreadsheets import FORMULA_PREFIXES, currency_format
from domain.supplier_orders import PackageInput
from domain.topics import Topic, TopicChanged
from tests.factories import Tenant

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
announced: list[TopicChanged] = []


@reacts_to(TopicChanged)
async def _collect(session: AsyncSession, actor: Actor, event: TopicChanged) -> None:
    if event.topic is Topic.EXPORTS_FINISHED:
        announced.append(event)


def merchant(tenant: Tenant, scopes: tuple[str, ...] = Scope.ALL) -> Actor:
    return Actor(kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset(scopes))


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db.url,
        secret_key="export-test-key",
        public_url="http://dropdesk.test",
        smtp_url="",
        data_dir=tmp_path,
    )


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def order(
    tenant: Tenant,
    number: str,
    *,
    note: str | None = None,
    name: str = "Ana Lopez",
    status: SupplierOrderStatus = SupplierOrderStatus.WAIT_BUYER_ACCEPT_GOODS,
    created_at: datetime = NOW,
) -> OrderInput:
    """Two lines from two suppliers: 2 x 12.50 (cost 9.10, shipped with tracking) and 1 x 20.00 (cost 8.00)."""
    first, second = f"{tenant.shop_id}{number.strip('#')}1", f"{tenant.shop_id}{number.strip('#')}2"
    return OrderInput(
        number=number,
        currency="USD",
        customer_name=name,
        customer_email="ana@example.com",
        customer_phone="600 000 000",
        shipping_address={"name": name, "address1": "Calle 1", "city": "Madrid", "country_code": "ES"},
        shipping=Decimal("4.99"),
        tags=("vip", "spring"),
        note=note,
        created_at=created_at,
        lines=[
            LineInput(
                title="Phone case",
                variant_title="Black",
                quantity=2,
                unit_price=Decimal("12.50"),
                sku="CASE-1",
                supplier_id=tenant.supplier_ids[0],
                aliexpress_order_id=first,
            ),
            LineInput(
                title="Charger",
                quantity=1,
                unit_price=Decimal("20.00"),
                sku="CHG-1",
                supplier_id=tenant.supplier_ids[1],
                aliexpress_order_id=second,
            ),
        ],
        supplier_orders=[
            SupplierOrderInput(
                aliexpress_order_id=first,
                cost=Decimal("9.10"),
                status=status,
                packages=[PackageInput(tracking_number=f"LP{number.strip('#')}", carrier="Cainiao")]
                if status is SupplierOrderStatus.WAIT_BUYER_ACCEPT_GOODS
                else [],
            ),
            SupplierOrderInput(aliexpress_order_id=second, cost=Decimal("8.00"), status=status),
        ],
    )


async def add_orders(db: Database, tenant: Tenant, *orders: OrderInput) -> list[int]:
    async with db.write() as session:
        results = await import_orders(session, merchant(tenant), list(orders))
    return [result.order.id for result in results]


async def export_file(
    db: Database,
    tenant: Tenant,
    path: Path,
    fmt: ExportFormat,
    layout: ExportLayout,
    query: str | None = None,
) -> exports.FileResult:
    seen: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        seen.append((done, total))

    result = await exports.export_to_file(
        db,
        shop_id=tenant.shop_id,
        format=fmt,
        layout=layout,
        query=query,
        path=path,
        progress=progress,
        now=NOW,
        batch_orders=2,
    )
    assert seen[0] == (0, result.rows) and seen[-1] == (result.rows, result.rows)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    return result


async def test_a_failed_export_to_file_leaves_what_was_at_its_path(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    await add_orders(db, tenant, *(order(tenant, f"#{1001 + n}") for n in range(4)))
    path = tmp_path / "orders.csv"
    path.write_text("yesterday's file")

    async def progress(done: int, total: int) -> None:
        if done:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        await exports.export_to_file(
            db,
            shop_id=tenant.shop_id,
            format=ExportFormat.CSV,
            layout=ExportLayout.LINE_ITEM,
            query=None,
            path=path,
            progress=progress,
            now=NOW,
            batch_orders=1,
        )
    assert path.read_text() == "yesterday's file"
    assert [entry.name for entry in tmp_path.iterdir()] == ["orders.csv"]


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


# --- files ------------------------------------------------------------------------------------------------


async def test_csv_is_utf8_with_bom_crlf_rfc4180_one_row_per_line(
    db: Database, tenant: Tenant, other_tenant: Tenant, tmp_path: Path
) -> None:
    await add_orders(db, tenant, order(tenant, "#1001", note='Say "hi",\nthen leave', name="Zoë Ñandú"))
    await add_orders(db, tenant, order(tenant, "#1002", created_at=NOW + timedelta(hours=1)))
    await add_orders(db, other_tenant, order(other_tenant, "#1001"))
    path = tmp_path / "orders.csv"
    result = await export_file(db, tenant, path, ExportFormat.CSV, ExportLayout.LINE_ITEM)

    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    # The only bare line feeds are inside the quoted note, repeated on both of the order's rows.
    assert raw.count(b"\r\n") == raw.count(b"\n") - 2 == 5
    assert b'"Say ""hi"",\nthen leave"' in raw
    assert "Zoë Ñandú".encode() in raw
    rows = read_csv(path)
    assert result.rows == len(rows) == 4
    assert list(rows[0])[: len(exports.ORDER_COLUMNS)] == [c.name for c in exports.ORDER_COLUMNS]
    assert [column.name for column in exports.columns_for(ExportLayout.LINE_ITEM)] == list(rows[0])
    first, second = rows[0], rows[1]
    assert [row["Name"] for row in rows] == ["#1001", "#1001", "#1002", "#1002"]
    assert (first["Lineitem name"], first["Lineitem quantity"], first["Lineitem price"]) == (
        "Phone case - Black",
        "2",
        "12.50",
    )
    assert (second["Lineitem name"], second["Lineitem sku"]) == ("Charger", "CHG-1")
    assert (first["Subtotal"], first["Shipping"], first["Total"]) == ("45.00", "4.99", "49.99")
    assert first["Created at"] == "2026-11-20 12:00:00 +0000"
    assert (first["Financial Status"], first["Fulfillment Status"]) == ("paid", "fulfilled")
    # Supplier Cost is the whole order's (9.10 + 8.00) and Margin is total less it: the GraphQL formula.
    assert (first["Supplier Cost"], first["Margin"]) == ("17.10", "32.89")
    assert first["Supplier"].endswith("-0") and second["Supplier"].endswith("-1")
    assert (first["Tracking Numbers"], first["Carrier"]) == ("LP1001", "Cainiao")
    assert second["Tracking Numbers"] == ""
    assert first["AliExpress Status"] == "WAIT_BUYER_ACCEPT_GOODS"
    assert (first["Tags"], first["Shipping City"], first["Billing Name"]) == (
        "vip, spring",
        "Madrid",
        "Zoë Ñandú",
    )
    assert (first["Open Cancellation Request"], first["Refunded Amount"]) == ("", "")


async def test_order_layout_has_one_row_per_order_with_lines_joined(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    await add_orders(
        db,
        tenant,
        order(tenant, "#1001"),
        order(tenant, "#1002", status=SupplierOrderStatus.WAIT_SELLER_SEND_GOODS),
    )
    path = tmp_path / "orders.csv"
    result = await export_file(db, tenant, path, ExportFormat.CSV, ExportLayout.ORDER)
    rows = read_csv(path)
    assert result.rows == len(rows) == 2
    shipped, waiting = rows
    assert shipped["Lineitem name"] == "Phone case - Black; Charger"
    assert shipped["Lineitem quantity"] == "2; 1"
    assert shipped["Lineitem sku"] == "CASE-1; CHG-1"
    assert shipped["AliExpress Order Id"].count(";") == 1
    assert waiting["Fulfillment Status"] == "unfulfilled"
    assert waiting["Lineitem fulfillment status"] == "unfulfilled; unfulfilled"


async def test_query_narrows_the_export_like_orders_query(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    await add_orders(
        db,
        tenant,
        order(tenant, "#1001"),
        order(tenant, "#1002", status=SupplierOrderStatus.WAIT_SELLER_SEND_GOODS),
    )
    path = tmp_path / "orders.csv"
    await export_file(
        db, tenant, path, ExportFormat.CSV, ExportLayout.ORDER, query="supplier_status:wait_seller_send_goods"
    )
    assert [row["Name"] for row in read_csv(path)] == ["#1002"]
    with pytest.raises(DomainError) as caught:
        await export_file(db, tenant, path, ExportFormat.CSV, ExportLayout.ORDER, query="total:>>")
    assert caught.value.errors[0].field == ("query",)


async def test_dispute_status_is_the_latest_dispute_of_each_supplier_order(
    db: Database, tenant: Tenant, other_tenant: Tenant, tmp_path: Path
) -> None:
    disputed, _, _ = await add_orders(
        db, tenant, order(tenant, "#1001"), order(tenant, "#1002"), order(tenant, "#1003")
    )
    [foreign] = await add_orders(db, other_tenant, order(other_tenant, "#1001"))
    rules = disputes.DisputeRules(evidence_dir=tmp_path / "evidence")

    async def open_on(tenant: Tenant, order_id: int, index: int) -> int:
        async with db.write() as session:
            so_ids = await session.scalars(
                select(SupplierOrder.id).where(SupplierOrder.order_id == order_id).order_by(SupplierOrder.id)
            )
            dispute = await disputes.open_dispute(
                session,
                merchant(tenant),
                list(so_ids)[index],
                DisputeReason.DAMAGED,
                DisputeKind.REFUND_ONLY,
                Decimal("1.00"),
                "arrived broken",
                rules=rules,
            )
            return dispute.id

    first = await open_on(tenant, disputed, 0)
    async with db.write() as session:
        await disputes.cancel(session, merchant(tenant), first)
    await open_on(tenant, disputed, 0)
    cancelled = await open_on(tenant, disputed, 1)
    async with db.write() as session:
        await disputes.cancel(session, merchant(tenant), cancelled)
    await open_on(other_tenant, foreign, 0)

    path = tmp_path / "orders.csv"
    await export_file(db, tenant, path, ExportFormat.CSV, ExportLayout.LINE_ITEM)
    assert [(row["Name"], row["Dispute Status"]) for row in read_csv(path)] == [
        ("#1001", "AWAITING_SUPPLIER"),
        ("#1001", "CANCELLED"),
        ("#1002", ""),
        ("#1002", ""),
        ("#1003", ""),
        ("#1003", ""),
    ]
    await export_file(db, tenant, path, ExportFormat.CSV, ExportLayout.ORDER)
    assert [row["Dispute Status"] for row in read_csv(path)] == ["AWAITING_SUPPLIER; CANCELLED", "", ""]


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
@pytest.mark.parametrize("fmt", [ExportFormat.CSV, ExportFormat.XLSX])
async def test_every_formula_prefix_is_neutralised(
    db: Database, tenant: Tenant, tmp_path: Path, prefix: str, fmt: ExportFormat
) -> None:
    payload = f'{prefix}HYPERLINK("http://evil.test","x")'
    await add_orders(db, tenant, order(tenant, "#1001", note=payload, name=f"{prefix}cmd|' /C calc'!A0"))
    path = tmp_path / f"orders.{fmt.value.lower()}"
    await export_file(db, tenant, path, fmt, ExportLayout.ORDER)
    if fmt is ExportFormat.CSV:
        row = read_csv(path)[0]
        note, billing = row["Notes"], row["Billing Name"]
    else:
        sheet = load_workbook(path)["Orders"]
        header = [cell.value for cell in sheet[1]]
        values = [cell.value for cell in sheet[2]]
        note, billing = values[header.index("Notes")], values[header.index("Billing Name")]
        assert all(cell.data_type != "f" for cell in sheet[2])
    assert note == "'" + payload
    assert billing == f"'{prefix}cmd|' /C calc'!A0"


async def test_xlsx_has_typed_cells_frozen_header_filter_widths_and_a_summary_chart(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    await add_orders(
        db, tenant, order(tenant, "#1001"), order(tenant, "#1002", created_at=NOW + timedelta(1))
    )
    path = tmp_path / "orders.xlsx"
    result = await export_file(db, tenant, path, ExportFormat.XLSX, ExportLayout.LINE_ITEM)
    assert result.rows == 4
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["Orders", "Summary"]
    sheet = workbook["Orders"]
    header = [cell.value for cell in sheet[1]]
    assert header == [column.name for column in exports.columns_for(ExportLayout.LINE_ITEM)]
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:AO{result.rows + 1}"
    assert sheet.column_dimensions["B"].width == 28
    row = {name: cell for name, cell in zip(header, sheet[2], strict=True)}
    assert row["Total"].value == Decimal("49.99") or row["Total"].value == pytest.approx(49.99)
    assert row["Total"].data_type == "n" and row["Total"].number_format == currency_format("USD")
    assert "$" in row["Total"].number_format and "0.00" in row["Total"].number_format
    assert row["Lineitem quantity"].value == 2 and row["Lineitem quantity"].data_type == "n"
    assert row["Created at"].value == datetime(2026, 11, 20, 12, 0)
    assert row["Created at"].is_date
    assert row["Margin"].value == pytest.approx(32.89)
    assert row["Name"].value == "#1001"

    summary = workbook["Summary"]
    assert [[cell.value for cell in line] for line in summary.iter_rows()] == [
        ["Status", "Currency", "Orders", "Total"],
        ["OPEN", "USD", 2, pytest.approx(99.98)],
    ]
    with zipfile.ZipFile(path) as archive:
        charts = [name for name in archive.namelist() if name.startswith("xl/charts/chart")]
        assert len(charts) == 1
        chart = archive.read(charts[0]).decode()
    assert "<barChart>" in chart and "'Summary'!$C$2" in chart and "Orders by status" in chart


def test_currency_formats_follow_the_minor_unit() -> None:
    assert currency_format("JPY") == '"¥"#,##0;-"¥"#,##0'
    assert currency_format("KWD") == '#,##0.000 "KWD";-#,##0.000 "KWD"'


def test_smtp_url_parsing() -> None:
    plain = parse_smtp_url("smtp://mail.test:2525", "a@b.test")
    assert (plain.host, plain.port, plain.starttls, plain.use_tls, plain.username) == (
        "mail.test",
        2525,
        False,
        False,
        None,
    )
    secure = parse_smtp_url("smtp://me%40shop.test:p%3Ass@mail.test:587?starttls=1", "a@b.test")
    assert (secure.username, secure.password, secure.starttls, secure.port) == (
        "me@shop.test",
        "p:ss",
        True,
        587,
    )
    assert parse_smtp_url("smtps://mail.test", "a@b.test").port == 465
    with pytest.raises(ValueError):
        parse_smtp_url("http://mail.test", "a@b.test")


# --- the use case and the jobs -----------------------------------------------------------------------------


async def create(db: Database, actor: Actor, **fields: Any) -> Export:
    async with db.write() as session:
        return await exports.create_export(session, actor, exports.ExportRequest(**fields), now=NOW)


@pytest.mark.parametrize(
    ("fields", "path", "code"),
    [
        ({"query": "status:nonsense"}, ("query",), ErrorCode.INVALID),
        ({"query": "total:>5\x00"}, ("query",), ErrorCode.INVALID),
        ({"query": "\ud800"}, ("query",), ErrorCode.INVALID),
        ({"email": "not-an-email"}, ("email",), ErrorCode.INVALID),
        ({"email": "a\x00@b.test"}, ("email",), ErrorCode.INVALID),
        ({"order_ids": []}, ("ids",), ErrorCode.INVALID),
        ({"order_ids": list(range(1, 10_002))}, ("ids",), ErrorCode.TOO_MANY),
    ],
)
async def test_bad_input_is_refused_at_once_naming_the_field(
    db: Database, tenant: Tenant, fields: dict[str, Any], path: tuple[str, ...], code: ErrorCode
) -> None:
    with pytest.raises(DomainError) as caught:
        await create(db, merchant(tenant), **fields)
    assert (caught.value.errors[0].field, caught.value.errors[0].code) == (path, code)
    async with db.read() as session:
        assert (await session.execute(select(Export))).first() is None


async def test_needs_write_exports_and_own_orders(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    [foreign] = await add_orders(db, other_tenant, order(other_tenant, "#1001"))
    [own] = await add_orders(db, tenant, order(tenant, "#1001"))
    with pytest.raises(DomainError) as caught:
        await create(db, merchant(tenant, (Scope.READ_ORDERS, Scope.WRITE_ORDERS)))
    assert caught.value.errors[0].code is ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as caught:
        await create(db, merchant(tenant), order_ids=[own, foreign])
    assert (caught.value.errors[0].field, caught.value.errors[0].code) == (("ids", "1"), ErrorCode.NOT_FOUND)
    export = await create(db, merchant(tenant), order_ids=[own], email="me@shop.test")
    assert (export.status, export.order_ids, export.email) == (ExportStatus.PENDING, [own], "me@shop.test")
    async with db.read() as session:
        job = await session.get(Job, export.job_id)
    assert job is not None and job.kind == exports.BUILD_KIND and job.payload == {"exportId": export.id}


async def stored(db: Database, export_id: int) -> Export:
    async with db.read() as session:
        export = await session.get(Export, export_id, populate_existing=True)
    assert export is not None
    return export


async def test_build_job_writes_the_file_records_progress_and_announces(
    db: Database, tenant: Tenant, settings: Settings
) -> None:
    await add_orders(
        db, tenant, *(order(tenant, f"#{1001 + n}", created_at=NOW + timedelta(minutes=n)) for n in range(5))
    )
    export = await create(db, merchant(tenant), format=ExportFormat.XLSX, query="-number:1003")
    announced.clear()
    clock = Clock(utcnow() + timedelta(minutes=1))
    worker = Worker(db, replace(settings, export_batch_orders=2), clock=clock)
    durations = {"format": "xlsx", "outcome": "succeeded"}
    timed_before = REGISTRY.get_sample_value("dropdesk_export_duration_seconds_count", durations) or 0
    assert await worker.drain() == 1
    assert REGISTRY.get_sample_value("dropdesk_export_duration_seconds_count", durations) == timed_before + 1

    done = await stored(db, export.id)
    assert (done.status, done.row_count, done.rows_done, done.rows_total) == (ExportStatus.SUCCEEDED, 8, 8, 8)
    assert (done.finished_at, done.expires_at) == (clock.now, clock.now + timedelta(days=7))
    assert done.file_name == f"export-{export.id}-1.xlsx" and done.attempt == 1
    path = settings.export_dir / done.file_name
    assert done.file_size == path.stat().st_size
    assert load_workbook(path)["Orders"].max_row == 9
    assert list(settings.export_dir.glob("*.part")) == []
    assert [(event.node_type, event.node_id, event.shop_id) for event in announced] == [
        ("Export", export.id, tenant.shop_id)
    ]
    url = exports.download_url(settings, done)
    assert url is not None and url.startswith(f"http://dropdesk.test/exports/{export.id}/download?expires=")
    async with db.read() as session:
        progress = await exports.export_progress(session, merchant(tenant), export.id)
        hidden = await exports.export_progress(session, Actor.system(tenant.shop_id + 1), export.id)
    assert progress == exports.ExportProgress(status=ExportStatus.SUCCEEDED, done=8, total=8)
    assert hidden is None
    # Without an email address nothing is mailed.
    async with db.read() as session:
        kinds = list((await session.execute(select(Job.kind))).scalars())
    assert exports.NOTIFY_KIND not in kinds


async def test_a_csv_export_job_in_several_processes_writes_the_same_file(
    db: Database, tenant: Tenant, settings: Settings
) -> None:
    await add_orders(
        db, tenant, *(order(tenant, f"#{1001 + n}", created_at=NOW + timedelta(minutes=n)) for n in range(7))
    )
    files = []
    for processes in (1, 2):
        export = await create(db, merchant(tenant), format=ExportFormat.CSV, query="-number:1003")
        worker = Worker(
            db,
            replace(settings, export_batch_orders=1, export_processes=processes),
            clock=Clock(utcnow() + timedelta(minutes=1)),
        )
        assert await worker.drain() == 1
        done = await stored(db, export.id)
        assert (done.status, done.row_count, done.rows_done, done.rows_total) == (
            ExportStatus.SUCCEEDED,
            12,
            12,
            12,
        )
        assert done.file_name is not None
        files.append((settings.export_dir / done.file_name).read_bytes())
    assert files[0] == files[1]
    assert files[0].count(b"\r\n") == 13


async def test_ranges_handed_out_before_orders_leave_or_enter_the_scope_hold_each_order_once(
    db: Database, tenant: Tenant
) -> None:
    """An export process reads the range it was given, not a count from its start: orders that left or entered
    the scope after the ranges were found do not push a range onto its neighbour's orders."""
    minutes = [NOW + timedelta(minutes=n) for n in range(12)]
    ids = await add_orders(
        db, tenant, *(order(tenant, f"#{1001 + n}", created_at=at) for n, at in enumerate(minutes))
    )
    scope = exports.ExportScope(shop_id=tenant.shop_id, query="number:<=1999", order_ids=None, now=NOW)
    ranges = [key_range async for key_range in exports._key_ranges(db, scope.clause(), 3)]
    assert len(ranges) == 5 and ranges[-1][1] is None
    async with db.write() as session:  # #1005 and #1006 leave the scope, #1100 and #1101 enter it
        await session.execute(update(Order).where(Order.id.in_(ids[4:6])).values(number_value=5000))
    await add_orders(
        db,
        tenant,
        *(order(tenant, f"#{1100 + n}", created_at=minutes[4] + timedelta(seconds=n + 1)) for n in range(2)),
    )
    context = exports._process_context(one_shot=False)
    ours, theirs = context.Pipe()
    process = context.Process(target=exports._serve_csv_chunks, args=(db.url, scope, 3, theirs), daemon=True)
    process.start()
    theirs.close()
    written = bytearray()
    try:
        for key_range in ranges:
            ours.send(key_range)
            last = False
            while not last:
                chunk = await asyncio.to_thread(exports._answer, ours, 60, written.extend)
                last = chunk.last
        ours.send(None)
        await asyncio.to_thread(process.join, 60)
    finally:
        process.kill()
    lines = written.decode()
    names = [line.split(",")[0] for line in lines.split("\r\n") if line]
    expected = [f"#{1001 + n}" for n in range(12) if n not in (4, 5)] + ["#1100", "#1101"]
    assert sorted(names) == sorted(name for name in expected for _ in range(2))


async def test_a_superseded_attempt_cannot_write_over_the_newer_one(
    db: Database, tenant: Tenant, settings: Settings
) -> None:
    await add_orders(db, tenant, order(tenant, "#1001"))
    export = await create(db, merchant(tenant))
    async with db.read() as session:
        job = await session.get(Job, export.job_id)
    assert job is not None
    context = JobContext(database=db, settings=settings, worker_name="test")
    first = await exports._take_over(context, replace_attempts(job, 1), export.id)
    second = await exports._take_over(context, replace_attempts(job, 2), export.id)
    assert first is not None and second is not None
    assert await exports._take_over(context, replace_attempts(job, 1), export.id) is None
    with pytest.raises(exports.Superseded):
        await exports._update_fenced(db, export.id, 1, rows_done=99)
    await exports._update_fenced(db, export.id, 2, rows_done=1)
    assert (await stored(db, export.id)).rows_done == 1


def replace_attempts(job: Job, attempts: int) -> Job:
    copy = Job(
        id=job.id, kind=job.kind, payload=job.payload, attempts=attempts, max_attempts=job.max_attempts
    )
    return copy


async def test_failing_export_is_retried_then_failed_with_its_error(
    db: Database, tenant: Tenant, settings: Settings, tmp_path: Path
) -> None:
    await add_orders(db, tenant, order(tenant, "#1001"))
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the export directory should be")
    broken = replace(settings, export_dir_override=str(blocker / "exports"))
    export = await create(db, merchant(tenant), email="me@shop.test")
    announced.clear()
    clock = Clock(utcnow() + timedelta(minutes=1))
    worker = Worker(db, broken, clock=clock, rand=lambda: 1.0)
    assert await worker.drain() == 1
    retrying = await stored(db, export.id)
    assert retrying.status is ExportStatus.PENDING
    assert retrying.error is not None and retrying.error.startswith("attempt 1 of 3 failed, retrying")
    assert announced == []
    for _ in range(2):
        clock.now += timedelta(hours=1)
        assert await worker.drain() >= 1
    failed = await stored(db, export.id)
    assert failed.status is ExportStatus.FAILED and failed.attempt == 3
    assert failed.error is not None and "NotADirectoryError" in failed.error
    assert exports.download_url(settings, failed) is None
    assert [event.node_id for event in announced] == [export.id]
    async with db.read() as session:
        build = await session.get(Job, export.job_id)
        notify = (await session.execute(select(Job).where(Job.kind == exports.NOTIFY_KIND))).scalar_one()
    assert build is not None and build.status is JobStatus.DONE
    assert notify.payload == {"exportId": export.id}


async def test_expiry_deletes_the_file_and_fails_exports_whose_job_died(
    db: Database, tenant: Tenant, settings: Settings
) -> None:
    await add_orders(db, tenant, order(tenant, "#1001"))
    done = await create(db, merchant(tenant))
    clock = Clock(utcnow() + timedelta(minutes=1))
    worker = Worker(db, settings, clock=clock)
    await worker.drain()
    finished = await stored(db, done.id)
    assert finished.file_name is not None
    path = settings.export_dir / finished.file_name
    assert path.exists()

    stranded = await create(db, merchant(tenant))
    async with db.write() as session:
        await session.execute(
            update(Job).where(Job.id == stranded.job_id).values(status=JobStatus.DEAD, attempts=3)
        )
        await session.execute(
            update(Export).where(Export.id == stranded.id).values(status=ExportStatus.RUNNING)
        )
    announced.clear()
    clock.now += timedelta(days=7, minutes=1)
    async with db.write() as session:
        await enqueue(session, exports.EXPIRE_KIND, run_at=clock.now)
    await worker.drain()

    expired = await stored(db, done.id)
    assert (expired.status, expired.file_name) == (ExportStatus.EXPIRED, None)
    assert not path.exists()
    assert exports.download_url(settings, expired) is None
    failed = await stored(db, stranded.id)
    assert (failed.status, failed.error) == (ExportStatus.FAILED, exports.JOB_DIED)
    assert [event.node_id for event in announced] == [stranded.id]


async def test_two_attempts_racing_on_one_export_leave_one_finished_file(
    db: Database, tenant: Tenant, settings: Settings
) -> None:
    await add_orders(db, tenant, *(order(tenant, f"#{1001 + n}") for n in range(6)))
    export = await create(db, merchant(tenant))
    async with db.read() as session:
        job = await session.get(Job, export.job_id)
    assert job is not None
    context = JobContext(database=db, settings=replace(settings, export_batch_orders=1), worker_name="race")
    await asyncio.gather(
        exports.build_export(context, replace_attempts(job, 1)),
        exports.build_export(context, replace_attempts(job, 2)),
    )
    done = await stored(db, export.id)
    assert done.status is ExportStatus.SUCCEEDED and done.row_count == 12
    assert sorted(path.name for path in settings.export_dir.iterdir()) == [done.file_name]
    assert done.file_name == f"export-{export.id}-{done.attempt}.csv"
    assert len(read_csv(settings.export_dir / done.file_name)) == 12
