"""Order exports: a merchant asks for a CSV or Excel file of orders; a background job builds it and mails it.

The job streams orders from the database in keyset batches (never the whole result in memory) into one
spreadsheet writer, and records its progress after each batch. Delivery is at least once: when a worker dies,
the job engine runs the job again after its lease, and the new attempt takes the export over and starts from
the first row into a file of its own; the earlier attempt, should it still be running, can no longer write to
the export (every update is fenced by the attempt number).

Statuses: PENDING → RUNNING → SUCCEEDED | FAILED; SUCCEEDED → EXPIRED when its link lapses and the file is
deleted. A failed attempt that will be retried puts the export back to PENDING with the error; the last one
marks it FAILED. ``exports.notify`` mails the outcome, ``exports.expire`` (hourly) deletes lapsed files and
fails exports whose job died without finishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import multiprocessing
import pickle
import signal
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from orjson import loads
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    Text,
    and_,
    cast,
    func,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from config.metrics import EXPORT_DURATION
from config.settings import Settings
from db.engine import Database
from db.id_lists import among, rows_among
from db.jobs import Job, JobContext, JobStatus, add_with_job, enqueue, handler, register_schedule
from db.models import (
    CancellationRequest,
    Dispute,
    Export,
    ExportFormat,
    ExportLayout,
    ExportStatus,
    FinancialStatus,
    Order,
    OrderLine,
    Package,
    Return,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
)
from db.search import SearchSyntaxError, order_filter
from db.types import AMOUNT_SCALE, utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.figures import figure_unit_sums, figure_units, order_figure_units
from domain.links import signed_url
from domain.mail import send_mail
from domain.notes import notes_text_by_order
from domain.spreadsheets import (
    Cells,
    Column,
    CsvCells,
    CsvWriter,
    Kind,
    SheetWriter,
    SummaryLine,
    csv_lines,
    open_writer,
    text_cell,
)
from domain.topics import Topic, announce
from domain.validation import Checker, unstorable

BUILD_KIND = "exports.build"
NOTIFY_KIND = "exports.notify"
EXPIRE_KIND = "exports.expire"
BUILD_ATTEMPTS = 3
MAX_IDS = 10_000
DEFAULT_BATCH_ORDERS = 1000
ERROR_LIMIT = 2000
JOB_DIED = "the export stopped on every attempt without finishing (its worker was lost)"

CONTENT_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXTENSIONS = {ExportFormat.CSV: "csv", ExportFormat.XLSX: "xlsx"}
FINISHED = frozenset({ExportStatus.SUCCEEDED, ExportStatus.FAILED, ExportStatus.EXPIRED})

S = SupplierOrderStatus
FULFILLED = frozenset({S.WAIT_BUYER_ACCEPT_GOODS, S.FUND_PROCESSING, S.IN_ISSUE})
DELIVERED_END_REASONS = frozenset({"buyer_accept_goods", "buyer_accept_goods_timeout"})


# --- columns ----------------------------------------------------------------------------------------------

TEXT, INT, MONEY, DATE = Kind.TEXT, Kind.INTEGER, Kind.MONEY, Kind.DATETIME

# Shopify's order export columns that apply here, then the supplier side. Order fields repeat on every
# line's row; Supplier Cost and Margin are the whole order's.
ORDER_COLUMNS = (
    Column("Name", TEXT, 10),
    Column("Email", TEXT, 28),
    Column("Financial Status", TEXT, 18),
    Column("Paid at", DATE, 20),
    Column("Fulfillment Status", TEXT, 18),
    Column("Currency", TEXT, 9),
    Column("Subtotal", MONEY, 12),
    Column("Shipping", MONEY, 11),
    Column("Total", MONEY, 12),
    Column("Refunded Amount", MONEY, 12),
    Column("Created at", DATE, 20),
    Column("Cancelled at", DATE, 20),
)
LINE_COLUMNS = (
    Column("Lineitem quantity", INT, 9),
    Column("Lineitem name", TEXT, 36),
    Column("Lineitem price", MONEY, 12),
    Column("Lineitem sku", TEXT, 16),
    Column("Lineitem fulfillment status", TEXT, 18),
)
CUSTOMER_COLUMNS = (
    Column("Billing Name", TEXT, 22),
    Column("Shipping Name", TEXT, 22),
    Column("Shipping Address1", TEXT, 28),
    Column("Shipping Address2", TEXT, 16),
    Column("Shipping City", TEXT, 16),
    Column("Shipping Zip", TEXT, 10),
    Column("Shipping Province", TEXT, 14),
    Column("Shipping Country", TEXT, 9),
    Column("Shipping Phone", TEXT, 16),
    Column("Phone", TEXT, 16),
    Column("Notes", TEXT, 30),
    Column("Tags", TEXT, 20),
    Column("Id", INT, 10),
)
SUPPLIER_COLUMNS = (
    Column("Supplier", TEXT, 24),
    Column("AliExpress Order Id", TEXT, 20),
    Column("AliExpress Status", TEXT, 26),
    Column("End Reason", TEXT, 24),
    Column("Tracking Numbers", TEXT, 22),
    Column("Carrier", TEXT, 14),
    Column("Supplier Cost", MONEY, 12),
    Column("Margin", MONEY, 12),
    Column("Open Cancellation Request", TEXT, 16),
    Column("Dispute Status", TEXT, 16),
    Column("Return Status", TEXT, 14),
)


def columns_for(layout: ExportLayout) -> tuple[Column, ...]:
    """The columns of a layout; in the ORDER layout line values are joined into text, one per line."""
    lines: tuple[Column, ...] = LINE_COLUMNS
    if layout is ExportLayout.ORDER:
        lines = tuple(Column(column.name, Kind.TEXT, column.width) for column in LINE_COLUMNS)
    return (*ORDER_COLUMNS, *lines, *CUSTOMER_COLUMNS, *SUPPLIER_COLUMNS)


# --- per-batch lookups: each takes one batch's order ids and returns a dict -------------------------------
#
# Values are read as the database keeps them (amounts as integer units, statuses as their names) straight from
# the driver, and every statement takes the ids as one parameter (db.id_lists): an export reads hundreds of
# thousands of rows, and per-value conversions, SQLAlchemy rows and one bound parameter per id were most of
# its time.


def _units(column: Any) -> Any:
    """An amount column as its stored integer units (1/AMOUNT_SCALE of the currency)."""
    return type_coerce(column, BigInteger)


def _name(column: Any) -> Any:
    """An enum column as the name it stores."""
    return type_coerce(column, String)


def _raw_time(column: Any) -> Any:
    """A time column as the driver reads it, with no result processing: naive UTC text on SQLite (the writers
    take it as it is, parsing it costs more than the rest of the cell), aware on PostgreSQL."""
    return type_coerce(column, String)


@dataclass(frozen=True)
class Reads:
    """The per-batch statements of one database dialect; each takes the batch's order ids as ``ids``."""

    # (order id, title, variant title, sku, quantity, unit price units, supplier order id)
    lines: Any
    # (order id, supplier order id, AliExpress order id, status, end reason, supplier name)
    supplier_orders: Any
    # (supplier order id, tracking number, carrier)
    packages: Any
    # (supplier order id, status of its open cancellation request: PENDING or INFO_REQUESTED)
    cancellations: Any
    # (supplier order id, dispute status), oldest first so that the latest is the one kept
    disputes: Any
    # (order id, return status), oldest first likewise
    returns: Any


@functools.cache
def reads(dialect: str) -> Reads:
    return Reads(
        lines=select(
            OrderLine.order_id,
            OrderLine.title,
            OrderLine.variant_title,
            OrderLine.sku,
            OrderLine.quantity,
            _units(OrderLine.unit_price),
            OrderLine.supplier_order_id,
        )
        .where(among(OrderLine.order_id, dialect))
        .order_by(OrderLine.order_id, OrderLine.position, OrderLine.id),
        supplier_orders=select(
            SupplierOrder.order_id,
            SupplierOrder.id,
            SupplierOrder.aliexpress_order_id,
            _name(SupplierOrder.status),
            SupplierOrder.end_reason,
            Supplier.name,
        )
        .join(Supplier, Supplier.id == SupplierOrder.supplier_id)
        .where(among(SupplierOrder.order_id, dialect))
        .order_by(SupplierOrder.order_id, SupplierOrder.id),
        packages=select(Package.supplier_order_id, Package.tracking_number, Package.carrier)
        .join(SupplierOrder, SupplierOrder.id == Package.supplier_order_id)
        .where(among(SupplierOrder.order_id, dialect))
        .order_by(Package.supplier_order_id, Package.id),
        cancellations=select(CancellationRequest.supplier_order_id, _name(CancellationRequest.status)).where(
            among(CancellationRequest.order_id, dialect), CancellationRequest.open_key.is_not(None)
        ),
        disputes=select(Dispute.supplier_order_id, _name(Dispute.status))
        .where(among(Dispute.order_id, dialect))
        .order_by(Dispute.id),
        returns=select(Return.order_id, _name(Return.status))
        .where(among(Return.order_id, dialect))
        .order_by(Return.id),
    )


# The fields every order read starts with: what the keyset and the summary need.
ORDER_ID, CREATED_AT, ORDER_STATUS, CURRENCY, TOTAL, FINANCIAL_STATUS = 0, 1, 2, 3, 4, 7


def _key_fields(created_at: Any) -> tuple[Any, ...]:
    return (Order.id, created_at, _name(Order.status), Order.currency, _units(Order.total))


ORDER_FIELDS = (
    *_key_fields(_raw_time(Order.created_at)),
    Order.number,
    Order.customer_email,
    _name(Order.financial_status),
    _units(Order.subtotal),
    _units(Order.shipping),
    _raw_time(Order.cancelled_at),
    Order.customer_name,
    Order.customer_phone,
    cast(Order.shipping_address, Text),
    Order.note,
    Order.tags,
)
ORDER_FIELD_COUNT = len(ORDER_FIELDS)


def _grouped(rows: Iterable[Any]) -> dict[int, list[Any]]:
    """Rows by their first value, in the order they came."""
    found: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        found[row[0]].append(row)
    return found


@dataclass
class Batch:
    """One batch of orders (rows of ORDER_FIELDS) with everything their rows need."""

    orders: list[Any]
    lines: dict[int, list[Any]]
    supplier_orders: dict[int, list[Any]]
    packages: dict[int, list[Any]]
    cancellations: dict[int, str]
    disputes: dict[int, str]
    returns: dict[int, str]
    # (supplier cost, margin, refunded) in amount units, from the same figures the API shows
    figures: dict[int, tuple[int, int, int]]
    notes: dict[int, str]


async def load_batch(
    session: AsyncSession, orders: list[Any], figures: dict[int, tuple[int, int, int]] | None = None
) -> Batch:
    """Everything the orders' rows need, one statement per table; the figures too unless given."""
    order_ids = [order[ORDER_ID] for order in orders]
    statements = reads(session.get_bind().dialect.name)
    connection = await session.connection()

    async def rows(statement: Any) -> list[Any]:
        return await rows_among(connection, statement, order_ids)

    return Batch(
        orders=orders,
        lines=_grouped(await rows(statements.lines)),
        supplier_orders=_grouped(await rows(statements.supplier_orders)),
        packages=_grouped(await rows(statements.packages)),
        cancellations=dict(await rows(statements.cancellations)),
        disputes=dict(await rows(statements.disputes)),
        returns=dict(await rows(statements.returns)),
        figures=await order_figure_units(session, order_ids) if figures is None else figures,
        notes=await notes_text_by_order(session, order_ids),
    )


# --- row assembly ------------------------------------------------------------------------------------------
#
# Cells are made once where they repeat: the order's columns once per order, the supplier columns once per
# supplier order, and only the line's own columns per line.


@functools.cache
def _line_fulfillment(status: str | None, end_reason: str | None) -> str:
    """A line's fulfillment from the status of its supplier order (None when it has none)."""
    if status is None:
        return "unfulfilled"
    if status in FULFILLED or (status == S.FINISH and end_reason in DELIVERED_END_REASONS):
        return "fulfilled"
    if status == S.SELLER_PART_SEND_GOODS:
        return "partial"
    return "unfulfilled"


# Positions in a supplier orders row and in a lines row (both start with the order id).
SO_ID, SO_ALIEXPRESS_ID, SO_STATUS, SO_END_REASON, SO_SUPPLIER = range(1, 6)
LINE_TITLE, LINE_VARIANT, LINE_SKU, LINE_QUANTITY, LINE_PRICE, LINE_SUPPLIER_ORDER = range(1, 7)


def _supplier_order_fulfillment(supplier_order: Any) -> str:
    if supplier_order is None:
        return "unfulfilled"
    return _line_fulfillment(supplier_order[SO_STATUS], supplier_order[SO_END_REASON])


def _order_fulfillment(states: list[str]) -> str:
    if states and all(state == "fulfilled" for state in states):
        return "fulfilled"
    if any(state != "unfulfilled" for state in states):
        return "partial"
    return "unfulfilled"


def _line_name(line: Any) -> str:
    title, variant = line[LINE_TITLE], line[LINE_VARIANT]
    return f"{title} - {variant}" if variant else title


def _joined(values: Iterable[str | None]) -> str | None:
    present = [value for value in dict.fromkeys(values) if value]
    return "; ".join(present) if present else None


def _package_cells(packages: Sequence[Any]) -> tuple[str | None, str | None]:
    """The Tracking Numbers and Carrier cells of a supplier order's (or an order's) packages."""
    if len(packages) == 1:
        return text_cell(packages[0][1] or None), text_cell(packages[0][2] or None)
    return (
        text_cell(_joined([number for _, number, _ in packages])),
        text_cell(_joined([carrier for _, _, carrier in packages])),
    )


def _notes_cell(note: str | None, notes: str | None) -> str | None:
    """The order's own note, then its notes."""
    if not notes:
        return text_cell(note or None)
    return text_cell(f"{note}\n{notes}" if note else notes)


# Few distinct tag lists recur over many orders.
@functools.lru_cache(maxsize=4096)
def _tags_cell(tags: str) -> str | None:
    return text_cell(", ".join(tag for tag in tags.split(",") if tag) or None)


def _order_parts(
    cells: Cells,
    order: Sequence[Any],
    fulfillment: str,
    figures: tuple[int, int, int],
    notes: str | None,
    return_status: str | None,
) -> tuple[Any, Any, tuple[Any, Any, Any]]:
    """An order's part (a row of ORDER_FIELDS), its customer's part (with its notes, tags and id), and the cells
    of its supplier cost, margin and return status for its supplier parts."""
    (
        order_id,
        created,
        _status,
        currency,
        total,
        number,
        email,
        financial,
        subtotal,
        shipping,
        cancelled,
        customer_name,
        customer_phone,
        address_text,
        note,
        tags,
    ) = order[:ORDER_FIELD_COUNT]
    cost, margin, refunded = figures
    money = cells.money_in(currency)
    created_cell = cells.time(created)
    head = (
        text_cell(number),
        text_cell(email),
        financial.lower(),
        None if financial == FinancialStatus.VOIDED else created_cell,
        fulfillment,
        text_cell(currency),
        money(subtotal),
        money(shipping),
        money(total),
        # Blank rather than 0.00 when nothing was refunded, so the column reads like the refunds it sums.
        money(refunded or None),
        created_cell,
        cells.time(cancelled),
    )
    address = (loads(address_text) if address_text else None) or {}
    customer = (
        text_cell(customer_name or None),
        text_cell(address.get("name")),
        text_cell(address.get("address1")),
        text_cell(address.get("address2")),
        text_cell(address.get("city")),
        text_cell(address.get("zip")),
        text_cell(address.get("province")),
        text_cell(address.get("country_code")),
        text_cell(address.get("phone")),
        text_cell(customer_phone),
        _notes_cell(note, notes),
        _tags_cell(tags),
        order_id,
    )
    return cells.part(head), cells.part(customer), (money(cost), money(margin), return_status)


def _supplier_part(batch: Batch, chosen: Sequence[Any], tail: tuple[Any, ...]) -> tuple[Any, ...]:
    """The supplier columns for the supplier orders ``chosen``; ``tail`` holds cost, margin and return."""
    if len(chosen) == 1:
        # The line-item layout's case: one supplier order, usually with at most one package.
        [so] = chosen
        so_id = so[SO_ID]
        supplier, aliexpress_id = so[SO_SUPPLIER] or None, so[SO_ALIEXPRESS_ID] or None
        status, end_reason = so[SO_STATUS] or None, so[SO_END_REASON] or None
        cancellation = batch.cancellations.get(so_id)
        dispute = batch.disputes.get(so_id)
        packages = batch.packages.get(so_id, ())
    else:
        packages = [package for so in chosen for package in batch.packages.get(so[SO_ID], ())]
        supplier = _joined([so[SO_SUPPLIER] for so in chosen])
        aliexpress_id = _joined([so[SO_ALIEXPRESS_ID] for so in chosen])
        status = _joined([so[SO_STATUS] for so in chosen])
        end_reason = _joined([so[SO_END_REASON] for so in chosen])
        cancellation = _joined([batch.cancellations.get(so[SO_ID]) for so in chosen])
        dispute = _joined([batch.disputes.get(so[SO_ID]) for so in chosen])
    return (
        text_cell(supplier),
        text_cell(aliexpress_id),
        text_cell(status),
        text_cell(end_reason),
        *_package_cells(packages),
        *tail[:2],
        text_cell(cancellation),
        text_cell(dispute),
        *tail[2:],
    )


def batch_rows(batch: Batch, layout: ExportLayout, cells: SheetWriter) -> list[tuple[Any, ...]]:
    """The batch's rows as ``cells`` makes them, ready for its ``write_rows``: each row is a few parts, and the
    order's parts (its columns, its customer's, each supplier order's) are made once for all its lines."""
    money_in, text, part, recurring = (
        cells.money_in,
        text_cell,
        cells.part,
        cells.recurring_part,
    )
    line_items = layout is ExportLayout.LINE_ITEM
    rows: list[tuple[Any, ...]] = []
    add = rows.append
    for order in batch.orders:
        order_id = order[ORDER_ID]
        supplier_orders = batch.supplier_orders.get(order_id, ())
        by_id = {so[SO_ID]: so for so in supplier_orders}
        lines = batch.lines.get(order_id, ())
        line_states = [_supplier_order_fulfillment(by_id.get(line[LINE_SUPPLIER_ORDER])) for line in lines]
        head, customer, tail = _order_parts(
            cells,
            order,
            _order_fulfillment(line_states),
            batch.figures[order_id],
            batch.notes.get(order_id),
            batch.returns.get(order_id),
        )
        money = money_in(order[CURRENCY])

        if not line_items:
            line_part = part(
                (
                    text("; ".join(str(line[LINE_QUANTITY]) for line in lines) or None),
                    text("; ".join(_line_name(line) for line in lines) or None),
                    text("; ".join(str(Decimal(line[LINE_PRICE]) / AMOUNT_SCALE) for line in lines) or None),
                    text("; ".join(line[LINE_SKU] or "" for line in lines) or None),
                    "; ".join(line_states) or None,
                )
            )
            add((head, line_part, customer, part(_supplier_part(batch, supplier_orders, tail))))
            continue
        # Lines of one supplier order share its columns: built once per supplier order, not per line.
        parts: dict[int | None, tuple[Any, ...]] = {}
        for line, state in zip(lines, line_states, strict=True):
            key = line[LINE_SUPPLIER_ORDER]
            supplier = parts.get(key)
            if supplier is None:
                fulfilling = by_id.get(key)
                supplier = parts[key] = part(_supplier_part(batch, [fulfilling] if fulfilling else [], tail))
            add(
                (
                    head,
                    recurring(
                        (
                            line[LINE_QUANTITY],
                            text(_line_name(line)),
                            money(line[LINE_PRICE]),
                            text(line[LINE_SKU]),
                            state,
                        )
                    ),
                    customer,
                    supplier,
                )
            )
    return rows


# --- the line-item CSV ----------------------------------------------------------------------------------------
#
# The most common export, and the largest, has a path of its own: each order's figure sums come with the order,
# and each record is joined from
# texts made once per order, per supplier order and per recurring line.


# The general path's order fields, then the order's figure sums.
LINE_ITEM_CSV_FIELDS = (*ORDER_FIELDS, *figure_unit_sums())


async def load_line_item_batch(session: AsyncSession, orders: list[Any]) -> Batch:
    """``load_batch`` for rows of ``LINE_ITEM_CSV_FIELDS``: their figures come with them."""
    figures = {
        order[ORDER_ID]: figure_units(
            order[TOTAL], order[FINANCIAL_STATUS], order[ORDER_STATUS], *order[ORDER_FIELD_COUNT:]
        )
        for order in orders
    }
    return await load_batch(session, orders, figures)


def line_item_csv_records(batch: Batch, writer: CsvCells) -> list[str]:
    """The batch's CSV records (without line ends), the same text as ``batch_rows`` gives the writer."""
    money_in, part, text = writer.money_in, writer.part, text_cell
    # A line's own columns recur (the same product at the same price): formatted once while recent.
    line_parts = writer.recurring_texts
    records: list[str] = []
    add = records.append
    for order in batch.orders:
        order_id, currency = order[ORDER_ID], order[CURRENCY]
        lines = batch.lines.get(order_id)
        if not lines:
            continue
        by_id = {so[SO_ID]: so for so in batch.supplier_orders.get(order_id, ())}
        fulfilling = [by_id.get(line[LINE_SUPPLIER_ORDER]) for line in lines]
        states = [_supplier_order_fulfillment(so) for so in fulfilling]
        head, customer, tail = _order_parts(
            writer,
            order,
            _order_fulfillment(states),
            batch.figures[order_id],
            batch.notes.get(order_id),
            batch.returns.get(order_id),
        )
        money = money_in(currency)
        suppliers: dict[int | None, str] = {}
        for line, so, state in zip(lines, fulfilling, states, strict=True):
            key = so[SO_ID] if so is not None else None
            supplier = suppliers.get(key)
            if supplier is None:
                supplier = suppliers[key] = part(_supplier_part(batch, [so] if so is not None else [], tail))
            _, title, variant, sku, quantity, price, _ = line
            line_key = (currency, quantity, title, variant, price, sku, state)
            line_text = line_parts.get(line_key)
            if line_text is None:
                name = f"{title} - {variant}" if variant else title
                line_text = line_parts.put(
                    line_key, part((quantity, text(name), money(price), text(sku), state))
                )
            add(f"{head},{line_text},{customer},{supplier}")
    return records


# --- scope of an export ------------------------------------------------------------------------------------


def scope_clause(shop_id: int, query: str | None, order_ids: Sequence[int] | None, now: datetime) -> Any:
    """The orders of the shop an export covers; relative dates in the query are read at ``now``."""
    clause: ColumnElement[bool] = Order.shop_id == shop_id
    if query:
        clause = and_(clause, order_filter(query, now=now))
    if order_ids is not None:
        clause = and_(clause, Order.id.in_(order_ids))
    return clause


@dataclass(frozen=True)
class ExportScope:
    """What an export covers, as ``scope_clause`` takes it: plain values, so that another process can read
    the same orders."""

    shop_id: int
    query: str | None
    order_ids: tuple[int, ...] | None
    now: datetime

    def clause(self) -> Any:
        return scope_clause(self.shop_id, self.query, self.order_ids, self.now)


async def count_rows(session: AsyncSession, clause: Any, layout: ExportLayout) -> int:
    if layout is ExportLayout.ORDER:
        statement = select(func.count()).select_from(Order).where(clause)
    else:
        statement = (
            select(func.count())
            .select_from(OrderLine)
            .where(OrderLine.order_id.in_(select(Order.id).where(clause)))
        )
    return int((await session.execute(statement)).scalar_one())


Keyset = tuple[datetime, int]


def _keyset(created: datetime | str, order_id: int) -> Keyset:
    """Where the batch after the order ``(created, order_id)`` starts; SQLite's raw times are naive UTC text."""
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return (created if created.tzinfo else created.replace(tzinfo=UTC), order_id)


def _in_keyset_order(statement: Any, after: Keyset | None, until: Keyset | None = None) -> Any:
    """``statement`` over orders, oldest first, from just after ``after`` up to ``until`` included."""
    # Row comparisons, which both databases read as a range of the (shop, created_at, id) index; PostgreSQL
    # reads the equivalent ORs as a filter over every earlier order of the shop.
    key = tuple_(Order.created_at, Order.id)
    if after is not None:
        statement = statement.where(key > tuple_(*after))
    if until is not None:
        statement = statement.where(key <= tuple_(*until))
    return statement.order_by(Order.created_at, Order.id)


@dataclass(frozen=True)
class OrderReads:
    """What a batch reads: its orders' fields (they start with those of ``_key_fields``), then the rest for
    those orders."""

    fields: tuple[Any, ...]
    load: Callable[[AsyncSession, list[Any]], Awaitable[Batch]]


async def _read_batch(
    database: Database,
    clause: Any,
    after: Keyset | None,
    batch_orders: int,
    read: OrderReads,
    until: Keyset | None = None,
) -> Batch | None:
    async with database.read() as session:
        statement = _in_keyset_order(select(*read.fields).where(clause), after, until).limit(batch_orders)
        orders = list((await (await session.connection()).execute(statement)).all())
        if not orders:
            return None
        return await read.load(session, orders)


ROW_READS = OrderReads(fields=ORDER_FIELDS, load=load_batch)
LINE_ITEM_CSV_READS = OrderReads(fields=LINE_ITEM_CSV_FIELDS, load=load_line_item_batch)


async def order_batches(
    database: Database,
    clause: Any,
    batch_orders: int = DEFAULT_BATCH_ORDERS,
    read: OrderReads = ROW_READS,
) -> AsyncGenerator[Batch, None]:
    """Orders oldest first in keyset batches on (created_at, id), each in its own short read; the next batch
    is read while the caller handles this one (at most two batches are held); ``read`` says what is read."""
    reading: asyncio.Task[Batch | None] | None = asyncio.ensure_future(
        _read_batch(database, clause, None, batch_orders, read)
    )
    try:
        while reading is not None:
            batch = await reading
            reading = None
            if batch is None:
                return
            if len(batch.orders) == batch_orders:
                last = batch.orders[-1]
                after = _keyset(last[CREATED_AT], last[ORDER_ID])
                reading = asyncio.ensure_future(_read_batch(database, clause, after, batch_orders, read))
            yield batch
    finally:
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading


@dataclass(frozen=True)
class FileResult:
    rows: int
    size: int
    summary: list[SummaryLine]


Progress = Callable[[int, int], Awaitable[None]]
# (order status, currency) -> [orders, total in amount units]
Tally = dict[tuple[str, str], list[int]]


def _tally_orders(tally: Tally, orders: Iterable[Any]) -> None:
    for order in orders:
        counts = tally.get((order[ORDER_STATUS], order[CURRENCY]))
        if counts is None:
            counts = tally[(order[ORDER_STATUS], order[CURRENCY])] = [0, 0]
        counts[0] += 1
        counts[1] += order[TOTAL]


def _add_tally(tally: Tally, more: Tally) -> None:
    for key, (orders, units) in more.items():
        counts = tally.setdefault(key, [0, 0])
        counts[0] += orders
        counts[1] += units


# SQLite's own page cache for an export's reads: each page is read about once, in order.
EXPORT_CACHE_KIB = 2048


@contextlib.asynccontextmanager
async def _reading(database: Database) -> AsyncIterator[Database]:
    """What an export reads through: on SQLite a connection of its own with a small page cache. Through the
    shared connections an export would fill their large caches (64 MiB each), the process's memory growing
    with the export, and push out the pages that requests use."""
    if not database.is_sqlite or not _shareable(database):
        yield database
        return
    reader = Database(database.url, pool_size=1, sqlite_cache_kib=EXPORT_CACHE_KIB)
    try:
        yield reader
    finally:
        await reader.dispose()


async def write_orders_file(
    database: Database,
    *,
    scope: ExportScope,
    format: ExportFormat,
    layout: ExportLayout,
    path: Path,
    total: int,
    progress: Progress | None = None,
    batch_orders: int = DEFAULT_BATCH_ORDERS,
    processes: int = 1,
    one_shot: bool = False,
) -> FileResult:
    """Stream the orders of ``scope`` into ``path``; ``progress(done, total)`` runs after each batch.

    Each batch is turned into rows and written in a worker thread while the event loop reads the next one,
    so the database's time and the writer's overlap. A line-item CSV of more than a batch's rows is read and
    formatted by up to ``processes`` processes (see ``_write_line_item_csv_in_processes``); ``one_shot`` says
    that this process does nothing else meanwhile (a command), so they may be forked from it.
    """
    clause = scope.clause()
    writer = open_writer(format.value, path, columns_for(layout))
    tally: Tally = {}
    csv_records = writer if isinstance(writer, CsvWriter) and layout is ExportLayout.LINE_ITEM else None

    def write(batch: Batch) -> int:
        if csv_records is not None:
            records = line_item_csv_records(batch, csv_records)
            csv_records.write_lines(csv_lines(records))
            written = len(records)
        else:
            rows = batch_rows(batch, layout, writer)
            writer.write_rows(rows)
            written = len(rows)
        _tally_orders(tally, batch.orders)
        return written

    loop = asyncio.get_running_loop()
    working: asyncio.Future[Any] | None = None
    done = 0
    try:
        async with _reading(database) as reader:
            if csv_records is not None and processes > 1 and total > batch_orders and _shareable(database):
                done = await _write_line_item_csv_in_processes(
                    reader,
                    scope,
                    csv_records,
                    tally,
                    total,
                    progress,
                    batch_orders,
                    processes,
                    _process_context(one_shot),
                )
            else:
                # Closed on the way out, so that a batch being read ahead is cancelled rather than left running.
                read = ROW_READS if csv_records is None else LINE_ITEM_CSV_READS
                batches = order_batches(reader, clause, batch_orders, read)
                async with contextlib.aclosing(batches):
                    async for batch in batches:
                        working = loop.run_in_executor(None, write, batch)
                        # Shielded: a cancelled export waits below for the thread to stop touching the file.
                        done += await asyncio.shield(working)
                        if progress is not None:
                            await progress(done, max(total, done))
        summary = [
            SummaryLine(status=status, currency=currency, orders=orders, total=Decimal(units) / AMOUNT_SCALE)
            for (status, currency), (orders, units) in sorted(tally.items())
        ]
        working = loop.run_in_executor(None, writer.finish, summary)
        await asyncio.shield(working)
    except BaseException:
        if working is not None:
            await asyncio.wait([working])
        writer.abort()
        raise
    return FileResult(rows=done, size=path.stat().st_size, summary=summary)


# --- the line-item CSV in several processes ---------------------------------------------------------------------
#
# Reading a batch and formatting its records is Python work under one interpreter lock, so past a few tens of
# thousands of rows a second an export goes faster only in more processes. Each process reads the batches it
# is given with its own connection and sends back their lines; this process finds where each batch starts (a
# range of the orders' index: well under a millisecond) and writes the lines in order.


@dataclass(frozen=True)
class CsvChunk:
    """What an export process says of a batch after sending its lines; ``last`` ends its range."""

    rows: int
    tally: Tally
    last: bool


# Records per piece of lines sent between processes: tens of kilobytes. A megabyte-sized buffer, once freed,
# makes the C allocator keep later ones of that size in its heap, which then only grows (25 MB over 100,000 rows
# in the exporting process and its children).
PIECE_RECORDS = 100


# (after, until): the orders after the first key up to the second included; None: from the first order, or
# to the last one.
KeyRange = tuple[Keyset | None, Keyset | None]


# A batch takes an export process well under a second; one that sends nothing for this long is taken as lost.
PROCESS_ANSWER_SECONDS = 300.0


class ExportProcessError(RuntimeError):
    """An export process failed; the message names what it raised."""


def _shareable(database: Database) -> bool:
    """Whether another process can open the same database (not an in-memory SQLite one)."""
    name = make_url(database.url).database
    return not database.is_sqlite or (bool(name) and name != ":memory:" and "mode=memory" not in database.url)


ProcessContext = multiprocessing.context.ForkContext | multiprocessing.context.ForkServerContext


def _process_context(one_shot: bool) -> ProcessContext:
    """How export processes start. Forked from this process when it does nothing else meanwhile (a command):
    that takes milliseconds, where a fresh interpreter importing everything again would take longer than a
    100,000-row export. A process that does other work meanwhile (the job worker, in the server) may have a
    thread inside SQLite holding one of its locks at the moment of a fork, and the child would wait on it
    forever: there they are forked from a fork server, a clean process started once with this module
    imported."""
    if one_shot:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _serve_csv_chunks(url: str, scope: ExportScope, batch_orders: int, channel: Connection) -> None:
    """An export process: for each key range it receives, the range's orders in batches, one chunk each (the
    range's last chunk says so); it stops on None.

    Ranges, not a start and a count: the exporting process found where each range ends a moment earlier, and
    orders that entered or left the scope since would otherwise shift a batch onto its neighbour's orders."""
    # Signals are the parent's business: a child forked from it keeps its handlers and its loop's wakeup
    # socket, so a signal sent to the child would otherwise reach the parent's event loop.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    loop = asyncio.new_event_loop()
    database = Database(url, pool_size=1, sqlite_cache_kib=EXPORT_CACHE_KIB)
    cells = CsvCells()
    clause = scope.clause()
    try:
        while (task := channel.recv()) is not None:
            after, until = task
            last = False
            while not last:
                try:
                    batch = loop.run_until_complete(
                        _read_batch(database, clause, after, batch_orders, LINE_ITEM_CSV_READS, until)
                    )
                    records: list[str] = []
                    chunk = CsvChunk(rows=0, tally={}, last=True)
                    if batch is not None:
                        records = line_item_csv_records(batch, cells)
                        tally: Tally = {}
                        _tally_orders(tally, batch.orders)
                        # A range holds one batch, more only when orders entered it meanwhile.
                        final = batch.orders[-1]
                        last = len(batch.orders) < batch_orders or (
                            until is not None and final[ORDER_ID] == until[1]
                        )
                        chunk = CsvChunk(rows=len(records), tally=tally, last=last)
                        after = _keyset(final[CREATED_AT], final[ORDER_ID])
                except Exception as error:
                    channel.send_bytes(b"")
                    channel.send(ExportProcessError(f"{type(error).__name__}: {error}"))
                    return
                # The lines go as UTF-8 pieces, written as they are; an empty piece ends them.
                for start in range(0, len(records), PIECE_RECORDS):
                    channel.send_bytes(csv_lines(records[start : start + PIECE_RECORDS]).encode())
                channel.send_bytes(b"")
                last = chunk.last
                channel.send(chunk)
    except (EOFError, OSError):
        pass  # the exporting process is gone
    finally:
        loop.run_until_complete(database.dispose())
        loop.close()


LOST = "a process formatting the export stopped before it finished"


def _ask(channel: Connection, task: KeyRange | None) -> None:
    """Send an export process its next task (None: stop)."""
    try:
        channel.send(task)
    except OSError:
        raise ExportProcessError(LOST) from None


def _answer(channel: Connection, seconds: float, write: Callable[[bytes], object]) -> CsvChunk:
    """The next chunk an export process sends on ``channel``, its lines handed to ``write``; raises
    ExportProcessError if the process failed, stopped or sent nothing for ``seconds`` (a process that hangs
    fails the attempt, which the job engine retries)."""

    def receive() -> bytes:
        if not channel.poll(seconds):
            raise ExportProcessError(f"a process formatting the export sent nothing for {seconds:.0f} s")
        return channel.recv_bytes()

    try:
        while piece := receive():
            write(piece)
        answer = pickle.loads(receive())
    except (EOFError, OSError):
        raise ExportProcessError(LOST) from None
    if isinstance(answer, ExportProcessError):
        raise answer
    chunk: CsvChunk = answer
    return chunk


async def _key_ranges(database: Database, clause: Any, batch_orders: int) -> AsyncGenerator[KeyRange, None]:
    """The orders in ranges of ``batch_orders`` as they stand now, oldest first; the last range is open-ended
    (orders created during the export fall in it)."""
    after: Keyset | None = None
    while True:
        async with database.read() as session:
            statement = _in_keyset_order(select(Order.created_at, Order.id).where(clause), after)
            last = (await session.execute(statement.offset(batch_orders - 1).limit(1))).first()
        if last is None:
            yield (after, None)
            return
        until = _keyset(last[0], last[1])
        yield (after, until)
        after = until


async def _write_line_item_csv_in_processes(
    database: Database,
    scope: ExportScope,
    writer: CsvWriter,
    tally: Tally,
    total: int,
    progress: Progress | None,
    batch_orders: int,
    processes: int,
    context: ProcessContext,
    answer_seconds: float = PROCESS_ANSWER_SECONDS,
) -> int:
    """The line-item CSV's records, batch by batch, formatted by ``processes`` processes started by
    ``context``, in turn (two batches ahead each), written here in order; returns the rows written and adds the
    orders to ``tally``."""
    loop = asyncio.get_running_loop()
    channels: list[Connection] = []
    workers: list[multiprocessing.process.BaseProcess] = []
    waiting: deque[Connection] = deque()
    receiving: asyncio.Future[Any] | None = None
    done = 0

    async def take_range() -> None:
        """Write the chunks of the oldest range handed out."""
        nonlocal done, receiving
        channel = waiting.popleft()
        last = False
        while not last:
            # The lines are written by the receiving thread as they arrive.
            receiving = loop.run_in_executor(None, _answer, channel, answer_seconds, writer.write_encoded)
            chunk = await asyncio.shield(receiving)
            receiving = None
            _add_tally(tally, chunk.tally)
            done += chunk.rows
            last = chunk.last
            if progress is not None:
                await progress(done, max(total, done))

    # Objects that exist before a fork are left out of the garbage collector's passes in the children: a pass
    # touches every object it looks at, which would copy every page of the inherited heap into each child.
    gc.freeze()
    try:
        for _ in range(processes):
            ours, theirs = context.Pipe()
            worker = context.Process(
                target=_serve_csv_chunks,
                args=(database.url, scope, batch_orders, theirs),
                name="dropdesk-export",
                daemon=True,
            )
            worker.start()
            theirs.close()
            channels.append(ours)
            workers.append(worker)
        gc.unfreeze()
        async with contextlib.aclosing(_key_ranges(database, scope.clause(), batch_orders)) as ranges:
            index = 0
            async for key_range in ranges:
                channel = channels[index % processes]
                index += 1
                _ask(channel, key_range)
                waiting.append(channel)
                if len(waiting) >= 2 * processes:
                    await take_range()
        while waiting:
            await take_range()
        for channel in channels:
            _ask(channel, None)
        for process in workers:
            await loop.run_in_executor(None, process.join)
    finally:
        gc.unfreeze()
        # Killed, not asked to stop: a process that was stopped (SIGSTOP) or hangs would not act on a polite
        # signal, and the event loop must not wait for it.
        for process in workers:
            if process.exitcode is None:
                process.kill()
        if receiving is not None:
            # The receiving thread ends once the processes are gone (their ends of the pipes close); what it
            # raised then is part of the failure already being raised.
            await asyncio.wait([receiving])
            if not receiving.cancelled():
                receiving.exception()
        for process in workers:
            await loop.run_in_executor(None, process.join)
        for channel in channels:
            channel.close()
    return done


# --- use cases ---------------------------------------------------------------------------------------------


async def export_to_file(
    database: Database,
    *,
    shop_id: int,
    format: ExportFormat,
    layout: ExportLayout,
    query: str | None,
    path: Path,
    progress: Progress | None = None,
    now: datetime | None = None,
    batch_orders: int = DEFAULT_BATCH_ORDERS,
    processes: int = 1,
    one_shot: bool = False,
) -> FileResult:
    """Write the file an export would, straight away (the command line's export); a bad query raises
    DomainError before anything is written. The file is written beside ``path`` and takes its name only when
    complete: a failed or interrupted export leaves whatever was at ``path`` as it was. ``one_shot``: as
    ``write_orders_file`` takes it."""
    scope = ExportScope(shop_id=shop_id, query=query, order_ids=None, now=now or utcnow())
    try:
        clause = scope.clause()
    except SearchSyntaxError as error:
        raise DomainError.single(ErrorCode.INVALID, f"invalid search query: {error}", "query") from None
    async with database.read() as session:
        total = await count_rows(session, clause, layout)
    if progress is not None:
        await progress(0, total)
    part = path.with_name(f".{path.name}.part")
    try:
        result = await write_orders_file(
            database,
            scope=scope,
            format=format,
            layout=layout,
            path=part,
            total=total,
            progress=progress,
            batch_orders=batch_orders,
            processes=processes,
            one_shot=one_shot,
        )
        part.replace(path)
    except BaseException:
        _remove(part)
        raise
    return result


@dataclass(frozen=True)
class ExportRequest:
    format: ExportFormat = ExportFormat.CSV
    layout: ExportLayout = ExportLayout.LINE_ITEM
    query: str | None = None
    order_ids: Sequence[int] | None = None
    email: str | None = None


async def create_export(
    session: AsyncSession, actor: Actor, request: ExportRequest, *, now: datetime | None = None
) -> Export:
    """Record an export and enqueue the job that builds it; a query that does not parse is refused here."""
    require_scope(actor, Scope.WRITE_EXPORTS)
    assert actor.shop_id is not None
    now = now or utcnow()
    check = Checker()
    query = request.query.strip() if request.query else None
    if query is not None and unstorable(query):
        check.fail(("query",), "query contains characters that are not allowed (NUL or lone surrogates)")
    elif query is not None:
        try:
            order_filter(query, now=now)
        except SearchSyntaxError as error:
            check.fail(("query",), f"invalid search query: {error}")
    email = request.email.strip() if request.email else None
    if email is not None and unstorable(email):
        check.fail(("email",), "email contains characters that are not allowed (NUL or lone surrogates)")
    else:
        check.email(("email",), email)
    ids = list(dict.fromkeys(request.order_ids)) if request.order_ids is not None else None
    if ids is not None and not ids:
        check.fail(("ids",), "give at least one order id, or leave ids out to export every order")
    if ids is not None and len(ids) > MAX_IDS:
        check.fail(("ids",), f"at most {MAX_IDS} ids; use a query for more", ErrorCode.TOO_MANY)
    check.raise_if_any()
    if ids:
        found = set(
            (
                await session.execute(select(Order.id).where(visible(Order, actor), Order.id.in_(ids)))
            ).scalars()
        )
        missing = [index for index, pk in enumerate(ids) if pk not in found]
        if missing:
            raise DomainError.single(ErrorCode.NOT_FOUND, "order not found", "ids", str(missing[0]))
    export = Export(
        shop_id=actor.shop_id,
        format=request.format,
        layout=request.layout,
        status=ExportStatus.PENDING,
        query=query,
        order_ids=ids,
        email=email,
        requested_by=actor.name,
        attempt=0,
        rows_done=0,
        created_at=now,
    )
    await add_with_job(session, export, BUILD_KIND, "exportId", max_attempts=BUILD_ATTEMPTS)
    return export


async def get_export(session: AsyncSession, actor: Actor, export_id: int) -> Export | None:
    return (
        await session.execute(select(Export).where(Export.id == export_id, visible(Export, actor)))
    ).scalar_one_or_none()


@dataclass(frozen=True)
class ExportProgress:
    status: ExportStatus
    done: int
    total: int | None


async def export_progress(session: AsyncSession, actor: Actor, export_id: int) -> ExportProgress | None:
    """Where an export stands, for a subscription that polls it; None when the actor may not see it."""
    row = (
        await session.execute(
            select(Export.status, Export.rows_done, Export.rows_total).where(
                Export.id == export_id, visible(Export, actor)
            )
        )
    ).one_or_none()
    return ExportProgress(status=row[0], done=row[1], total=row[2]) if row else None


def download_path(export_id: int) -> str:
    return f"/exports/{export_id}/download"


def download_url(settings: Settings, export: Export) -> str | None:
    """The signed link to the file while it is there; it lapses with the export."""
    if export.status is not ExportStatus.SUCCEEDED or export.expires_at is None:
        return None
    return signed_url(settings.public_url, settings.secret_key, download_path(export.id), export.expires_at)


def download_name(export: Export) -> str:
    stamp = export.created_at.strftime("%Y%m%d-%H%M%S")
    return f"orders-{stamp}-{export.id}.{EXTENSIONS[export.format]}"


@dataclass(frozen=True)
class Download:
    path: Path
    filename: str
    content_type: str


async def find_download(session: AsyncSession, settings: Settings, export_id: int) -> Download | None:
    """The file behind a (signature-checked) link; None when the export has no file (anymore)."""
    export = await session.get(Export, export_id)
    if export is None or export.status is not ExportStatus.SUCCEEDED or not export.file_name:
        return None
    path = settings.export_dir / export.file_name
    if not path.is_file():
        return None
    return Download(path=path, filename=download_name(export), content_type=CONTENT_TYPES[export.format])


async def is_expired(session: AsyncSession, export_id: int) -> bool:
    return (await session.scalar(select(Export.status).where(Export.id == export_id))) is ExportStatus.EXPIRED


# --- the build job -----------------------------------------------------------------------------------------


class Superseded(Exception):
    """A newer attempt took the export over (this attempt's lease ran out); this one stops quietly."""


def _fenced(export_id: int, attempt: int) -> tuple[Any, ...]:
    return (Export.id == export_id, Export.attempt == attempt, Export.status == ExportStatus.RUNNING)


async def _update_fenced(database: Database, export_id: int, attempt: int, **values: Any) -> None:
    async with database.write() as session:
        result = await session.execute(
            update(Export).where(*_fenced(export_id, attempt)).values(**values),
            execution_options={"synchronize_session": False},
        )
    if getattr(result, "rowcount", 1) == 0:
        raise Superseded()


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


async def _finish(
    session: AsyncSession, export: Export, status: ExportStatus, now: datetime, **values: Any
) -> None:
    for name, value in values.items():
        setattr(export, name, value)
    export.status = status
    export.finished_at = now
    if export.started_at is not None:
        EXPORT_DURATION.labels(format=export.format.value.lower(), outcome=status.value.lower()).observe(
            (now - export.started_at).total_seconds()
        )
    await announce(
        session,
        Actor.system(export.shop_id),
        Topic.EXPORTS_FINISHED,
        shop_id=export.shop_id,
        node_type="Export",
        node_id=export.id,
        now=now,
    )
    if export.email:
        await enqueue(
            session,
            NOTIFY_KIND,
            {"exportId": export.id},
            key=f"{NOTIFY_KIND}:{export.id}",
            shop_id=export.shop_id,
        )


async def _take_over(ctx: JobContext, job: Job, export_id: int) -> Export | None:
    """Claim the export for this attempt, from the first row, whatever an earlier attempt left."""
    now = ctx.clock()
    async with ctx.database.write() as session:
        export = await session.get(Export, export_id, with_for_update=True, populate_existing=True)
        if export is None or export.status in FINISHED or export.attempt > job.attempts:
            return None
        export.status = ExportStatus.RUNNING
        export.attempt = job.attempts
        export.rows_done = 0
        export.rows_total = None
        export.error = None
        export.started_at = now
        export.file_name = None
    return export


@handler(BUILD_KIND)
async def build_export(ctx: JobContext, job: Job) -> None:
    export = await _take_over(ctx, job, int(job.payload["exportId"]))
    if export is None:
        return
    settings = ctx.settings
    directory = settings.export_dir
    name = f"export-{export.id}-{export.attempt}.{EXTENSIONS[export.format]}"
    part = directory / f"{name}.part"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob(f"export-{export.id}-*.part"):
            _remove(leftover)  # an earlier attempt's unfinished file
        scope = ExportScope(
            shop_id=export.shop_id,
            query=export.query,
            order_ids=None if export.order_ids is None else tuple(export.order_ids),
            now=export.created_at,
        )
        async with ctx.database.read() as session:
            total = await count_rows(session, scope.clause(), export.layout)
        await _update_fenced(ctx.database, export.id, export.attempt, rows_total=total)
        last_write = time.monotonic()

        async def progress(done: int, total: int) -> None:
            nonlocal last_write
            # A write per batch, at most a few per second: enough for a progress bar, cheap for the database.
            if done < total and time.monotonic() - last_write < 0.2:
                return
            last_write = time.monotonic()
            await _update_fenced(ctx.database, export.id, export.attempt, rows_done=done, rows_total=total)

        result = await write_orders_file(
            ctx.database,
            scope=scope,
            format=export.format,
            layout=export.layout,
            path=part,
            total=total,
            progress=progress,
            batch_orders=settings.export_batch_orders,
            processes=settings.export_processes,
        )
        part.replace(directory / name)
    except Superseded:
        _remove(part)
        return
    except Exception as error:
        _remove(part)
        await _record_failure(ctx, job, export, error)
        if job.attempts < job.max_attempts:
            raise
        return
    now = ctx.clock()
    async with ctx.database.write() as session:
        owned = await session.get(Export, export.id, with_for_update=True, populate_existing=True)
        if owned is None or owned.attempt != export.attempt or owned.status is not ExportStatus.RUNNING:
            _remove(directory / name)
            return
        await _finish(
            session,
            owned,
            ExportStatus.SUCCEEDED,
            now,
            rows_done=result.rows,
            rows_total=result.rows,
            row_count=result.rows,
            file_size=result.size,
            file_name=name,
            expires_at=now + timedelta(days=settings.export_link_days),
        )


async def _record_failure(ctx: JobContext, job: Job, export: Export, error: Exception) -> None:
    """A retry puts the export back to PENDING with the error; the last attempt marks it FAILED."""
    message = f"{type(error).__name__}: {error}"[:ERROR_LIMIT]
    now = ctx.clock()
    async with ctx.database.write() as session:
        owned = await session.get(Export, export.id, with_for_update=True, populate_existing=True)
        if owned is None or owned.attempt != export.attempt or owned.status is not ExportStatus.RUNNING:
            return
        if job.attempts < job.max_attempts:
            owned.status = ExportStatus.PENDING
            owned.error = f"attempt {job.attempts} of {job.max_attempts} failed, retrying: {message}"
            return
        await _finish(session, owned, ExportStatus.FAILED, now, error=message)


# --- mail ---------------------------------------------------------------------------------------------------


def export_message(settings: Settings, export: Export) -> EmailMessage:
    """The mail telling the requester how the export ended: the link (and the file when small), or why not."""
    assert export.email is not None
    message = EmailMessage()
    message["To"] = export.email
    what = f"{export.format.value} export of orders (#{export.id})"
    if export.status is ExportStatus.SUCCEEDED:
        url = download_url(settings, export)
        assert export.expires_at is not None and export.file_size is not None
        message["Subject"] = f"Your {what} is ready"
        attach = export.file_size <= settings.export_attachment_max_bytes
        lines = [
            f"Your {what} is ready: {export.row_count} rows.",
            "",
            f"Download it here (the link works until {export.expires_at:%Y-%m-%d %H:%M} UTC):",
            f"{url}",
            "",
            "The file is attached."
            if attach
            else f"The file ({export.file_size:,} bytes) is too large to attach; use the link.",
        ]
        message.set_content("\n".join(lines))
        if attach and export.file_name:
            data = (settings.export_dir / export.file_name).read_bytes()
            maintype, _, subtype = CONTENT_TYPES[export.format].split(";")[0].partition("/")
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=download_name(export))
        return message
    message["Subject"] = f"Your {what} failed"
    message.set_content(
        "\n".join(
            [
                f"Your {what} could not be built.",
                "",
                f"What failed: {export.error or 'unknown error'}",
                "",
                "Nothing was charged or changed; you can ask for the export again.",
            ]
        )
    )
    return message


@handler(NOTIFY_KIND)
async def notify_export(ctx: JobContext, job: Job) -> None:
    smtp = ctx.settings.smtp
    async with ctx.database.read() as session:
        export = await session.get(Export, int(job.payload["exportId"]))
    if (
        smtp is None
        or export is None
        or not export.email
        or export.emailed_at is not None
        or export.status not in (ExportStatus.SUCCEEDED, ExportStatus.FAILED)
    ):
        return
    await send_mail(smtp, export_message(ctx.settings, export))
    async with ctx.database.write() as session:
        await session.execute(
            update(Export).where(Export.id == export.id).values(emailed_at=ctx.clock()),
            execution_options={"synchronize_session": False},
        )


# --- expiry -------------------------------------------------------------------------------------------------

EXPIRE_BATCH = 200


@handler(EXPIRE_KIND)
async def expire_exports(ctx: JobContext, job: Job) -> None:
    """Delete files whose link lapsed (the export becomes EXPIRED) and fail exports whose job died."""
    now = ctx.clock()
    while True:
        async with ctx.database.write() as session:
            lapsed = list(
                (
                    await session.execute(
                        select(Export)
                        .where(Export.status == ExportStatus.SUCCEEDED, Export.expires_at <= now)
                        .order_by(Export.id)
                        .limit(EXPIRE_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            for export in lapsed:
                if export.file_name:
                    _remove(ctx.settings.export_dir / export.file_name)
                export.status = ExportStatus.EXPIRED
                export.file_name = None
        if len(lapsed) < EXPIRE_BATCH:
            break
    async with ctx.database.write() as session:
        dead_job = select(Job.id).where(Job.id == Export.job_id, Job.status == JobStatus.DEAD).exists()
        stranded = (
            await session.execute(
                select(Export)
                .where(Export.status.in_([ExportStatus.PENDING, ExportStatus.RUNNING]), dead_job)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        for export in stranded:
            await _finish(session, export, ExportStatus.FAILED, now, error=export.error or JOB_DIED)


# Often enough that an export whose job died shows FAILED soon after; deleting lapsed files is cheap.
register_schedule("exports.expire", timedelta(minutes=15), EXPIRE_KIND)
