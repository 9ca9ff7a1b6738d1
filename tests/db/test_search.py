"""The order search syntax: parsing errors say where and why; compiled filters pick the right orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from db.engine import Database
from db.models import (
    CancellationReason,
    CancellationRequest,
    CancellationStatus,
    FinancialStatus,
    Order,
    OrderLine,
    OrderStatus,
    Package,
    Shop,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
)
from db.search import (
    HAS_FILTERS,
    And,
    MatchAll,
    Not,
    Or,
    SearchSyntaxError,
    Term,
    child_rows_count,
    order_filter,
    parse_query,
)

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
S = SupplierOrderStatus


@dataclass(frozen=True)
class Seeded:
    shop_id: int
    other_shop_id: int


@dataclass(frozen=True)
class Spec:
    """One order of the fixture dataset, with its supplier orders as (supplier key, status, tracking numbers)."""

    number: str
    customer: str
    email: str | None
    total: str
    financial: FinancialStatus
    status: OrderStatus
    tags: str
    created: datetime
    skus: tuple[str, ...]
    supplier_orders: tuple[tuple[str, SupplierOrderStatus, tuple[str, ...]], ...] = ()
    updated: datetime | None = None


def at(day: str, clock: str = "12:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00+00:00")


ORDERS = (
    Spec("#1001", "Ana Lopez", "ana.lopez@example.com", "25.00", FinancialStatus.PAID, OrderStatus.OPEN,
         "vip,gift", at("2026-01-10", "08:00"), ("TSHIRT-RED-M", "MUG-01"),
         (("s1", S.WAIT_SELLER_SEND_GOODS, ()),)),
    Spec("#1002", "Bob Smith", "bob@example.org", "99.99", FinancialStatus.PAID, OrderStatus.OPEN,
         "vip", at("2026-01-09", "15:00"), ("LAMP_XL",),
         (("s2", S.WAIT_BUYER_ACCEPT_GOODS, ("LP00123456CN",)),)),
    Spec("#1003", "Carla Diaz", None, "150", FinancialStatus.PARTIALLY_REFUNDED, OrderStatus.OPEN,
         "", at("2026-01-05"), ("TSHIRT-BLUE-L",), (("s1", S.IN_CANCEL, ()),),
         updated=at("2026-01-09", "10:00")),
    Spec("#1004", "Dan O'Brien", "dan@example.com", "10", FinancialStatus.REFUNDED, OrderStatus.CANCELLED,
         "vipgold,wholesale", at("2025-12-31", "23:30"), ("MUG-02",),
         (("s3", S.IN_ISSUE, ("YT2024000001",)),)),
    Spec("#1005", "Eve Adams", "eve_adams@example.com", "250.50", FinancialStatus.PAID, OrderStatus.CLOSED,
         "Gift", at("2025-12-01"), ("SOFA-100",),
         (("s1", S.FINISH, ("LP00999999CN",)), ("s2", S.FINISH, ("ZZ1", "ZZ2")))),
    Spec("#1006", "Frank Miller", "evex@example.com", "25", FinancialStatus.VOIDED, OrderStatus.CANCELLED,
         "", at("2026-01-10", "11:00"), (), (("s2", S.PLACE_ORDER_SUCCESS, ()),)),
    Spec("#999", "Ana Beltran", "ana.b@shop.test", "5.5", FinancialStatus.PAID, OrderStatus.OPEN,
         "wholesale,vip", at("2025-11-15"), ("TSHIRT-RED-S",)),
    Spec("#1008", "Gina 100% Cotton", "gina@example.com", "1000", FinancialStatus.PAID, OrderStatus.OPEN,
         "b2b", at("2026-01-03", "09:00"), ("TSHIRT-RED-M",),
         (("s3", S.SELLER_PART_SEND_GOODS, ("LP00123999CN",)),)),
)  # fmt: skip

SUPPLIERS = {
    "s1": ("Shenzhen Gadgets Co", "STORE111"),
    "s2": ("Yiwu Home_Decor", "STORE222"),
    "s3": ("Best 100% Tools", "STORE333"),
}

# A second shop whose order looks like #1001 in every searchable way; it must never leak into the first.
OTHER_SHOP_ORDER = Spec(
    "#1001", "Ana Lopez", "ana.lopez@example.com", "25.00", FinancialStatus.PAID, OrderStatus.OPEN,
    "vip,gift", at("2026-01-10", "08:00"), ("TSHIRT-RED-M",),
    (("s1", S.IN_CANCEL, ("LP00123456CN",)),),
)  # fmt: skip


async def seed(db: Database) -> Seeded:
    """Inserts the dataset; order numbers are unique within the first shop so results compare by number."""
    async with db.write() as session:
        shop = Shop(name="Main", currency="USD")
        other = Shop(name="Other", currency="USD")
        session.add_all([shop, other])
        await session.flush()
        suppliers = {
            key: Supplier(shop_id=shop.id, name=name, aliexpress_store_id=store, webhook_secret="whsec_x")
            for key, (name, store) in SUPPLIERS.items()
        }
        other_suppliers = {
            "s1": Supplier(shop_id=other.id, name="Shenzhen Gadgets Co", aliexpress_store_id="STORE111",
                           webhook_secret="whsec_y"),
        }  # fmt: skip
        session.add_all([*suppliers.values(), *other_suppliers.values()])
        await session.flush()
        counter = 0
        for shop_id, specs, by_key in (
            (shop.id, ORDERS, suppliers),
            (other.id, (OTHER_SHOP_ORDER,), other_suppliers),
        ):
            for spec in specs:
                order = Order(
                    shop_id=shop_id,
                    number=spec.number,
                    number_value=int(spec.number.lstrip("#")),
                    customer_name=spec.customer,
                    customer_email=spec.email,
                    currency="USD",
                    subtotal=Decimal(spec.total),
                    shipping=Decimal(0),
                    total=Decimal(spec.total),
                    financial_status=spec.financial,
                    status=spec.status,
                    tags=spec.tags,
                    created_at=spec.created,
                    updated_at=spec.updated or spec.created,
                )
                session.add(order)
                await session.flush()
                for position, sku in enumerate(spec.skus):
                    session.add(
                        OrderLine(shop_id=shop_id, order_id=order.id, position=position, title=sku, sku=sku,
                                  quantity=1, unit_price=Decimal(1))
                    )  # fmt: skip
                for key, status, trackings in spec.supplier_orders:
                    counter += 1
                    supplier_order = SupplierOrder(
                        shop_id=shop_id, order_id=order.id, supplier_id=by_key[key].id,
                        aliexpress_order_id=f"AE{counter}", status=status, currency="USD", cost=Decimal(1),
                    )  # fmt: skip
                    session.add(supplier_order)
                    await session.flush()
                    if status is S.IN_CANCEL:
                        # An IN_CANCEL supplier order is one with an open cancellation request.
                        session.add(
                            CancellationRequest(
                                shop_id=shop_id, order_id=order.id, supplier_order_id=supplier_order.id,
                                status=CancellationStatus.PENDING, reason=CancellationReason.CUSTOMER_CANCELLED,
                                open_key=supplier_order.id, previous_status=S.WAIT_SELLER_SEND_GOODS,
                                requested_by="staff",
                            )
                        )  # fmt: skip
                    session.add_all(
                        Package(shop_id=shop_id, supplier_order_id=supplier_order.id, tracking_number=number)
                        for number in trackings
                    )
        return Seeded(shop_id=shop.id, other_shop_id=other.id)


async def search(db: Database, shop_id: int, query: str) -> list[str]:
    """Matching order numbers, sorted, duplicates kept so that a row-multiplying join would show."""
    async with db.read() as session:
        rows = await session.scalars(
            select(Order.number).where(Order.shop_id == shop_id, order_filter(query, now=NOW))
        )
        return sorted(rows)


ALL = ["#1001", "#1002", "#1003", "#1004", "#1005", "#1006", "#1008", "#999"]

GOOD: list[tuple[str, set[str]]] = [
    ("", set(ALL)),
    ("   ", set(ALL)),
    # bare words: number, customer name or email (contains), SKU or tracking number (prefix)
    ("#1001", {"#1001"}),
    ("1001", {"#1001"}),
    ("ana", {"#1001", "#999"}),
    ('"Ana Lopez"', {"#1001"}),
    ('"bob@example.org"', {"#1002"}),
    ("LP00123", {"#1002", "#1008"}),
    ("lp00999999cn", {"#1005"}),
    ("tshirt-red", {"#1001", "#1008", "#999"}),
    ("ana OR bob", {"#1001", "#999", "#1002"}),
    ("ana or bob", set()),
    # number
    ("number:#999", {"#999"}),
    ("number:1002", {"#1002"}),
    ("number:>1004", {"#1005", "#1006", "#1008"}),
    ("number:<=1001", {"#1001", "#999"}),
    # number prefixes, with or without '#'
    ("number:#100*", {"#1001", "#1002", "#1003", "#1004", "#1005", "#1006", "#1008"}),
    ("number:99*", {"#999"}),
    ("number:#1001*", {"#1001"}),
    ("-number:#100*", {"#999"}),
    # customer and email
    ("customer:lopez", {"#1001"}),
    ('customer:"ana b"', {"#999"}),
    ("customer:'100%'", {"#1008"}),
    ("customer:'Dan O\\'Brien'", {"#1004"}),
    ("customer:'o\\'brien' email:dan*", {"#1004"}),
    ("customer:'\"Ana\" Lopez'", set()),
    ("email:BOB@example.org", {"#1002"}),
    ("email:ana*", {"#1001", "#999"}),
    ("email:eve_*", {"#1005"}),
    ("-email:bob@example.org", set(ALL) - {"#1002"}),
    # a domain, with or without its '@'
    ("email:@example.com", {"#1001", "#1004", "#1005", "#1006", "#1008"}),
    ("email:EXAMPLE.org", {"#1002"}),
    ("email:@shop.test OR email:example.org", {"#999", "#1002"}),
    ("-email:@example.com", {"#1002", "#1003", "#999"}),
    ("email:ana.lopez@example.com*", {"#1001"}),
    # statuses
    ("status:open", {"#1001", "#1002", "#1003", "#999", "#1008"}),
    ("Status:CANCELLED", {"#1004", "#1006"}),
    ("-status:open", {"#1004", "#1005", "#1006"}),
    ("financial_status:partially_refunded", {"#1003"}),
    ("financial_status:paid status:closed", {"#1005"}),
    ("supplier_status:wait_seller_send_goods", {"#1001"}),
    ("supplier_status:FINISH", {"#1005"}),
    # suppliers, SKUs, tracking numbers
    ("supplier:shenzhen", {"#1001", "#1003", "#1005"}),
    ("supplier:STORE222", {"#1002", "#1005", "#1006"}),
    ("supplier:home_decor", {"#1002", "#1005", "#1006"}),
    ("supplier:100%", {"#1004", "#1008"}),
    ("supplier:shenzhen supplier_status:in_cancel", {"#1003"}),
    ("sku:mug-01", {"#1001"}),
    ("sku:MUG*", {"#1001", "#1004"}),
    ("tracking:lp00123456cn", {"#1002"}),
    ("tracking:LP00123", set()),
    ("tracking:LP00123*", {"#1002", "#1008"}),
    ("tracking:lp*", {"#1002", "#1005", "#1008"}),
    ("tracking:ZZ2", {"#1005"}),
    # tags match whole tags only
    ("tag:vip", {"#1001", "#1002", "#999"}),
    ("tag:GIFT", {"#1001", "#1005"}),
    ("tag:vip tag:gift", {"#1001"}),
    ("tag:vip OR tag:wholesale", {"#1001", "#1002", "#999", "#1004"}),
    ("tag:vi", set()),
    ("tag:vi*", {"#1001", "#1002", "#999", "#1004"}),
    ("tag:whole*", {"#1004", "#999"}),
    ("-tag:vip*", {"#1003", "#1005", "#1006", "#1008"}),
    # suppliers by name prefix or store-id prefix, SKU prefixes
    ("supplier:shenzhen*", {"#1001", "#1003", "#1005"}),
    ("supplier:gadgets*", set()),
    ("supplier:store3*", {"#1004", "#1008"}),
    ("sku:tshirt-red*", {"#1001", "#1008", "#999"}),
    ("sku:LAMP_*", {"#1002"}),
    ("sku:lamp%", set()),
    # free-text fields ignore a trailing '*'
    ("customer:lope*", {"#1001"}),
    ("lp00999*", {"#1005"}),
    # totals
    ("total:25", {"#1001", "#1006"}),
    ("total:>100", {"#1003", "#1005", "#1008"}),
    ("total:>=99.99 total:<250.5", {"#1002", "#1003"}),
    ("total:<=10", {"#1004", "#999"}),
    # dates: a day is a whole UTC day; relative values count back from NOW
    ("created_at:today", {"#1001", "#1006"}),
    ("created_at:yesterday", {"#1002"}),
    ("created_at:2026-01-05", {"#1003"}),
    ("created_at:>2025-12-31", {"#1001", "#1002", "#1003", "#1006", "#1008"}),
    ("created_at:>=2026-01-01", {"#1001", "#1002", "#1003", "#1006", "#1008"}),
    ("created_at:<=2025-12-31", {"#1004", "#1005", "#999"}),
    ("created_at:<2025-12-31", {"#1005", "#999"}),
    ("created_at:>=-24h", {"#1001", "#1002", "#1006"}),
    ("created_at:-7d", {"#1001", "#1002", "#1003", "#1006"}),
    ("created_at:<-1w", {"#1004", "#1005", "#999", "#1008"}),
    ("created_at:>=2026-01-09T15:00:00Z", {"#1001", "#1002", "#1006"}),
    ('created_at:>"2026-01-09 16:00+02:00"', {"#1001", "#1002", "#1006"}),
    ("created_at:2026-01-09T15:00:00", {"#1002"}),
    ("updated_at:yesterday", {"#1002", "#1003"}),
    # has:
    ("has:open_cancellation", {"#1003"}),
    ("has:open_dispute", {"#1004"}),
    ("has:open_return", set()),
    ("-has:open_return", set(ALL)),
    # boolean structure
    ("status:open -tag:vip", {"#1003", "#1008"}),
    ("NOT tag:vip AND status:open", {"#1003", "#1008"}),
    ("(tag:vip OR tag:gift) financial_status:paid", {"#1001", "#1002", "#999", "#1005"}),
    ("tag:vip OR tag:gift status:closed", {"#1001", "#1002", "#999", "#1005"}),
    ("-(status:open OR status:closed)", {"#1004", "#1006"}),
    ("--tag:vip", {"#1001", "#1002", "#999"}),
    ("ana tag:vip total:<10", {"#999"}),
    ("-ana", set(ALL) - {"#1001", "#999"}),
]


@pytest.mark.parametrize(("query", "expected"), GOOD, ids=[query or "<empty>" for query, _ in GOOD])
async def test_query_matches(db: Database, query: str, expected: set[str]) -> None:
    seeded = await seed(db)
    assert await search(db, seeded.shop_id, query) == sorted(expected)


@pytest.mark.parametrize(("query", "expected"), GOOD, ids=[query or "<empty>" for query, _ in GOOD])
async def test_page_filter_matches_the_same(db: Database, query: str, expected: set[str]) -> None:
    """The filter of a sorted page (on SQLite, id lists probed while the sort index is walked) finds the same."""
    seeded = await seed(db)
    clause = order_filter(query, now=NOW, shop_id=seeded.shop_id, ordered_page=True)
    async with db.read() as session:
        rows = await session.scalars(
            select(Order.number)
            .where(Order.shop_id == seeded.shop_id, clause)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(21)
        )
        assert sorted(rows) == sorted(expected)


@pytest.mark.parametrize(
    ("query", "walks"),
    [
        ("sku:tshirt*", True),  # the lines' order ids are probed while the index is walked newest first
        ("(tag:vip OR tag:gift) supplier:shenzhen", True),  # every list, once one bounds the result
        ("tracking:LP00123456CN", False),  # names an order or two: left to the planner
        ("ana", False),  # an OR at the top: left to the planner
    ],
)
async def test_sqlite_page_walks_the_sort_index(db: Database, query: str, walks: bool) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL costs lists from its statistics")
    seeded = await seed(db)
    clause = order_filter(query, now=NOW, shop_id=seeded.shop_id, ordered_page=True)
    statement = (
        select(Order.id)
        .where(Order.shop_id == seeded.shop_id, clause)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(21)
    )
    async with db.read() as session:
        compiled = statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        plan = [row[3] for row in await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))]
    assert ("+orders.id IN" in str(compiled)) == walks
    if walks:  # otherwise the planner chooses, from statistics this small table does not have
        assert any("ix_orders_shop_created" in step for step in plan), plan
        assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), plan


OR_OF_LISTS: list[tuple[str, set[str]]] = [
    ("sku:mug* OR tracking:lp00123456cn", {"#1001", "#1002", "#1004"}),
    ("has:open_dispute OR financial_status:partially_refunded", {"#1003", "#1004"}),
    ("has:open_cancellation OR financial_status:voided", {"#1003", "#1006"}),
    ("supplier_status:wait_seller_send_goods OR status:cancelled", {"#1001", "#1004", "#1006"}),
    ("sku:mug-01 OR bob", {"#1001", "#1002"}),
    ("tracking:lp* OR lopez", {"#1001", "#1002", "#1005", "#1008"}),
    ("supplier:shenzhen OR ana", {"#1001", "#1003", "#1005", "#999"}),
    ("(sku:mug* OR tag:b2b) status:open", {"#1001", "#1008"}),
    ("-(sku:tshirt* OR tracking:zz*)", {"#1002", "#1004", "#1006"}),
    ("lp00123 OR has:open_dispute", {"#1002", "#1004", "#1008"}),
]


@pytest.mark.parametrize(("query", "expected"), OR_OF_LISTS, ids=[query for query, _ in OR_OF_LISTS])
async def test_or_of_child_lists_finds_what_the_plain_or_finds(
    db: Database, query: str, expected: set[str]
) -> None:
    """Limited to a shop, an OR with child-row lists becomes one list of ids (on PostgreSQL) and its count may
    read the lists alone: both find what the plain OR finds, and nothing of the other shop's look-alike."""
    seeded = await seed(db)
    clause = order_filter(query, now=NOW, shop_id=seeded.shop_id)
    counted = child_rows_count(clause, seeded.shop_id)
    async with db.read() as session:
        rows = await session.scalars(select(Order.number).where(Order.shop_id == seeded.shop_id, clause))
        count = await session.scalar(
            counted
            if counted is not None
            else select(func.count()).select_from(Order).where(Order.shop_id == seeded.shop_id, clause)
        )
    assert sorted(rows) == await search(db, seeded.shop_id, query) == sorted(expected)
    assert count == len(expected)


BAD: list[tuple[str, int, str]] = [
    ("colour:red", 0, "unknown field 'colour' (known fields: created_at, customer,"),
    ("tag:vip Colour:red", 8, "unknown field 'Colour'"),
    (":vip", 0, "missing field name"),
    ("status:pending", 7, "unknown value 'pending' (allowed values: open, cancelled, closed)"),
    ("supplier_status:shipped", 16, "allowed values: place_order_success"),
    ("has:open_refund", 4, "open_cancellation, open_dispute, open_return"),
    ("status:>open", 7, "does not support '>'"),
    ("tag:<=vip", 4, "does not support '<='"),
    ("total:abc", 6, "bad amount"),
    ("total:1.23456", 6, "four decimal places"),
    ("number:>abc", 8, "bad number"),
    ("created_at:2024-02-30", 11, "bad date"),
    ("created_at:>last", 12, "bad date"),
    ("created_at:-99999w", 11, "100 years"),
    ("created_at:9999-12-31", 11, "bad date"),
    ('created_at:"0001-01-01T00:00+01:00"', 11, "bad date"),
    ("number:#", 7, "expected digits"),
    ('ana ""', 4, "empty quoted word"),
    ('customer:"Ana', 9, "unterminated quote"),
    ("ana 'bob", 4, "unterminated quote"),
    ('customer:"Ana"x', 14, "after the closing quote"),
    ("(tag:vip OR tag:gift", 0, "'(' is never closed"),
    ("tag:vip)", 7, "')' has no matching '('"),
    ("()", 0, "empty parentheses"),
    ("tag:vip OR", 8, "dangling 'OR'"),
    ("AND tag:vip", 0, "dangling 'AND'"),
    ("ana AND OR bob", 8, "dangling 'OR'"),
    ("tag:vip NOT", 8, "dangling 'NOT'"),
    ("tag:vip -", 8, "dangling '-'"),
    ("status:", 7, "empty value after 'status:'"),
    ('customer:""', 9, "empty value"),
    ("total:>", 7, "empty value after 'total:>'"),
    ("email:*", 6, "at least one character before '*'"),
    ("tag:a,b", 4, "cannot contain ','"),
    ("x" * 1001, 1000, "too long"),
    # what a hostile or careless client sends must be a clean error, never an internal one
    ("ana (", 4, "'(' is never closed"),
    ("(", 0, "'(' is never closed"),
    ("NOT (", 4, "'(' is never closed"),
    ("((((", 3, "'(' is never closed"),
    ("-" * 30 + "ana", 10, "nested too deeply"),
    ("NOT " * 40 + "ana", 40, "nested too deeply"),
    ("(" * 300 + "ana" + ")" * 300, 10, "nested too deeply"),
    ("-(" * 6 + "ana" + ")" * 6, 10, "nested too deeply"),
    ("ana\x00bob", 3, "NUL character"),
    ("customer:\x00", 9, "NUL character"),
    ("ana \ud800", 4, "lone UTF-16 surrogate"),
    ('customer:"x\udfff"', 11, "lone UTF-16 surrogate"),
    ("sku:a*b", 4, "'*' may only end a value"),
    ("number:#1*2", 7, "'*' may only end a value"),
    ("number:>10*", 8, "comparators need digits"),
    ("tracking:*", 9, "at least one character before '*'"),
    ("customer:**", 9, "at least one character before '*'"),
    (" ".join(["ana"] * 51), 200, "too many terms"),
]


@pytest.mark.parametrize(("query", "position", "phrase"), BAD, ids=[query[:40] for query, _, _ in BAD])
def test_bad_query(query: str, position: int, phrase: str) -> None:
    with pytest.raises(SearchSyntaxError) as caught:
        order_filter(query, now=NOW)
    assert caught.value.position == position
    assert phrase in caught.value.reason
    assert str(caught.value) == f"at position {position}: {caught.value.reason}"


def test_limits_are_inclusive() -> None:
    assert isinstance(parse_query(" ".join(["ana"] * 50)), And)
    assert isinstance(parse_query("a" * 1000), Term)
    assert isinstance(parse_query("-" * 10 + "ana"), Not)
    assert isinstance(parse_query("(" * 10 + "ana" + ")" * 10), Term)


async def test_deepest_accepted_query_runs(db: Database) -> None:
    """The nesting bound keeps the SQL within what both databases parse (SQLite's parser stack is fixed)."""
    seeded = await seed(db)
    deepest = "-(" * 4 + "NOT -ana" + ")" * 4
    assert await search(db, seeded.shop_id, deepest) == ["#1001", "#999"]
    widest = " OR ".join(f"(-(-tag:vip) -(NOT -sku:x{n}*))" for n in range(16))
    assert await search(db, seeded.shop_id, widest) == ["#1001", "#1002", "#999"]


def test_ast_shape() -> None:
    """OR binds looser than AND, and keywords are upper case only."""
    tree = parse_query('a -b OR NOT (c) customer:"x \\" y"')
    assert tree == Or(
        (
            And((Term(None, ":", "a", "a", 0), Not(Term(None, ":", "b", "b", 3)))),
            And((Not(Term(None, ":", "c", "c", 13)), Term("customer", ":", 'x " y', 'x " y', 16))),
        )
    )
    assert parse_query("") == MatchAll()
    assert isinstance(parse_query("a or b"), And)


QUERIES_SEEN_BY_OTHER_SHOP = [
    ("ana", ["#1001"]),
    ("#1001 tag:vip", ["#1001"]),
    ("tracking:LP00123456CN", ["#1001"]),
    ("has:open_cancellation", ["#1001"]),
    ("supplier:STORE111 sku:tshirt-red-m", ["#1001"]),
    ("has:open_dispute", []),
    ("", ["#1001"]),
]


@pytest.mark.parametrize(("query", "expected"), QUERIES_SEEN_BY_OTHER_SHOP)
async def test_scoped_to_shop(db: Database, query: str, expected: list[str]) -> None:
    """Child-table subqueries follow the order they belong to, so shop scoping holds."""
    seeded = await seed(db)
    assert await search(db, seeded.other_shop_id, query) == expected
    # In the first shop, the same queries see only its own #1001 (never the other shop's look-alike).
    assert (await search(db, seeded.shop_id, query)).count("#1001") <= 1


async def test_has_registry_is_read_when_compiling(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Later modules register better ``has:`` definitions; compiling must pick them up."""
    seeded = await seed(db)
    monkeypatch.setitem(HAS_FILTERS, "open_return", lambda: Order.total > Decimal(500))
    assert await search(db, seeded.shop_id, "has:open_return") == ["#1008"]
