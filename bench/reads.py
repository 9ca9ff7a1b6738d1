"""Every workload of the read-performance bench, on one seeded database, against a hand-written endpoint (B1)
that answers W1 with direct SQL and orjson, measured in the same run.

W1 the dashboard page (first: 100 and 10), W2 one order with everything, W3 searches (four kinds in turn, then
bench/search.py's table of every form with the plan of the slowest), W4 the cancellation flow (the merchant
asks, the supplier approves or rejects), W5 an export of 100,000 line items (CSV and XLSX), W6 reads and writes
at once. Seeds N demo orders into a fresh SQLite file (or into the PostgreSQL database given, emptied first),
measures W1-W3 in-process (httpx's ASGITransport, one request at a time) and over HTTP (each app served by its
own uvicorn process on loopback, one worker, the load sent by this process), W4 and W6 over HTTP, W5 in this
process. B1's answer is compared with the server's first. The last line is ``W1/B1 throughput ratio: X.XX``.

    python3 run.py bench [--orders 100000] [--database-url postgresql+asyncpg://...] [--seconds 10]
        [--concurrency 8] [--rounds 30] [--repeat 15] [--flows 200] [--export-rows 100000] [--skip-http]
    python3 run.py bench --serve-workers 2 --concurrency 1,8,32 --database-url postgresql+asyncpg://...
        # only W1 and W2 against `dropdesk serve --workers 2`, and B1 with two uvicorn workers

Not a test; CI does not run it. ``run(...)`` is the entry point for other commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import bindparam, func, select, text

from api.app import create_app
from api.runtime import tune_gc
from bench import baseline_endpoint
from bench import search as bench_search
from config.settings import Settings, load_settings
from db.engine import Database
from db.migrate import refresh_statistics, upgrade
from db.models import (
    ActorKind,
    ExportFormat,
    ExportLayout,
    Order,
    OrderLine,
    SupplierOrder,
    SupplierOrderStatus,
)
from demo.generator import seed_demo
from domain import exports
from domain.actors import Actor, Scope
from domain.orders import LineInput, OrderInput, SupplierOrderInput, import_orders
from schema.ids import to_global_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "bench-reads"

W1 = """
query W1($first: Int!) {
  orders(first: $first, sortKey: CREATED_AT, reverse: true) {
    nodes {
      id number createdAt updatedAt status financialStatus
      customer { name email }
      total { amount currencyCode }
      lines { title sku quantity unitPrice { amount } }
      supplierOrders {
        aliexpressOrderId status
        supplier { name }
        packages { trackingNumber carrier events { time status location } }
        cancellationRequests { status reason respondBy }
      }
    }
  }
}
"""

W2 = """
query W2($id: ID!) {
  order(id: $id) {
    id number createdAt updatedAt cancelledAt status financialStatus tags note
    customer { name email phone }
    shippingAddress { name address1 city countryCode }
    subtotal { amount currencyCode } shipping { amount } total { amount }
    refundableAmount { amount } supplierCost { amount } margin { amount }
    refundDue { amount } totalRefunded { amount } supplierRefunds { amount }
    lines { id title sku quantity unitPrice { amount } }
    supplierOrders {
      id aliexpressOrderId status endReason paidAt shippedAt cost { amount }
      canRequestCancellation canOpenDispute
      supplier { name aliexpressStoreId }
      packages { trackingNumber carrier trackingStatus events { time status location description } }
      cancellationRequests { status reason respondBy messages { author body createdAt } }
    }
    events { type actorKind actorName message createdAt }
    disputes {
      status reason kind requestedAmount { amount }
      proposal { action amount { amount } } resolution { outcome action }
      messages { author body attachments { contentType size } }
    }
    returns { status note lines { quantity reason orderLine { title } } receipts { quantity disposition } }
    refunds { amount { amount } note lines { quantity amount { amount } } }
  }
}
"""

# The bench measures reads, not the edge's budgets: cost limits are lifted, the worker stays out.
SERVER_ENV = {
    "DROPDESK_SECRET_KEY": SECRET,
    "DROPDESK_RUN_WORKER_IN_SERVER": "0",
    "DROPDESK_LOG_LEVEL": "WARNING",
    "DROPDESK_MAX_QUERY_COST": "1000000",
    "DROPDESK_COST_BUCKET_SIZE": "100000000",
    "DROPDESK_COST_RESTORE_RATE": "100000000",
}


@contextlib.contextmanager
def lifted_cost_limits() -> Iterator[None]:
    """SERVER_ENV's cost limits in this process's environment, for code that reads its settings from there."""
    saved = {name: os.environ.get(name) for name in SERVER_ENV}
    os.environ.update({name: value for name, value in SERVER_ENV.items() if "COST" in name})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bench_settings(database_url: str) -> Settings:
    """The in-process twin of SERVER_ENV."""
    return replace(
        load_settings(),
        database_url=database_url,
        secret_key=SECRET,
        run_worker_in_server=False,
        max_query_cost=1_000_000,
        cost_bucket_size=100_000_000,
        cost_restore_rate=100_000_000,
    )


@dataclass
class Figures:
    label: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int = 0
    cpu_seconds: float | None = None

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else 0.0

    def row(self) -> str:
        return (
            f"  {self.label:<34} {self.throughput:9.1f} req/s   p50 {self.percentile(0.5):8.1f} ms"
            f"   p99 {self.percentile(0.99):8.1f} ms   errors {self.errors}"
            + (f"   CPU {self.cpu_seconds / self.requests * 1000:6.1f} ms/req" if self.cpu_seconds else "")
        )


@dataclass
class Seeded:
    database_url: str
    orders: int
    token: str
    shop_id: int
    w2_order: str
    supplier_token: str
    supplier_id: int


async def seed(database_url: str, orders: int) -> Seeded:
    database = Database(database_url)
    try:
        if database.dialect == "postgresql":
            # The writes (W4, W6) change what they touch: every run starts from an empty database.
            async with database.engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        await upgrade(database.engine)
        started = time.perf_counter()
        result = await seed_demo(database, orders=orders, secret_key=SECRET, now=NOW)
        # As ``dropdesk seed`` does: statistics (and the visibility map) for the rows just loaded.
        await refresh_statistics(database.engine, vacuum=True)
        print(
            f"seeded {result.orders:,} orders in {time.perf_counter() - started:.1f} s (statistics included)",
            file=sys.stderr,
        )
        shop_name, token = next(iter(result.merchant_tokens.items()))
        shop_id = result.shop_ids[shop_name]
        async with database.engine.connect() as connection:
            supplier_names = {
                supplier_id: name
                for name, supplier_id in result.supplier_ids.items()
                if name in result.supplier_tokens
            }
            supplier_id = (
                await connection.execute(
                    text(
                        "SELECT id FROM suppliers WHERE shop_id = :shop AND id IN :ids ORDER BY id LIMIT 1"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"shop": shop_id, "ids": list(supplier_names)},
                )
            ).scalar_one()
            # The order with the most after-sales history: disputes, returns and refunds where there are.
            order_id = (
                await connection.execute(
                    text(
                        "SELECT o.id FROM orders o WHERE o.shop_id = :shop ORDER BY"
                        " (SELECT count(*) FROM disputes d WHERE d.order_id = o.id)"
                        " + (SELECT count(*) FROM returns r WHERE r.order_id = o.id)"
                        " + (SELECT count(*) FROM refunds f WHERE f.order_id = o.id) DESC, o.id LIMIT 1"
                    ),
                    {"shop": shop_id},
                )
            ).scalar_one()
    finally:
        await database.dispose()
    return Seeded(
        database_url,
        orders,
        token,
        shop_id,
        f"gid://dropdesk/Order/{order_id}",
        result.supplier_tokens[supplier_names[supplier_id]],
        supplier_id,
    )


def canonical(body: bytes) -> bytes:
    """The answer's ``data`` re-serialised compactly with its key order kept (the server adds a cost report
    under ``extensions``, which B1 has no reason to compute)."""
    return orjson.dumps({"data": json.loads(body)["data"]})


def compare(server: bytes, baseline: bytes) -> str:
    if server == baseline:
        return "byte for byte"
    if canonical(server) == baseline:
        return "byte for byte on `data` re-serialised compactly (same keys, same order, same values)"
    mine = canonical(server)
    at = next((i for i, (a, b) in enumerate(zip(mine, baseline, strict=False)) if a != b), len(mine))
    raise SystemExit(
        f"B1 and the server disagree at byte {at}:\n"
        f"  server {mine[max(0, at - 200) : at + 100]!r}\n  B1     {baseline[max(0, at - 200) : at + 100]!r}"
    )


Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def graphql_request(query: str, variables: dict[str, Any], token: str) -> Request:
    payload = {"query": query, "variables": variables}
    headers = {"Authorization": f"Bearer {token}"}

    def send(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return client.post("/graphql", json=payload, headers=headers)

    return send


def baseline_request(first: int) -> Request:
    def send(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return client.get("/w1", params={"first": first})

    return send


def ok(response: httpx.Response) -> bool:
    """200, no GraphQL errors, and no userErrors in any mutation payload."""
    if response.status_code != 200:
        return False
    body = orjson.loads(response.content)
    data = body.get("data")
    if "errors" in body or data is None:
        return False
    return not any(isinstance(value, dict) and value.get("userErrors") for value in data.values())


async def sequential(label: str, client: httpx.AsyncClient, send: Request, rounds: int) -> Figures:
    await send(client)  # warm: imports, statement caches, pools
    latencies, errors = [], 0
    # CPU time of this process (all its threads, aiosqlite's included): steadier than wall time on a busy host.
    cpu_started = time.process_time()
    started = time.perf_counter()
    for _ in range(rounds):
        began = time.perf_counter()
        response = await send(client)
        latencies.append(time.perf_counter() - began)
        errors += not ok(response)
    elapsed = time.perf_counter() - started
    return Figures(label, rounds, elapsed, latencies, errors, time.process_time() - cpu_started)


async def loaded(
    label: str,
    base_url: str,
    send: Request,
    seconds: float,
    concurrency: int,
    given: httpx.AsyncClient | None = None,
) -> Figures:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    own = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) if given is None else None
    async with own or contextlib.nullcontext(given) as client:
        assert client is not None
        await send(client)
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                try:
                    response = await send(client)
                    errors += not ok(response)
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        return Figures(label, len(latencies), time.perf_counter() - started, latencies, errors)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Command = Callable[[int], list[str]]


def uvicorn_command(factory: str, workers: int = 1) -> Command:
    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip

    return command


def dropdesk_serve_command(workers: int) -> Command:
    """The real ``dropdesk serve`` (migrations already applied, no demo data: the bench seeded its own)."""

    def command(port: int) -> list[str]:
        dropdesk = str(Path(sys.executable).parent / "dropdesk")
        return [
            dropdesk,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-demo",
        ]

    return command


async def serve(command: Command, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(command(port), env={**os.environ, **env})
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(600):
            try:
                await client.get("/")
                return process, base_url
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    process.kill()
    raise SystemExit(f"{command(port)} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs"


# --- W3: searches ------------------------------------------------------------------------------------------


async def search_queries(database_url: str) -> list[str]:
    """The four kinds of search W3 rotates through, with values taken from the seeded data."""
    database = Database(database_url)
    try:
        sample = await bench_search._sample(database)
    finally:
        await database.dispose()
    return [
        f"supplier_status:wait_seller_send_goods created_at:>=2025-12-01 sku:{sample.sku}",
        sample.surname,
        "has:open_cancellation",
        "has:open_dispute OR financial_status:voided",
    ]


def rotating_request(query: str, variable_sets: list[dict[str, Any]], token: str) -> Request:
    """One request per call, each with the next set of variables in turn."""
    sends = itertools.cycle([graphql_request(query, variables, token) for variables in variable_sets])

    def send(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return next(sends)(client)

    return send


# --- W4 and W6: writes over HTTP ---------------------------------------------------------------------------

CANCEL = """mutation($input: CancellationRequestCreateInput!) { cancellationRequestCreate(input: $input) {
  cancellationRequest { id status } userErrors { field message code } } }"""
DECIDE = """mutation($input: CancellationRequestDecideInput!) { cancellationRequestDecide(input: $input) {
  cancellationRequest { id status } userErrors { field message code } } }"""
TAG = """mutation($input: OrderTagsInput!) { orderTagsAdd(input: $input) {
  order { id tags } userErrors { field message code } } }"""
NOTE = """mutation($input: OrderNoteAddInput!) { orderNoteAdd(input: $input) {
  note { id } userErrors { field message code } } }"""


@dataclass
class Pool:
    """Orders imported for the writes, each with one supplier order awaiting shipment (so cancellable)."""

    supplier_orders: list[str]
    orders: list[str]


async def import_pool(seeded: Seeded, count: int) -> Pool:
    database = Database(seeded.database_url)
    actor = Actor(kind=ActorKind.MERCHANT, name="bench", shop_id=seeded.shop_id, scopes=frozenset(Scope.ALL))
    pool = Pool([], [])
    try:
        for start in range(0, count, 100):
            batch = []
            for number in range(start, min(count, start + 100)):
                ali = f"8{number:012d}"
                line = LineInput(
                    title="Bench item", quantity=1, unit_price=Decimal("25.00"), sku=f"BENCH-{number}",
                    supplier_id=seeded.supplier_id, aliexpress_order_id=ali,
                )  # fmt: skip
                supplier_order = SupplierOrderInput(
                    aliexpress_order_id=ali,
                    cost=Decimal("9.00"),
                    status=SupplierOrderStatus.WAIT_SELLER_SEND_GOODS,
                )
                batch.append(
                    OrderInput(
                        number=f"#BENCH{number}",
                        currency="USD",
                        customer_name=f"Bench Customer {number}",
                        lines=[line],
                        supplier_orders=[supplier_order],
                    )
                )
            async with database.write() as session:
                ids = [result.order.id for result in await import_orders(session, actor, batch)]
                supplier_orders = await session.scalars(
                    select(SupplierOrder.id).where(SupplierOrder.order_id.in_(ids)).order_by(SupplierOrder.id)
                )
                pool.orders.extend(to_global_id("Order", order_id) for order_id in ids)
                pool.supplier_orders.extend(to_global_id("SupplierOrder", so) for so in supplier_orders)
    finally:
        await database.dispose()
    return pool


@dataclass
class Tally:
    """Latencies and failures per kind of request, for loads that mix several."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)

    async def call(self, kind: str, client: httpx.AsyncClient, send: Request) -> dict[str, Any] | None:
        began = time.perf_counter()
        try:
            response = await send(client)
        except httpx.HTTPError as error:
            self.fail(kind, repr(error))
            return None
        self.latencies[kind].append(time.perf_counter() - began)
        if not ok(response):
            self.fail(kind, f"HTTP {response.status_code} {response.text[:300]}")
            return None
        data: dict[str, Any] = orjson.loads(response.content)["data"]
        return data

    def fail(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {what}")

    def print(self, seconds: float) -> None:
        every = [value for values in self.latencies.values() for value in values]
        for kind, values in [*sorted(self.latencies.items()), ("all", every)]:
            errors = sum(self.errors.values()) if kind == "all" else self.errors[kind]
            print(Figures(f"  {kind}", len(values), seconds, values, errors).row())
        for example in self.examples:
            print(f"    {example}")


async def cancellation_flow(
    client: httpx.AsyncClient, tally: Tally, seeded: Seeded, supplier_order: str, approve: bool
) -> None:
    """The merchant asks the supplier to cancel; the supplier approves or rejects."""
    create = {"input": {"supplierOrderId": supplier_order, "reason": "CUSTOMER_CANCELLED"}}
    data = await tally.call("cancel: create", client, graphql_request(CANCEL, create, seeded.token))
    if data is None:
        return
    request_id = data["cancellationRequestCreate"]["cancellationRequest"]["id"]
    decide = {"input": {"id": request_id, "decision": "APPROVE" if approve else "REJECT"}}
    if not approve:
        decide["input"]["message"] = "Already packed, sorry."
    await tally.call("cancel: decide", client, graphql_request(DECIDE, decide, seeded.supplier_token))


async def w4_cancellations(base_url: str, seeded: Seeded, pool: Pool, flows: int, concurrency: int) -> None:
    todo = [pool.supplier_orders.pop() for _ in range(min(flows, len(pool.supplier_orders)))]
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def user() -> None:
            while todo:
                supplier_order = todo.pop()
                await cancellation_flow(client, tally, seeded, supplier_order, approve=len(todo) % 2 == 0)

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    done = len(tally.latencies["cancel: decide"])
    print(
        f"\nW4 cancellation flows (merchant creates, supplier approves or rejects), concurrency {concurrency}:"
        f" {done} flows in {elapsed:.1f} s, {done / elapsed:.1f} flows/s; {load()}"
    )
    tally.print(elapsed)


async def w6_mixed(
    base_url: str, seeded: Seeded, pool: Pool, reads: dict[str, Request], seconds: float, concurrency: int
) -> None:
    """Reads and writes at once: each user draws its next request (reads 60 %, writes 40 %)."""
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        deadline = time.perf_counter() + seconds

        async def user(index: int) -> None:
            rng = random.Random(index)
            read_kinds = list(reads)
            while time.perf_counter() < deadline:
                roll = rng.random()
                order = rng.choice(pool.orders)
                if roll < 0.6:
                    kind = read_kinds[int(roll / 0.6 * len(read_kinds))]
                    await tally.call(kind, client, reads[kind])
                elif roll < 0.75:
                    tags = {"input": {"id": order, "tags": [f"bench-{rng.randrange(20)}"]}}
                    await tally.call("orderTagsAdd", client, graphql_request(TAG, tags, seeded.token))
                elif roll < 0.9 or not pool.supplier_orders:
                    note = {"input": {"orderId": order, "body": f"Bench note {rng.randrange(10**6)}"}}
                    await tally.call("orderNoteAdd", client, graphql_request(NOTE, note, seeded.token))
                else:
                    supplier_order = pool.supplier_orders.pop()
                    await cancellation_flow(client, tally, seeded, supplier_order, approve=roll < 0.95)

        started = time.perf_counter()
        await asyncio.gather(*(user(index) for index in range(concurrency)))
        elapsed = time.perf_counter() - started
    total = sum(len(values) for values in tally.latencies.values())
    print(
        f"\nW6 mixed reads and writes, concurrency {concurrency}, {seconds:.0f} s: {total} requests,"
        f" {total / elapsed:.1f} req/s, errors {sum(tally.errors.values())}; {load()}"
    )
    tally.print(elapsed)


# --- W5: export ---------------------------------------------------------------------------------------------


async def export_query(database: Database, shop_id: int, rows: int) -> str | None:
    """A ``number:<=`` query selecting about ``rows`` line items of the shop (None: all of them, fewer)."""
    async with database.read() as session:
        counts = await session.execute(
            select(Order.number_value, func.count(OrderLine.id))
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(Order.shop_id == shop_id)
            .group_by(Order.number_value)
            .order_by(Order.number_value)
        )
        running = 0
        for number_value, count in counts.all():
            running += count
            if running >= rows:
                return f"number:<={number_value}"
    return None


async def w5_export(seeded: Seeded, rows: int) -> None:
    """The export job's code path (``domain.exports.export_to_file``), in this process, as bench/exports.py runs it."""
    database = Database(seeded.database_url)
    try:
        query = await export_query(database, seeded.shop_id, rows)
        print(f"\nW5 export of up to {rows:,} line items ({query or 'the whole shop'}), in-process; {load()}")
        with tempfile.TemporaryDirectory(prefix="dropdesk-bench-export-") as tmp:
            for fmt in (ExportFormat.CSV, ExportFormat.XLSX):
                started, cpu = time.perf_counter(), time.process_time()
                result = await exports.export_to_file(
                    database,
                    shop_id=seeded.shop_id,
                    format=fmt,
                    layout=ExportLayout.LINE_ITEM,
                    query=query,
                    path=Path(tmp) / f"export.{fmt.value.lower()}",
                    now=NOW,
                )
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                print(
                    f"  {fmt.value:<5} {result.rows:>8,} rows in {seconds:6.2f} s: {result.rows / seconds:9,.0f} rows/s,"
                    f" {result.rows / cpu:9,.0f} rows per CPU second"
                )
    finally:
        await database.dispose()


# --- the runs -----------------------------------------------------------------------------------------------


def server_env(seeded: Seeded) -> dict[str, str]:
    return {
        **SERVER_ENV,
        "DROPDESK_DATABASE_URL": seeded.database_url,
        "DROPDESK_BASELINE_SHOP": str(seeded.shop_id),
    }


async def measure(
    seeded: Seeded,
    *,
    rounds: int,
    seconds: float,
    levels: list[int],
    http: bool,
    flows: int,
    gc_tuning: bool = True,
) -> float | None:
    """Prints the read tables (W1, W2, W3 against B1) and, over HTTP, W4 and W6; returns the W1/B1 throughput
    ratio over HTTP for first: 100 at the first concurrency level (in-process if no HTTP)."""
    settings = bench_settings(seeded.database_url)
    database = Database(seeded.database_url)
    app = create_app(settings, database)
    if gc_tuning:
        tune_gc()  # as ``dropdesk serve`` does once its app is built
    baseline = baseline_endpoint.create_app(seeded.database_url, seeded.shop_id)
    workloads: list[tuple[str, Request, Request | None]] = [
        (f"W1 first: {first}", graphql_request(W1, {"first": first}, seeded.token), baseline_request(first))
        for first in (100, 10)
    ]
    workloads.append(
        ("W2 one order, everything", graphql_request(W2, {"id": seeded.w2_order}, seeded.token), None)
    )
    searches = [{"query": query} for query in await search_queries(seeded.database_url)]
    workloads.append(
        ("W3 searches, in turn", rotating_request(bench_search.SEARCH, searches, seeded.token), None)
    )
    ratios: dict[str, float] = {}
    print(f"\nin-process, one request at a time, {rounds} rounds after a warm-up; {load()}")
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=baseline), base_url="http://b1") as b1_client,
    ):
        for label, send, send_b1 in workloads:
            response = await send(client)
            if not ok(response):
                raise SystemExit(f"{label} failed: {response.text[:400]}")
            figures = await sequential(label, client, send, rounds)
            print(figures.row())
            if send_b1 is not None:
                how = compare(response.content, (await send_b1(b1_client)).content)
                b1 = await sequential(f"B1 {label[3:]}", b1_client, send_b1, rounds)
                print(b1.row())
                ratios[f"in-process {label}"] = figures.throughput / b1.throughput
                print(
                    f"  W1/B1 in-process ({label[3:]}): {ratios[f'in-process {label}']:.3f}  (answers equal {how})"
                )
    await database.dispose()
    if not http:
        return ratios["in-process W1 first: 100"]
    pool = await import_pool(seeded, 2 * flows)
    env = server_env(seeded)
    server_figures: dict[tuple[str, int], Figures] = {}
    server, server_url = await serve(uvicorn_command("api.app:create_served_app"), env)
    try:
        for level in levels:
            print(
                f"\nover HTTP (uvicorn, 1 worker, loopback), concurrency {level}, {seconds:.0f} s each; {load()}"
            )
            for label, send, _ in workloads:
                figures = await loaded(label, server_url, send, seconds, level)
                server_figures[(label, level)] = figures
                print(figures.row())
        await w4_cancellations(server_url, seeded, pool, flows, levels[0])
        reads = {label: send for label, send, _ in workloads}
        await w6_mixed(server_url, seeded, pool, reads, seconds, levels[0])
    finally:
        stop(server)
    b1_server, b1_url = await serve(uvicorn_command("bench.baseline_endpoint:create_app"), env)
    try:
        for level in levels:
            print(f"\nB1 over HTTP (uvicorn, 1 worker), concurrency {level}; {load()}")
            for label, _, send_b1 in workloads:
                if send_b1 is None:
                    continue
                b1 = await loaded(f"B1 {label[3:]}", b1_url, send_b1, seconds, level)
                print(server_figures[(label, level)].row())
                print(b1.row())
                ratio = server_figures[(label, level)].throughput / b1.throughput
                ratios[f"http {label} at {level}"] = ratio
                print(f"  W1/B1 over HTTP ({label[3:]}, concurrency {level}): {ratio:.3f}")
    finally:
        stop(b1_server)
    return ratios[f"http W1 first: 100 at {levels[0]}"]


async def serve_load(seeded: Seeded, workers: int, levels: list[int], seconds: float) -> None:
    """W1 (first: 100) and W2 against the real ``dropdesk serve --workers N``, then B1 with as many uvicorn
    workers, at each concurrency level."""
    env = server_env(seeded)
    workloads = [
        ("W1 first: 100", graphql_request(W1, {"first": 100}, seeded.token)),
        ("W2 one order, everything", graphql_request(W2, {"id": seeded.w2_order}, seeded.token)),
    ]
    figures: list[Figures] = []
    server, url = await serve(dropdesk_serve_command(workers), env)
    try:
        for label, send in workloads:
            for level in levels:
                figures.append(await loaded(f"{label}, concurrency {level}", url, send, seconds, level))
                print(figures[-1].row() + f"   ({load()})", flush=True)
    finally:
        stop(server)
    b1_server, b1_url = await serve(uvicorn_command("bench.baseline_endpoint:create_app", workers), env)
    try:
        for level in levels:
            b1 = await loaded(
                f"B1 first: 100, concurrency {level}", b1_url, baseline_request(100), seconds, level
            )
            figures.append(b1)
            print(b1.row() + f"   ({load()})", flush=True)
    finally:
        stop(b1_server)
    print(
        f"\n`dropdesk serve --workers {workers}` (B1: uvicorn --workers {workers}), {seconds:.0f} s per row"
    )
    print("| workload | concurrency | req/s | p50 ms | p99 ms | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for figure in figures:
        label, shown = figure.label.rsplit(", concurrency ", 1)
        print(
            f"| {label} | {shown} | {figure.throughput:.1f} | {figure.percentile(0.5):.0f} |"
            f" {figure.percentile(0.99):.0f} | {figure.errors} |"
        )
    w1 = {figure.label.rsplit(" ", 1)[1]: figure for figure in figures if figure.label.startswith("W1")}
    b1s = {figure.label.rsplit(" ", 1)[1]: figure for figure in figures if figure.label.startswith("B1")}
    for shown, w1_figure in w1.items():
        print(f"W1/B1 throughput at concurrency {shown}: {w1_figure.throughput / b1s[shown].throughput:.2f}")


async def loop_w1(seeded: Seeded, seconds: float, first: int) -> None:
    """W1 in-process, over and over, for a profiler to sample (``py-spy record -- ...``)."""
    settings = bench_settings(seeded.database_url)
    database = Database(seeded.database_url)
    app = create_app(settings, database)
    tune_gc()
    send = graphql_request(W1, {"first": first}, seeded.token)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        figures = await loaded(f"W1 first: {first} (profiled)", "", send, seconds, 1, client)
    print(figures.row())
    await database.dispose()


async def run(
    orders: int = 100_000,
    database_url: str | None = None,
    *,
    rounds: int = 30,
    seconds: float = 10.0,
    levels: list[int] | None = None,
    http: bool = True,
    gc_tuning: bool = True,
    profile_seconds: float = 0,
    profile_first: int = 100,
    repeat: int = 15,
    flows: int = 200,
    export_rows: int = 100_000,
    serve_workers: int = 0,
) -> float | None:
    """Seeds, runs every workload (or only the ``dropdesk serve`` load when ``serve_workers``), prints the
    tables; returns the W1/B1 throughput ratio."""
    with tempfile.TemporaryDirectory(prefix="dropdesk-bench-reads-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'reads.sqlite3'}"
        seeded = await seed(url, orders)
        if profile_seconds:
            await loop_w1(seeded, profile_seconds, profile_first)
            return None
        if serve_workers:
            await serve_load(seeded, serve_workers, levels or [1, 8, 32], seconds)
            return None
        ratio = await measure(
            seeded,
            rounds=rounds,
            seconds=seconds,
            levels=levels or [8],
            http=http,
            flows=flows,
            gc_tuning=gc_tuning,
        )
        print(f"\nW3 search latency, every form (bench/search.py); {load()}")
        # bench/search.py builds its app from the environment's settings; its 500-odd requests in a row would
        # exhaust the default cost bucket, so the limits are lifted as for the other workloads.
        with lifted_cost_limits():
            await bench_search.run(url, orders, repeat)
        await w5_export(seeded, export_rows)
    if ratio is not None:
        print(f"\nW1/B1 throughput ratio: {ratio:.2f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=100_000, help="orders to seed (default 100,000)")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--rounds", type=int, default=30, help="in-process requests per workload")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per workload over HTTP")
    parser.add_argument(
        "--concurrency",
        default=None,
        help="concurrency levels over HTTP, e.g. 1,8,32 (default 8; 1,8,32 with --serve-workers)",
    )
    parser.add_argument("--repeat", type=int, default=15, help="W3: timed runs per search form")
    parser.add_argument("--flows", type=int, default=200, help="W4: cancellation flows")
    parser.add_argument("--export-rows", type=int, default=100_000, help="W5: line items exported")
    parser.add_argument(
        "--serve-workers",
        type=int,
        default=0,
        help="only load W1 and W2 against `dropdesk serve --workers N` (and B1 with N workers)",
    )
    parser.add_argument("--skip-http", action="store_true", help="in-process figures only")
    parser.add_argument("--no-gc-tuning", action="store_true", help="in-process: keep the default collector")
    parser.add_argument(
        "--profile-loop",
        type=float,
        default=0,
        help="only run W1 in-process for this many seconds (for py-spy)",
    )
    parser.add_argument(
        "--profile-first", type=int, default=100, help="the page size W1 runs with under --profile-loop"
    )
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")] if args.concurrency else None
    asyncio.run(
        run(
            args.orders,
            args.database_url,
            rounds=args.rounds,
            seconds=args.seconds,
            levels=levels,
            http=not args.skip_http,
            gc_tuning=not args.no_gc_tuning,
            profile_seconds=args.profile_loop,
            profile_first=args.profile_first,
            repeat=args.repeat,
            flows=args.flows,
            export_rows=args.export_rows,
            serve_workers=args.serve_workers,
        )
    )


if __name__ == "__main__":
    main()
