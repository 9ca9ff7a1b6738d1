"""Order answers built as JSON by the database: a plan's selection on ``Order`` compiled into one statement.

A compiled plan (schema/plan.py) reads an order's children with one statement per relation and builds the
answer in Python. When everything selected on an order, down to its leaves, has an SQL form below, the whole
selection is instead compiled into one SELECT whose second column is each order's answer, made by the
database's JSON functions (SQLite's json_object and json_group_array, PostgreSQL's json_build_object and
json_agg): one round trip for a page's lines, supplier orders, suppliers, packages, tracking events and
cancellation requests, and no Python per field.

Every table in the statement is limited by ``domain.access.visible`` for the reader, as the loaders'
statements are; it is used for merchants only (a supplier's view hides parts of an order). Leaves are written
in SQL exactly as the schema's scalars write them: global ids, DateTime in UTC to the second, Money amounts
with the currency's decimals rounded half to even (``Decimal.quantize``), booleans. Stored values were checked
on the way in (enum names, known currencies), so the answer needs no second look; a tracking event's time is
text in JSON, and one the SQL cannot read stops the statement, which leaves the request to the standard
executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLObjectType, get_named_type
from graphql.execution.collect_fields import FieldDetails
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.types import DateTime
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from db.id_lists import among
from db.models import CancellationRequest, Order, OrderLine, Package, Supplier, SupplierOrder
from db.types import AMOUNT_SCALE
from domain.access import visible
from domain.actors import Actor
from domain.money import CURRENCY_EXPONENTS
from schema.ids import PREFIX

# The most keys one JSON object may take: PostgreSQL functions take at most 100 arguments.
MAX_KEYS = 50
# Statements kept per selection, one per (dialect, shop).
STATEMENTS_KEPT = 64


class NoSqlForm(Exception):
    """Something selected has no SQL form here; the Python plan answers."""


def _sql_text(value: str) -> ColumnElement[Any]:
    """A constant string written into the statement (response keys, type names, currency codes: all plain
    names), so the statement's only parameters are the ids and the shop."""
    assert "'" not in value and "\\" not in value
    return literal_column(f"'{value}'", Text)


# Operators written with ``op`` bind as loosely as can be unless told: these bind as SQL's division does.
DIVISION = 8


def _integer(value: int) -> ColumnElement[Any]:
    return literal_column(str(value), BigInteger)


def _divided(value: Any, by: int) -> ColumnElement[Any]:
    """Integer division of a non-negative integer (both databases truncate integers divided by integers)."""
    return value.op("/", precedence=DIVISION, return_type=BigInteger)(_integer(by))  # type: ignore[no-any-return]


def _remainder(value: Any, by: int) -> ColumnElement[Any]:
    return value.op("%", precedence=DIVISION, return_type=BigInteger)(_integer(by))  # type: ignore[no-any-return]


# The shape of a time written by Python's isoformat with an offset in hours and minutes.
ISO_WITH_OFFSET = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]"
)


class Json:
    """The JSON and text functions of one database."""

    name: str

    def object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        raise NotImplementedError

    def array(self, element: ColumnElement[Any], query: Select[Any], order: Sequence[Any], own: Any) -> Any:
        """The JSON array of ``element`` over the rows of ``query`` (correlated with every table but ``own``),
        in ``order``; an empty array when there are none."""
        raise NotImplementedError

    def one(self, element: ColumnElement[Any], query: Select[Any], own: Any) -> Any:
        raise NotImplementedError

    def boolean(self, value: Any) -> ColumnElement[Any]:
        raise NotImplementedError

    def utc_text(self, moment: Any) -> ColumnElement[Any]:
        """A stored time as ISO 8601 in UTC to the second."""
        raise NotImplementedError

    def utc_text_of_iso(self, text: Any) -> ColumnElement[Any]:
        """An ISO 8601 text with an offset, as ISO 8601 in UTC to the second."""
        raise NotImplementedError

    def padded(self, number: Any, digits: int) -> ColumnElement[Any]:
        raise NotImplementedError

    def elements(self, array: Any) -> tuple[Any, Any, Any]:
        """The elements of a stored JSON array: (the FROM item, an element's column, its position)."""
        raise NotImplementedError

    def member_text(self, element: Any, key: str) -> ColumnElement[Any]:
        raise NotImplementedError


class SqliteJson(Json):
    name = "sqlite"

    def object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return func.json_object(*(part for key, value in pairs for part in (_sql_text(key), value)))

    # A subquery's value loses its JSON subtype in SQLite: json() gives it back, so that the enclosing object
    # takes it as JSON rather than as a string.
    def array(self, element: ColumnElement[Any], query: Select[Any], order: Sequence[Any], own: Any) -> Any:
        rows = query.add_columns(element.label("answer")).order_by(*order).correlate_except(own).subquery()
        return func.json(select(func.json_group_array(func.json(rows.c.answer))).scalar_subquery())

    def one(self, element: ColumnElement[Any], query: Select[Any], own: Any) -> Any:
        return func.json(query.add_columns(element).correlate_except(own).scalar_subquery())

    def boolean(self, value: Any) -> ColumnElement[Any]:
        return func.json(case((value, _sql_text("true")), else_=_sql_text("false")))

    def utc_text(self, moment: Any) -> ColumnElement[Any]:
        # Stored as naive UTC text ('2026-01-02 03:04:05.678901'): the date and the time to the second.
        return (
            func.substr(moment, 1, 10)
            .concat(_sql_text("T"))
            .concat(func.substr(moment, 12, 8))
            .concat(_sql_text("+00:00"))
        )

    def utc_text_of_iso(self, text: Any) -> ColumnElement[Any]:
        # Python's isoformat ('2026-01-01T10:00:00.999999+05:30'): SQLite's date functions read the offset,
        # but round fractions to the millisecond, so the fraction is dropped first (the scalar truncates).
        # Any other text (or none) stops the statement, as a malformed JSON text does, so that the standard
        # executor answers it rather than this writing null.
        whole_seconds = func.substr(text, 1, 19).concat(func.substr(text, -6))
        written = func.strftime(_sql_text("%Y-%m-%dT%H:%M:%S"), whole_seconds).concat(_sql_text("+00:00"))
        readable = text.op("GLOB")(_sql_text(ISO_WITH_OFFSET))
        return case((readable, written), else_=func.json(_sql_text("x").concat(func.coalesce(text, ""))))

    def padded(self, number: Any, digits: int) -> ColumnElement[Any]:
        return func.substr(_sql_text("0" * digits).concat(cast(number, Text)), -digits)

    def elements(self, array: Any) -> tuple[Any, Any, Any]:
        each = func.json_each(array).table_valued("key", "value")
        return each, each.c.value, each.c.key

    def member_text(self, element: Any, key: str) -> ColumnElement[Any]:
        return func.json_extract(element, _sql_text(f"$.{key}"))


class PostgresJson(Json):
    name = "postgresql"

    def object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return func.json_build_object(*(part for key, value in pairs for part in (_sql_text(key), value)))

    def array(self, element: ColumnElement[Any], query: Select[Any], order: Sequence[Any], own: Any) -> Any:
        answers = func.json_agg(aggregate_order_by(element, *order))
        return (
            query.add_columns(func.coalesce(answers, literal_column("'[]'::json")))
            .correlate_except(own)
            .scalar_subquery()
        )

    def one(self, element: ColumnElement[Any], query: Select[Any], own: Any) -> Any:
        return query.add_columns(element).correlate_except(own).scalar_subquery()

    def boolean(self, value: Any) -> ColumnElement[Any]:
        return value  # type: ignore[no-any-return]

    def utc_text(self, moment: Any) -> ColumnElement[Any]:
        at_utc = func.timezone(_sql_text("UTC"), moment)
        return func.to_char(at_utc, _sql_text('YYYY-MM-DD"T"HH24:MI:SS')).concat(_sql_text("+00:00"))

    def utc_text_of_iso(self, text: Any) -> ColumnElement[Any]:
        # A text that is not a time (or none) fails the cast and so the statement: the standard executor answers.
        return self.utc_text(cast(func.coalesce(text, _sql_text("unreadable")), DateTime(timezone=True)))

    def padded(self, number: Any, digits: int) -> ColumnElement[Any]:
        return func.lpad(cast(number, Text), digits, _sql_text("0"))

    def elements(self, array: Any) -> tuple[Any, Any, Any]:
        each = (
            func.json_array_elements(array).table_valued("value", with_ordinality="position").render_derived()
        )
        return each, each.c.value, each.c.position

    def member_text(self, element: Any, key: str) -> ColumnElement[Any]:
        return func.json_extract_path_text(element, _sql_text(key))


DIALECTS: dict[str, Json] = {"sqlite": SqliteJson(), "postgresql": PostgresJson()}


def amount_text(json: Json, units: Any, currency: Any) -> ColumnElement[Any]:
    """Stored units (1/AMOUNT_SCALE) as the Money scalar writes them: the currency's decimals, rounded half to
    even, the sign kept even when it rounds to zero ("-0.00"), as Decimal does; NULL for an unknown currency."""
    by_exponent: dict[int, list[str]] = {}
    for code, exponent in sorted(CURRENCY_EXPONENTS.items()):
        by_exponent.setdefault(exponent, []).append(code)
    magnitude = func.abs(units)
    sign = case((units < 0, _sql_text("-")), else_=_sql_text(""))
    branches = []
    for exponent, codes in sorted(by_exponent.items()):
        step = AMOUNT_SCALE // 10**exponent
        assert step * 10**exponent == AMOUNT_SCALE
        kept, dropped = _divided(magnitude, step), _remainder(magnitude, step)
        half_up = or_(dropped * 2 > step, and_(dropped * 2 == step, _remainder(kept, 2) == 1))
        rounded = kept + case((half_up, _integer(1)), else_=_integer(0))
        if exponent == 0:
            written = sign.concat(cast(rounded, Text))
        else:
            whole = cast(_divided(rounded, 10**exponent), Text)
            fraction = json.padded(_remainder(rounded, 10**exponent), exponent)
            written = sign.concat(whole).concat(_sql_text(".")).concat(fraction)
        listed = currency.in_([_sql_text(code) for code in codes])
        branches.append((listed, written))
    return case(*branches)


# --- what each field is in SQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """Where an object's fields are read: a table's row (``table``, with ``parent`` the row it hangs from),
    a Money value (``money``: units and currency), or a stored JSON element (``element``)."""

    json: Json
    reader: Actor
    table: Any = None
    parent: Any = None
    money: tuple[Any, Any] | None = None
    element: Any = None


Leaf = Callable[[Row], ColumnElement[Any]]
Build = Callable[[Row], ColumnElement[Any]]
# How an object field's value is made from its parent's row, given how to build the object from its own row.
Nest = Callable[[Row, Build], Any]


def _column(name: str) -> Leaf:
    return lambda row: getattr(row.table, name)  # type: ignore[no-any-return]


def _time(name: str) -> Leaf:
    return lambda row: row.json.utc_text(getattr(row.table, name))


def _gid(type_name: str) -> Leaf:
    return lambda row: _sql_text(f"{PREFIX}{type_name}/").concat(cast(row.table.id, Text))


def _member(key: str) -> Leaf:
    return lambda row: row.json.member_text(row.element, key)


def _amount(row: Row) -> ColumnElement[Any]:
    assert row.money is not None
    return amount_text(row.json, *row.money)


def _currency(row: Row) -> ColumnElement[Any]:
    assert row.money is not None
    return row.money[1]  # type: ignore[no-any-return]


# Leaves whose SQL form writes what the standard resolver writes; a non-null field reads a NOT NULL column.
LEAVES: dict[tuple[str, str], Leaf] = {
    ("Order", "id"): _gid("Order"),
    ("Order", "number"): _column("number"),
    ("Order", "createdAt"): _time("created_at"),
    ("Order", "updatedAt"): _time("updated_at"),
    ("Order", "cancelledAt"): _time("cancelled_at"),
    ("Order", "currencyCode"): _column("currency"),
    ("Order", "financialStatus"): _column("financial_status"),
    ("Order", "status"): _column("status"),
    ("Order", "note"): _column("note"),
    ("Customer", "name"): _column("customer_name"),
    ("Customer", "email"): _column("customer_email"),
    ("Customer", "phone"): _column("customer_phone"),
    ("Money", "amount"): _amount,
    ("Money", "currencyCode"): _currency,
    ("OrderLine", "id"): _gid("OrderLine"),
    ("OrderLine", "title"): _column("title"),
    ("OrderLine", "variantTitle"): _column("variant_title"),
    ("OrderLine", "sku"): _column("sku"),
    ("OrderLine", "quantity"): _column("quantity"),
    ("OrderLine", "imageUrl"): _column("image_url"),
    ("SupplierOrder", "id"): _gid("SupplierOrder"),
    ("SupplierOrder", "aliexpressOrderId"): _column("aliexpress_order_id"),
    ("SupplierOrder", "status"): _column("status"),
    ("SupplierOrder", "endReason"): _column("end_reason"),
    ("SupplierOrder", "paidAt"): _time("paid_at"),
    ("SupplierOrder", "shippedAt"): _time("shipped_at"),
    ("SupplierOrder", "finishedAt"): _time("finished_at"),
    ("SupplierOrder", "createdAt"): _time("created_at"),
    ("SupplierOrder", "updatedAt"): _time("updated_at"),
    ("Supplier", "id"): _gid("Supplier"),
    ("Supplier", "name"): _column("name"),
    ("Supplier", "aliexpressStoreId"): _column("aliexpress_store_id"),
    ("Supplier", "storeUrl"): _column("store_url"),
    ("Supplier", "acceptsReturns"): lambda row: row.json.boolean(row.table.accepts_returns),
    ("Supplier", "returnWindowDays"): _column("return_window_days"),
    ("Package", "id"): _gid("Package"),
    ("Package", "trackingNumber"): _column("tracking_number"),
    ("Package", "carrier"): _column("carrier"),
    ("Package", "trackingStatus"): _column("tracking_status"),
    ("TrackingEvent", "time"): lambda row: row.json.utc_text_of_iso(
        row.json.member_text(row.element, "time")
    ),
    ("TrackingEvent", "status"): _member("status"),
    ("TrackingEvent", "location"): _member("location"),
    ("TrackingEvent", "description"): _member("description"),
    ("CancellationRequest", "id"): _gid("CancellationRequest"),
    ("CancellationRequest", "status"): _column("status"),
    ("CancellationRequest", "reason"): _column("reason"),
    ("CancellationRequest", "respondBy"): _time("respond_by"),
    ("CancellationRequest", "decidedAt"): _time("decided_at"),
    ("CancellationRequest", "createdAt"): _time("created_at"),
    ("CancellationRequest", "updatedAt"): _time("updated_at"),
}


def _same_row(row: Row, build: Build) -> Any:
    return build(row)


def _money(units: str, currency_of: str = "table") -> Nest:
    """A Money value; a line's unit price is in its parent's currency, as the standard resolvers pass it."""

    def nest(row: Row, build: Build) -> Any:
        currency = (row.parent if currency_of == "parent" else row.table).currency
        return build(
            Row(row.json, row.reader, row.table, row.parent, money=(getattr(row.table, units), currency))
        )

    return nest


def _rows_of(model: Any, key: Any, order: Sequence[Any]) -> Nest:
    """The rows of ``model`` whose ``key`` is the parent's id, in ``order`` (the loaders' order)."""

    def nest(row: Row, build: Build) -> Any:
        query = select().select_from(model).where(key == row.table.id, visible(model, row.reader))
        element = build(Row(row.json, row.reader, model, row.table))
        return row.json.array(element, query, order, model)

    return nest


def _supplier(row: Row, build: Build) -> Any:
    query = (
        select()
        .select_from(Supplier)
        .where(Supplier.id == row.table.supplier_id, visible(Supplier, row.reader))
    )
    return row.json.one(build(Row(row.json, row.reader, Supplier, row.table)), query, Supplier)


def _tracking_events(row: Row, build: Build) -> Any:
    elements, element, position = row.json.elements(row.table.tracking_events)
    query = select().select_from(elements)
    answer = build(Row(row.json, row.reader, element=element))
    return row.json.array(answer, query, [position], elements)


NESTED: dict[tuple[str, str], Nest] = {
    ("Order", "customer"): _same_row,
    ("Order", "subtotal"): _money("subtotal"),
    ("Order", "shipping"): _money("shipping"),
    ("Order", "total"): _money("total"),
    ("Order", "lines"): _rows_of(OrderLine, OrderLine.order_id, [OrderLine.position]),
    ("Order", "supplierOrders"): _rows_of(SupplierOrder, SupplierOrder.order_id, [SupplierOrder.id]),
    ("Order", "cancellationRequests"): _rows_of(
        CancellationRequest, CancellationRequest.order_id, [CancellationRequest.id]
    ),
    ("OrderLine", "unitPrice"): _money("unit_price", "parent"),
    ("SupplierOrder", "cost"): _money("cost"),
    ("SupplierOrder", "supplier"): _supplier,
    ("SupplierOrder", "lines"): _rows_of(OrderLine, OrderLine.supplier_order_id, [OrderLine.position]),
    ("SupplierOrder", "packages"): _rows_of(Package, Package.supplier_order_id, [Package.id]),
    ("SupplierOrder", "cancellationRequests"): _rows_of(
        CancellationRequest, CancellationRequest.supplier_order_id, [CancellationRequest.id]
    ),
    ("Package", "events"): _tracking_events,
}


# --- compiling a selection --------------------------------------------------------------------------------


def _type_name(name: str) -> Build:
    return lambda _row: _sql_text(name)


def _nested(nest: Nest, inner: Build) -> Build:
    return lambda row: nest(row, inner)


def compile_selection(
    executor: StrawberryGraphQLCoreExecutionContext, type_: GraphQLObjectType, details: list[FieldDetails]
) -> Build:
    """How to build the JSON of ``type_``'s selection from its row; raises NoSqlForm."""
    grouped, defer_usages, _ = executor.collect_subfields(type_, details)
    if defer_usages or len(grouped) > MAX_KEYS:
        raise NoSqlForm(f"{type_.name}: deferred or too many fields")
    parts: list[tuple[str, Build]] = []
    for key, field_details in grouped.items():
        name = field_details[0].node.name.value
        if any(d.node.arguments or d.defer_usage or d.fragment_variable_values for d in field_details):
            raise NoSqlForm(f"{type_.name}.{name}: arguments, fragment variables or deferral")
        if name == "__typename":
            parts.append((key, _type_name(type_.name)))
            continue
        leaf = LEAVES.get((type_.name, name))
        if leaf is not None:
            parts.append((key, leaf))
            continue
        nest = NESTED.get((type_.name, name))
        named = get_named_type(type_.fields[name].type)
        if nest is None or not isinstance(named, GraphQLObjectType):
            raise NoSqlForm(f"{type_.name}.{name}")
        parts.append((key, _nested(nest, compile_selection(executor, named, field_details))))
    return lambda row: row.json.object([(key, build(row)) for key, build in parts])


@dataclass
class OrderAnswers:
    """One selection on ``Order``, compiled: the statement that answers it for a batch of order ids."""

    build: Build

    def __post_init__(self) -> None:
        self._statements: dict[tuple[str, int], Any] = {}

    def statement(self, dialect: str, reader: Actor) -> Any | None:
        """(order id, its answer as JSON text) for the orders given as ``ids`` (db.id_lists); None when the
        reader or the database is one this does not answer for."""
        json = DIALECTS.get(dialect)
        if json is None or not reader.is_merchant or reader.shop_id is None:
            return None
        key = (dialect, reader.shop_id)
        statement = self._statements.get(key)
        if statement is None:
            if len(self._statements) >= STATEMENTS_KEPT:
                self._statements.clear()
            # As text: the driver's own JSON decoding would parse it with the standard library's json.
            answer = cast(self.build(Row(json, reader, Order)), Text)
            statement = self._statements[key] = select(Order.id, answer).where(
                among(Order.id, dialect), visible(Order, reader)
            )
        return statement


def order_answers(
    executor: StrawberryGraphQLCoreExecutionContext, type_: GraphQLObjectType, details: list[FieldDetails]
) -> OrderAnswers | None:
    """The compiled selection of an ``Order`` field, or None when part of it has no SQL form."""
    if type_.name != "Order":
        return None
    try:
        return OrderAnswers(compile_selection(executor, type_, details))
    except NoSqlForm:
        return None
