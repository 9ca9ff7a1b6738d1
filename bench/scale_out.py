"""Several processes on one PostgreSQL: two API servers, two workers, mixed traffic for a minute.

Starts two `dropdesk serve` processes (their embedded workers off) and two `dropdesk worker` processes against
the given PostgreSQL database, then runs client tasks that spread their requests over both servers the way a
load balancer would: reads of the order list, searches, order imports, supplier shipments with tracking,
cancellation requests and order exports. A webhook subscription sends orders/created,
cancellation_requests/created, cancellation_requests/decided and exports/finished to a receiver in this
process. A clock task plays the passing of time: twice a second it moves the deadline of every pending
cancellation request (and its job) to the present and wakes the workers, so that one of them approves each
request while the traffic goes on, as it would 48 hours later. At the end it prints requests per second and
p50/p99 latency per kind, and checks that no request failed (HTTP status other than 200, GraphQL errors,
userErrors on requests that the rules allow), that every deadline, export and delivery job ran exactly once,
that every cancellation request ended AUTO_APPROVED, every export SUCCEEDED, and that the receiver got exactly
one delivery per expected event (topic and object), none twice.

    python3 run.py bench --scale-out --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/NAME \
        [--seconds 60] [--clients 16]

The database is emptied first (DROP SCHEMA public CASCADE): give it a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

import domain.subdomains  # noqa: F401  (registers job handlers, so the job table is on the metadata)
from db.engine import Database
from db.jobs import NOTIFY_CHANNEL, Job, JobStatus
from db.migrate import upgrade
from db.models import (
    CancellationRequest,
    CancellationStatus,
    DeliveryStatus,
    Export,
    ExportStatus,
    Shop,
    Supplier,
    TokenKind,
    WebhookDelivery,
)
from domain.actors import Scope
from domain.cancellations import AUTO_APPROVE_KIND
from domain.exports import BUILD_KIND
from domain.tokens import issue_token
from domain.webhooks import DELIVER_KIND
from schema.ids import to_global_id
from tests.webhook_receiver import Receiver, running_receiver

ROOT = Path(__file__).resolve().parent.parent
DROPDESK = Path(sys.executable).parent / "dropdesk"

READ = """{ orders(first: 20, sortKey: UPDATED_AT, reverse: true) {
  nodes { number total { amount } supplierOrders { status packages { trackingNumber } } } } }"""
SEARCH = """query($q: String) { ordersCount(query: $q) orders(first: 20, query: $q) { nodes { number } } }"""
IMPORT = """mutation($input: OrdersImportInput!) { ordersImport(input: $input) {
  orders { id supplierOrders { id } } userErrors { field message code } } }"""
SHIP = """mutation($input: SupplierOrderUpdateInput!) { supplierOrderUpdate(input: $input) {
  supplierOrder { status } userErrors { field message code } } }"""
CANCEL = """mutation($input: CancellationRequestCreateInput!) { cancellationRequestCreate(input: $input) {
  cancellationRequest { id status } userErrors { field message code } } }"""
EXPORT = """mutation($input: OrdersExportInput!) { ordersExport(input: $input) {
  export { id status } userErrors { field message code } } }"""
SUBSCRIBE = """mutation($input: WebhookSubscriptionCreateInput!) { webhookSubscriptionCreate(input: $input) {
  webhookSubscription { id } userErrors { field message code } } }"""
TOPICS = (
    "orders/created",
    "cancellation_requests/created",
    "cancellation_requests/decided",
    "exports/finished",
)
# The jobs whose runs are counted: each must run exactly once.
COUNTED_KINDS = (AUTO_APPROVE_KIND, BUILD_KIND, DELIVER_KIND)
SEARCHES = ("ana", "status:open", "tag:vip", "sku:BENCH-1*", "tracking:LPB*", "email:@bench.example",
            "supplier_status:wait_seller_send_goods total:>20", "has:open_cancellation OR tag:gift")  # fmt: skip


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    cancellations: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    # (topic, object id) of every webhook delivery the traffic should cause.
    expected_deliveries: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Setup:
    merchant: str
    supplier: str
    supplier_gid: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _prepare(database: Database) -> Setup:
    async with database.engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await upgrade(database.engine)
    async with database.write() as session:
        shop = Shop(name="Scale-out shop", currency="USD")
        session.add(shop)
        await session.flush()
        shop.shop_id = shop.id
        supplier = Supplier(
            shop_id=shop.id,
            name="Bench Supplier Store",
            aliexpress_store_id="77001",
            webhook_secret="whsec_x",
        )
        session.add(supplier)
        await session.flush()
        merchant = issue_token(
            session, kind=TokenKind.MERCHANT, name="bench", shop_id=shop.id, scopes=Scope.ALL
        )
        supplier_token = issue_token(
            session, kind=TokenKind.SUPPLIER, name="bench supplier", supplier=supplier
        )
        return Setup(merchant.raw, supplier_token.raw, to_global_id("Supplier", supplier.id))


def _order(setup: Setup, number: int) -> dict[str, Any]:
    ali = f"9{number:012d}"
    return {
        "number": f"#B{number}",
        "currencyCode": "USD",
        "customer": {"name": f"Ana Bench {number}", "email": f"c{number}@bench.example"},
        "tags": ["gift"] if number % 3 == 0 else ["vip"],
        "lines": [
            {"title": "Bench item", "quantity": 1, "unitPrice": "25.00", "sku": f"BENCH-{number}",
             "supplierId": setup.supplier_gid, "aliexpressOrderId": ali},
        ],
        "supplierOrders": [{"aliexpressOrderId": ali, "cost": "9.00", "status": "WAIT_SELLER_SEND_GOODS"}],
    }  # fmt: skip


class Client:
    def __init__(self, http: httpx.AsyncClient, ports: list[int], setup: Setup, tally: Tally) -> None:
        self.http, self.ports, self.setup, self.tally = http, ports, setup, tally
        self.turn = 0

    async def call(
        self, kind: str, token: str, query: str, variables: dict[str, Any]
    ) -> dict[str, Any] | None:
        self.turn += 1
        port = self.ports[self.turn % len(self.ports)]  # round robin, as a load balancer would
        started = time.perf_counter()
        try:
            response = await self.http.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as error:
            self.tally.errors.append(f"{kind}: {error!r}")
            return None
        self.tally.latencies[kind].append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            self.tally.errors.append(f"{kind}: HTTP {response.status_code} {response.text[:200]}")
            return None
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            self.tally.errors.append(f"{kind}: {body['errors']}")
            return None
        data: dict[str, Any] = body["data"]
        payload = next(iter(data.values()))
        if isinstance(payload, dict) and payload.get("userErrors"):
            self.tally.errors.append(f"{kind}: {payload['userErrors']}")
            return None
        return data


async def _client(index: int, client: Client, deadline: float) -> None:
    rng = random.Random(index)
    serial = index * 1_000_000
    waiting: list[str] = []  # supplier orders of this client's imports, not yet shipped or cancelled
    setup = client.setup
    while time.perf_counter() < deadline:
        roll = rng.random()
        if roll < 0.35:
            await client.call("read", setup.merchant, READ, {})
        elif roll < 0.62:
            await client.call("search", setup.merchant, SEARCH, {"q": rng.choice(SEARCHES)})
        elif roll < 0.65:
            fmt = "XLSX" if roll < 0.63 else "CSV"
            data = await client.call(
                "export", setup.merchant, EXPORT, {"input": {"format": fmt, "query": rng.choice(SEARCHES)}}
            )
            if data:
                export_id = data["ordersExport"]["export"]["id"]
                client.tally.exports.append(export_id)
                client.tally.expected_deliveries.append(("exports/finished", export_id))
        elif roll < 0.80 or not waiting:
            serial += 1
            data = await client.call(
                "import", setup.merchant, IMPORT, {"input": {"orders": [_order(setup, serial)]}}
            )
            if data:
                order = data["ordersImport"]["orders"][0]
                client.tally.expected_deliveries.append(("orders/created", order["id"]))
                waiting.extend(so["id"] for so in order["supplierOrders"])
        elif roll < 0.90:
            so_id = waiting.pop(rng.randrange(len(waiting)))
            packages = [{"trackingNumber": f"LPB{serial}{rng.randrange(10**6)}", "carrier": "Cainiao"}]
            await client.call(
                "ship", setup.supplier, SHIP,
                {"input": {"id": so_id, "status": "WAIT_BUYER_ACCEPT_GOODS", "packages": packages}},
            )  # fmt: skip
        else:
            so_id = waiting.pop(rng.randrange(len(waiting)))
            data = await client.call(
                "cancel",
                setup.merchant,
                CANCEL,
                {"input": {"supplierOrderId": so_id, "reason": "CUSTOMER_CANCELLED"}},
            )
            if data:
                request_id = data["cancellationRequestCreate"]["cancellationRequest"]["id"]
                client.tally.cancellations.append(request_id)
                client.tally.expected_deliveries.append(("cancellation_requests/created", request_id))
                client.tally.expected_deliveries.append(("cancellation_requests/decided", request_id))


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(DROPDESK), *args], env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


async def _wait_ready(http: httpx.AsyncClient, port: int) -> None:
    for _ in range(300):
        try:
            if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"the API on port {port} did not become ready")


async def _pass_deadlines(database: Database, stop: asyncio.Event) -> None:
    """Every pending request's deadline (and its job) becomes now, as if the supplier's time had run out."""
    while not stop.is_set():
        async with database.write() as session:
            # One statement, so that a request committed meanwhile is either moved with its job or not at all.
            await session.execute(
                text(
                    "WITH due AS (UPDATE cancellation_requests SET respond_by = now() - interval '1 second' "
                    "WHERE status = 'PENDING' AND respond_by > now() RETURNING id) "
                    "UPDATE jobs SET run_at = now() WHERE status = 'QUEUED' "
                    "AND key IN (SELECT :kind || ':' || id FROM due)"
                ),
                {"kind": AUTO_APPROVE_KIND},
            )
            await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


@dataclass(frozen=True)
class JobRuns:
    jobs: int
    once: int
    again: int  # run more than once, or dead


async def _drain(database: Database, wait: float) -> None:
    """Until no counted job is queued or running (or ``wait`` seconds have passed)."""
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline:
        async with database.read() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.kind.in_(COUNTED_KINDS), Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
            )
        if not pending:
            return
        await asyncio.sleep(0.5)


async def _job_runs(database: Database) -> dict[str, JobRuns]:
    async with database.read() as session:
        jobs = (
            await session.execute(
                select(Job.kind, Job.status, Job.attempts).where(Job.kind.in_(COUNTED_KINDS))
            )
        ).all()
    runs = {}
    for kind in COUNTED_KINDS:
        mine = [(status, attempts) for job_kind, status, attempts in jobs if job_kind == kind]
        once = sum(1 for status, attempts in mine if status is JobStatus.DONE and attempts == 1)
        again = sum(1 for status, attempts in mine if attempts > 1 or status is JobStatus.DEAD)
        runs[kind] = JobRuns(len(mine), once, again)
    return runs


async def _outcomes(database: Database) -> tuple[int, int, int]:
    """(cancellation requests not AUTO_APPROVED, exports not SUCCEEDED, deliveries not SUCCEEDED)."""
    async with database.read() as session:
        not_approved = await session.scalar(
            select(func.count())
            .select_from(CancellationRequest)
            .where(CancellationRequest.status != CancellationStatus.AUTO_APPROVED)
        )
        not_exported = await session.scalar(
            select(func.count()).select_from(Export).where(Export.status != ExportStatus.SUCCEEDED)
        )
        not_delivered = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status != DeliveryStatus.SUCCEEDED)
        )
    return int(not_approved or 0), int(not_exported or 0), int(not_delivered or 0)


@dataclass(frozen=True)
class Deliveries:
    expected: int
    received: int
    missing: int
    unexpected: int
    duplicates: int  # the same webhook-id received more than once


async def _deliveries(receiver: Receiver, expected: list[tuple[str, str]], wait: float) -> Deliveries:
    """What the receiver got against what the traffic caused, once every expected event has arrived (or
    ``wait`` seconds have passed)."""
    deadline = time.perf_counter() + wait
    while len(receiver.received) < len(expected) and time.perf_counter() < deadline:
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)  # anything sent twice would arrive by now
    ids = Counter(received.headers["webhook-id"] for received in receiver.received)
    events: Counter[tuple[str, str]] = Counter()
    for received in receiver.received:
        body = json.loads(received.body)
        events[(body["type"], body["data"]["id"])] += 1
    wanted = Counter(expected)
    return Deliveries(
        expected=len(expected),
        received=len(receiver.received),
        missing=sum((wanted - events).values()),
        unexpected=sum((events - wanted).values()),
        duplicates=sum(count - 1 for count in ids.values()),
    )


async def _subscribe(http: httpx.AsyncClient, port: int, setup: Setup, receiver: Receiver) -> None:
    response = await http.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": SUBSCRIBE, "variables": {"input": {"url": f"{receiver.url}/hooks", "topics": TOPICS}}},
        headers={"Authorization": f"Bearer {setup.merchant}"},
    )
    payload = response.json().get("data", {}).get("webhookSubscriptionCreate") or {}
    if response.status_code != 200 or payload.get("userErrors") or not payload.get("webhookSubscription"):
        raise SystemExit(f"could not subscribe the receiver: {response.text[:400]}")


async def run(url: str, seconds: float, clients: int) -> int:
    if not url.startswith("postgresql"):
        raise SystemExit("the scale-out run needs PostgreSQL (--database-url postgresql+asyncpg://...)")
    database = Database(url)
    setup = await _prepare(database)
    logs = Path(tempfile.mkdtemp(prefix="dropdesk-scale-out-"))
    env = {
        **os.environ,
        "DROPDESK_DATABASE_URL": url,
        "DROPDESK_SECRET_KEY": "scale-out-bench",
        "DROPDESK_DATA_DIR": str(logs),  # export files, shared by both workers and both servers
        "DROPDESK_RUN_WORKER_IN_SERVER": "0",
        "DROPDESK_CANCELLATION_RESPONSE_HOURS": "1",
        "DROPDESK_WEBHOOK_ALLOW_PRIVATE_URLS": "1",  # the receiver is on loopback
        "DROPDESK_LOG_LEVEL": "WARNING",
    }
    ports = [_free_port(), _free_port()]
    processes = [
        _start(["serve", "--host", "127.0.0.1", "--port", str(port), "--no-demo"], env, logs / f"api{n}.log")
        for n, port in enumerate(ports)
    ] + [_start(["worker"], env, logs / f"worker{n}.log") for n in range(2)]
    tally = Tally()
    load_before = os.getloadavg()[0]
    try:
        # Idle connections expire on the client before uvicorn's 5 s keep-alive closes them on the server, as a
        # load balancer's upstream settings would: otherwise a request can race the server's close.
        limits = httpx.Limits(max_connections=clients * 2, keepalive_expiry=2.0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http, running_receiver() as receiver:
            for port in ports:
                await _wait_ready(http, port)
            await _subscribe(http, ports[0], setup, receiver)
            print(
                f"2 API processes (ports {ports[0]}, {ports[1]}), 2 workers, {clients} clients, {seconds:.0f} s;"
                f" webhooks to {receiver.url}"
            )
            started = time.perf_counter()
            deadline = started + seconds
            client = [Client(http, ports, setup, tally) for _ in range(clients)]
            stop = asyncio.Event()
            clock = asyncio.create_task(_pass_deadlines(database, stop))
            await asyncio.gather(*(_client(n, client[n], deadline) for n in range(clients)))
            elapsed = time.perf_counter() - started
            load_during = os.getloadavg()
            await _drain(database, wait=120)
            stop.set()
            await clock
            deliveries = await _deliveries(receiver, tally.expected_deliveries, wait=60)
            runs = await _job_runs(database)
            not_approved, not_exported, not_delivered = await _outcomes(database)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        await database.dispose()

    every = [value for values in tally.latencies.values() for value in values]
    print(f"\n{len(every):,} requests in {elapsed:.1f} s: {len(every) / elapsed:,.0f} requests/s")
    print(
        f"load average {load_during[0]:.1f} at the end of the traffic (5 min {load_during[1]:.1f};"
        f" {load_before:.1f} before it) on {os.cpu_count()} CPUs"
    )
    print(f"{'kind':<8} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, values in [*sorted(tally.latencies.items()), ("all", every)]:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"{kind:<8} {len(values):>7,} {statistics.median(values):8.1f} {p99:8.1f}")
    print(f"\nerrors: {len(tally.errors)}")
    for error in tally.errors[:10]:
        print(f"  {error[:300]}")
    for kind, what in ((AUTO_APPROVE_KIND, "deadline"), (BUILD_KIND, "export"), (DELIVER_KIND, "delivery")):
        run_ = runs[kind]
        print(
            f"{what} jobs ({kind}): {run_.jobs}, run exactly once: {run_.once}, run twice or dead: {run_.again}"
        )
    print(
        f"cancellation requests: {len(tally.cancellations)}, not AUTO_APPROVED: {not_approved}; "
        f"exports: {len(tally.exports)}, not SUCCEEDED: {not_exported}"
    )
    print(
        f"webhook deliveries: {deliveries.expected} expected (one per event and subscription),"
        f" {deliveries.received} received, {deliveries.missing} missing, {deliveries.unexpected} unexpected,"
        f" {deliveries.duplicates} received twice (same webhook-id); deliveries not SUCCEEDED: {not_delivered}"
    )
    print(f"server and worker logs: {logs}")
    ok = (
        not tally.errors
        and all(run_.again == 0 and run_.once == run_.jobs for run_ in runs.values())
        and runs[AUTO_APPROVE_KIND].jobs == len(tally.cancellations)
        and runs[BUILD_KIND].jobs == len(tally.exports)
        and runs[DELIVER_KIND].jobs == deliveries.expected
        and not_approved == not_exported == not_delivered == 0
        and deliveries.received == deliveries.expected
        and deliveries.missing == deliveries.unexpected == deliveries.duplicates == 0
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database of its own (emptied)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16, help="concurrent client tasks (default 16)")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.database_url, args.seconds, args.clients)))


if __name__ == "__main__":
    main()
