"""Compiled read plans answer exactly as the standard executor does: the same JSON, the same errors, over many
generated queries on the demo data; W1's document takes the compiled path, other documents fall back."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from graphql import GraphQLObjectType, GraphQLSchema, get_named_type
from sqlalchemy import text

from api.app import create_app
from bench.reads import W1
from config.settings import Settings, load_settings
from db.engine import Database, StatementCounter, statement_counter
from demo.generator import DemoSeed, seed_demo
from schema import plan
from schema.context import children_loaded_by_plan
from schema.root import build_schema

SECRET = "compiled-reads"
QUERIES = 160
SORT_KEYS = ("CREATED_AT", "UPDATED_AT", "NUMBER", "TOTAL_PRICE", "CUSTOMER_NAME")
SEARCHES = (
    "",
    "status:open",
    "financial_status:paid",
    "supplier_status:wait_buyer_accept_goods",
    "total:>50",
)
# Fields no plan covers, mixed in now and then: such a document must fall back and still answer the same.
UNCOVERED = {
    "Order": ("refundableAmount { amount }", "events { type message }"),
    "SupplierOrder": ("canOpenDispute", "order { number }"),
}


@dataclass
class Apps:
    compiled: httpx.AsyncClient
    standard: httpx.AsyncClient
    demo: DemoSeed
    token: str
    supplier_token: str
    order_ids: list[str]
    cursors: dict[tuple[str, bool], str]


def settings_for(db: Database, *, compiled: bool) -> Settings:
    # Generated pages are big; the budgets are not what this test is about.
    return replace(
        load_settings(),
        database_url=db.url,
        secret_key=SECRET,
        run_worker_in_server=False,
        max_query_cost=1_000_000,
        cost_bucket_size=100_000_000,
        cost_restore_rate=100_000_000,
        compiled_reads=compiled,
    )


async def post(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any], operation: str | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables, "operationName": operation},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without the bucket's level, which moves with the clock."""
    cost = dict(body.get("extensions", {}).get("cost", {}))
    cost.pop("throttleStatus", None)
    return {"data": body.get("data"), "errors": body.get("errors"), "cost": cost}


def differences(one: Any, other: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Where two answers differ: (path, one's value, the other's)."""
    if type(one) is not type(other):
        return [(path, one, other)]
    if isinstance(one, dict):
        found = [] if list(one) == list(other) else [(f"{path} keys", list(one), list(other))]
        return found + [
            d for key in one if key in other for d in differences(one[key], other[key], f"{path}.{key}")
        ]
    if isinstance(one, list):
        if len(one) != len(other):
            return [(f"{path} length", len(one), len(other))]
        return [
            d
            for n, pair in enumerate(zip(one, other, strict=True))
            for d in differences(*pair, f"{path}[{n}]")
        ]
    return [] if one == other else [(path, one, other)]


@pytest.fixture
async def apps(db: Database) -> AsyncIterator[Apps]:
    demo = await seed_demo(db, orders=40, secret_key=SECRET, now=datetime(2026, 1, 1, tzinfo=UTC))
    token = next(iter(demo.merchant_tokens.values()))
    supplier_token = next(iter(demo.supplier_tokens.values()))
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings_for(db, compiled=compiled), db)),
            base_url="http://dropdesk.test",
        )
        for compiled in (True, False)
    ]
    async with clients[0] as compiled, clients[1] as standard:
        ids = await post(standard, token, "{ orders(first: 250) { nodes { id } } }", {})
        order_ids = [node["id"] for node in ids["data"]["orders"]["nodes"]]
        cursors = {}
        for sort_key in SORT_KEYS:
            for reverse in (False, True):
                page = await post(
                    standard,
                    token,
                    f"{{ orders(first: 5, sortKey: {sort_key}, reverse: {str(reverse).lower()}) "
                    "{ pageInfo { endCursor } } }",
                    {},
                )
                cursors[(sort_key, reverse)] = page["data"]["orders"]["pageInfo"]["endCursor"]
        yield Apps(compiled, standard, demo, token, supplier_token, order_ids, cursors)


@dataclass
class QueryWriter:
    """One random document over the covered fields: subsets, aliases, inline and named fragments, merged
    duplicates, @skip/@include with literals and variables, __typename; now and then an uncovered field."""

    rng: random.Random
    schema: GraphQLSchema
    fragments: list[str] = field(default_factory=list)
    declarations: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    aliases: int = 0

    def covered(self, type_name: str) -> list[str]:
        return [name for (owner, name) in plan.READERS if owner == type_name]

    def variable(self, type_: str, value: Any) -> str:
        name = f"v{len(self.declarations)}"
        self.declarations.append(f"${name}: {type_}")
        self.variables[name] = value
        return f"${name}"

    def alias(self) -> str:
        if self.aliases >= 20 or self.rng.random() > 0.2:
            return ""
        self.aliases += 1
        return f"a{self.aliases}: "

    def object_below(self, type_name: str, name: str) -> GraphQLObjectType | None:
        object_type = self.schema.type_map[type_name]
        assert isinstance(object_type, GraphQLObjectType)
        named = get_named_type(object_type.fields[name].type)
        return named if isinstance(named, GraphQLObjectType) else None

    def field_text(self, type_name: str, name: str, *, alias: bool = True) -> str:
        below = self.object_below(type_name, name)
        text = (self.alias() if alias else "") + name
        return text + " { " + self.selection(below.name) + " }" if below is not None else text

    def directive(self) -> str:
        which = self.rng.choice(("skip", "include"))
        if self.rng.random() < 0.5:
            return f" @{which}(if: {self.rng.choice(('true', 'false'))})"
        return f" @{which}(if: {self.variable('Boolean!', self.rng.random() < 0.5)})"

    def selection(self, type_name: str) -> str:
        names = self.covered(type_name)
        chosen = self.rng.sample(names, k=self.rng.randint(1, min(len(names), 5)))
        parts = [self.field_text(type_name, name) for name in chosen]
        if self.rng.random() < 0.15:
            parts.append("__typename")
        objects = [name for name in chosen if self.object_below(type_name, name) is not None]
        if objects and self.rng.random() < 0.15:  # the same field again, another sub-selection: merged
            parts.append(self.field_text(type_name, self.rng.choice(objects), alias=False))
        if type_name in UNCOVERED and self.rng.random() < 0.04:
            parts.append(self.rng.choice(UNCOVERED[type_name]))
        written = []
        for part in parts:
            roll = self.rng.random()
            if roll < 0.12:
                written.append(f"... on {type_name} {{ {part} }}")
            elif roll < 0.22:
                name = f"F{len(self.fragments)}"
                self.fragments.append(f"fragment {name} on {type_name} {{ {part} }}")
                written.append(f"...{name}")
            elif roll < 0.3:
                written.append(f"... on {type_name}{self.directive()} {{ {part} }}")
            elif roll < 0.36:
                written.append(part + self.directive() if " {" not in part else part)
            else:
                written.append(part)
        # A selection whose every field is skipped would be empty: keep one plain field.
        leaves = [name for name in names if self.object_below(type_name, name) is None]
        written.append(self.alias() + leaves[0] if leaves else "__typename")
        return " ".join(written)

    def orders_root(self, apps: Apps) -> str:
        rng = self.rng
        sort_key = rng.choice(SORT_KEYS)
        reverse = rng.random() < 0.5
        arguments = [f"first: {self.variable('Int', rng.choice((1, 3, 7, 20, None)))}"]
        arguments.append(f"sortKey: {sort_key}")
        arguments.append(f"reverse: {self.variable('Boolean', reverse)}")
        roll = rng.random()
        if roll < 0.25:
            arguments.append(f"after: {self.variable('String', apps.cursors[(sort_key, reverse)])}")
        elif roll < 0.28:
            arguments.append('after: "not-a-cursor"')
        if rng.random() < 0.3:
            arguments.append(f"query: {self.variable('String', rng.choice(SEARCHES))}")
        connection = []
        if rng.random() < 0.7:
            connection.append(f"{self.alias()}nodes {{ {self.selection('Order')} }}")
        if rng.random() < 0.4:
            connection.append(f"edges {{ cursor node {{ {self.selection('Order')} }} }}")
        if rng.random() < 0.4 or not connection:
            connection.append(f"pageInfo {{ {self.selection('PageInfo')} }}")
        return f"{self.alias()}orders({', '.join(arguments)}) {{ {' '.join(connection)} }}"

    def document(self, apps: Apps) -> tuple[str, dict[str, Any]]:
        roots = [self.orders_root(apps)]
        if self.rng.random() < 0.3:
            order_id = self.rng.choice([*apps.order_ids[:10], "gid://dropdesk/Order/999999"])
            roots.append(f"one: order(id: {self.variable('ID!', order_id)}) {{ {self.selection('Order')} }}")
        if self.rng.random() < 0.2:
            roots.append(f"count: ordersCount(query: {self.variable('String', self.rng.choice(SEARCHES))})")
        if self.rng.random() < 0.1:
            roots.append("__typename")
        header = (
            f"query Generated({', '.join(self.declarations)})" if self.declarations else "query Generated"
        )
        return "\n".join([header + " { " + " ".join(roots) + " }", *self.fragments]), self.variables


async def test_generated_queries_answer_the_same_compiled_and_standard(apps: Apps, db: Database) -> None:
    schema = build_schema(settings_for(db, compiled=True))._schema
    rng = random.Random(20261126)
    compiled_before, fallbacks_before = plan.stats.compiled, sum(plan.stats.fallbacks.values())
    known_before = plan.stats.known_reads
    with_data = with_errors = 0
    for number in range(QUERIES):
        query, variables = QueryWriter(rng, schema).document(apps)
        token = apps.supplier_token if number % 40 == 39 else apps.token  # suppliers are refused orders
        compiled = await post(apps.compiled, token, query, variables)
        standard = await post(apps.standard, token, query, variables)
        assert comparable(compiled) == comparable(standard), query
        # Sent again, a document a plan answered is a known read, answered without the HTTP view.
        again = await post(apps.compiled, token, query, variables)
        assert comparable(again) == comparable(standard), query
        with_data += bool(standard.get("data"))
        with_errors += bool(standard.get("errors"))
    compiled_count = plan.stats.compiled - compiled_before
    fallback_count = sum(plan.stats.fallbacks.values()) - fallbacks_before
    # The generator exercises both paths: most documents compile, some (uncovered fields, errors) fall back.
    assert compiled_count >= QUERIES * 2 * 0.6, plan.stats
    assert plan.stats.known_reads - known_before >= QUERIES * 0.6, plan.stats
    assert fallback_count >= 5, plan.stats
    assert with_data >= QUERIES * 0.9 and with_errors >= 3


async def _counted(client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]) -> Any:
    counter = StatementCounter()
    reset = statement_counter.set(counter)
    try:
        body = await post(client, token, query, variables)
    finally:
        statement_counter.reset(reset)
    return body, counter.count


async def test_the_dashboard_query_takes_the_compiled_path_and_others_fall_back(apps: Apps) -> None:
    for client in (apps.compiled, apps.standard):  # the token's last use is written once, on a first request
        await post(client, apps.token, "{ ordersCount }", {})
    before = plan.stats.compiled
    for first in (2, 20):
        compiled, compiled_statements = await _counted(apps.compiled, apps.token, W1, {"first": first})
        standard, standard_statements = await _counted(apps.standard, apps.token, W1, {"first": first})
        assert comparable(compiled) == comparable(standard)
        assert len(compiled["data"]["orders"]["nodes"]) == first
        # The page, then one statement in which the database builds every order's answer; the standard
        # executor reads each relation in turn.
        assert compiled_statements == 2 < standard_statements
    assert plan.stats.compiled == before + 2
    # Known now; with variables that do not coerce, or that make it too costly, the standard way answers.
    known = plan.stats.known_reads
    for variables in ({"first": "ten"}, {}, {"first": 10**12}):
        compiled = await post(apps.compiled, apps.token, W1, variables)
        standard = await post(apps.standard, apps.token, W1, variables)
        assert compiled["errors"][0]["extensions"]["code"] in ("BAD_USER_INPUT", "MAX_COST_EXCEEDED")
        assert comparable(compiled) == comparable(standard)
    assert plan.stats.known_reads == known
    # The page's resolver is told that a plan answers only while it does (a WebSocket shares its context).
    assert children_loaded_by_plan.get() is False

    one = "query($id: ID!) { order(id: $id) { number lines { title } supplierOrders { supplier { name } } } }"
    assert (await post(apps.compiled, apps.token, one, {"id": apps.order_ids[0]}))["data"]["order"]["number"]
    assert plan.stats.compiled == before + 3

    uncovered = [
        ("{ orders(first: 2) { nodes { number refundableAmount { amount } } } }", "Order.refundableAmount"),
        ("{ shop { name } }", "Query.shop"),
        ("{ orders(first: 2) { nodes { id ... on Node { id } } } }", None),
    ]
    for query, reason in uncovered:
        fallbacks = sum(plan.stats.fallbacks.values())
        body = await post(apps.compiled, apps.token, query, {})
        assert body.get("data") and not body.get("errors")
        if reason is not None:
            assert plan.stats.fallbacks[f"not covered: {reason}"] >= 1
            assert sum(plan.stats.fallbacks.values()) == fallbacks + 1
    # A root resolver's error: the standard executor answers it, as usual.
    fallbacks = sum(plan.stats.fallbacks.values())
    body = await post(apps.compiled, apps.token, W1.replace("reverse: true", 'after: "x"'), {"first": 2})
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert sum(plan.stats.fallbacks.values()) == fallbacks + 1


async def test_a_plan_holds_for_its_operation_and_the_values_its_directives_read(apps: Apps) -> None:
    document = (
        "query A($s: Boolean!) { orders(first: 2) { nodes { id number @skip(if: $s) } } }\n"
        "query B($t: Boolean!) { orders(first: 2) { nodes { id ... on Order @include(if: $t) { number } } } }"
    )
    before = plan.stats.compiled
    for operation, variables in [
        ("A", {"s": True}),
        ("B", {"t": True}),
        ("B", {"t": False}),
        ("A", {"s": False}),
    ]:
        compiled = await post(apps.compiled, apps.token, document, variables, operation)
        standard = await post(apps.standard, apps.token, document, variables, operation)
        assert comparable(compiled) == comparable(standard), (operation, variables)
        shown = next(iter(variables.values())) != (operation == "A")
        assert ("number" in compiled["data"]["orders"]["nodes"][0]) is shown
    assert plan.stats.compiled == before + 4


EVERYTHING = """
query Everything {
  orders(first: 250, sortKey: CREATED_AT) {
    nodes {
      __typename id number createdAt updatedAt cancelledAt currencyCode financialStatus status note
      customer { name email phone }
      subtotal { amount currencyCode } shipping { amount } total { amount currencyCode }
      lines { id title variantTitle sku quantity imageUrl unitPrice { amount currencyCode } }
      cancellationRequests { id status reason respondBy decidedAt createdAt updatedAt }
      supplierOrders {
        id aliexpressOrderId status endReason paidAt shippedAt finishedAt createdAt updatedAt
        cost { amount currencyCode }
        supplier { __typename id name aliexpressStoreId storeUrl acceptsReturns returnWindowDays }
        lines { id title unitPrice { amount } }
        packages { id trackingNumber carrier trackingStatus events { time status location description } }
        cancellationRequests { id status }
      }
    }
  }
}
"""


async def test_the_database_writes_awkward_values_as_the_standard_executor_does(
    apps: Apps, db: Database
) -> None:
    """Amounts rounded half to even in currencies of 0, 2 and 3 decimals, negative ones, text that JSON must
    escape, event times with offsets and fractions, both booleans: the answers the database builds are the
    standard executor's."""
    shop_id = apps.demo.shop_ids[next(iter(apps.demo.merchant_tokens))]
    events = (
        '[{"time": "2026-01-01T10:00:00.999999+05:30", "status": "picked \\"up\\"", "location": "Zürich\\n"},'
        ' {"time": "2025-12-31T23:59:59-03:00", "status": "in transit", "description": "\\u2603 \\\\ /"}]'
    )
    updates = [
        # (currency, order total units, line unit price units)
        ("JPY", 25_000, 15_000),
        ("KWD", 12_345, 5),
        ("USD", -5, -12_350),
        ("EUR", 12_250, 10_050),
        ("JPY", 5_000, -25_000),
    ]
    async with db.write() as session:
        order_ids = (
            (
                await session.execute(
                    text("SELECT id FROM orders WHERE shop_id = :shop ORDER BY created_at LIMIT :n"),
                    {"shop": shop_id, "n": len(updates)},
                )
            )
            .scalars()
            .all()
        )
        for order_id, (currency, total, price) in zip(order_ids, updates, strict=True):
            await session.execute(
                text(
                    "UPDATE orders SET currency = :currency, total = :total, subtotal = :total,"
                    " note = :note, customer_name = :name WHERE id = :id"
                ),
                {
                    "currency": currency,
                    "total": total,
                    "id": order_id,
                    "note": 'a "quoted"\nnote\t✓',
                    "name": "O'Brien \\ 李",
                },
            )
            await session.execute(
                text("UPDATE order_lines SET unit_price = :price, variant_title = NULL WHERE order_id = :id"),
                {"price": price, "id": order_id},
            )
            await session.execute(
                text(
                    "UPDATE packages SET tracking_events = :events WHERE supplier_order_id IN"
                    " (SELECT id FROM supplier_orders WHERE order_id = :id)"
                ),
                {"events": events, "id": order_id},
            )
        await session.execute(
            text("UPDATE suppliers SET accepts_returns = (id % 2 = 0) WHERE shop_id = :shop"),
            {"shop": shop_id},
        )
    compiled = await post(apps.compiled, apps.token, EVERYTHING, {})
    standard = await post(apps.standard, apps.token, EVERYTHING, {})
    assert not standard.get("errors")
    assert comparable(compiled) == comparable(standard), differences(compiled, standard)[:5]
    amounts = {node["total"]["amount"] for node in compiled["data"]["orders"]["nodes"]}
    assert {"2", "1.234", "-0.00", "1.22", "0"} <= amounts


async def test_a_stored_time_the_sql_cannot_read_leaves_the_answer_to_the_standard_executor(
    apps: Apps, db: Database
) -> None:
    query = (
        "{ orders(first: 250) { nodes { number supplierOrders { packages { events { time status } } } } } }"
    )
    for events in (
        '[{"time": "soon", "status": "x"}]',
        '[{"status": "no time"}]',
        '[{"time": "123", "status": "x"}]',
    ):
        async with db.write() as session:
            await session.execute(
                text(
                    "UPDATE packages SET tracking_events = :events WHERE id = (SELECT min(id) FROM packages)"
                ),
                {"events": events},
            )
        fallbacks = sum(plan.stats.fallbacks.values())
        compiled = await post(apps.compiled, apps.token, query, {})
        standard = await post(apps.standard, apps.token, query, {})
        # An internal error either way (the stored data is broken), each with its own request id.
        assert [(e["path"], e["extensions"]["code"]) for e in compiled["errors"]] == [
            (e["path"], e["extensions"]["code"]) for e in standard["errors"]
        ], events
        assert compiled["data"] == standard["data"]
        assert sum(plan.stats.fallbacks.values()) == fallbacks + 1


async def test_a_known_read_is_logged_as_the_standard_way_logs_it(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dropdesk.access"):
        for _ in range(2):  # the second time as a known read
            known = plan.stats.known_reads
            assert (await post(apps.compiled, apps.token, W1, {"first": 3}))["data"]["orders"]["nodes"]
    assert plan.stats.known_reads == known + 1
    entries = [record.http for record in caplog.records if record.name == "dropdesk.access"]  # type: ignore[attr-defined]
    assert [(e["operation"], e["operation_type"], e["status"]) for e in entries] == [("W1", "query", 200)] * 2
