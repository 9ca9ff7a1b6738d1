"""Read latency and throughput of the dashboard page (W1) and one full order (W2) against a hand-written
endpoint (B1) that answers W1 with direct SQL and orjson, measured in the same run.

Seeds N demo orders into a fresh SQLite file (or into the PostgreSQL database given, which must be empty or
hold only an earlier bench seed), then measures in-process (ASGI app through httpx's ASGITransport, one
request at a time) and over HTTP (each app served by its own uvicorn process on loopback, one worker, the
load sent by this process at a fixed concurrency). B1's answer is compared with the server's first.

    .venv/bin/python -m bench.reads [--orders 10000] [--database-url postgresql+asyncpg://...]
        [--seconds 10] [--concurrency 8] [--rounds 30] [--skip-http]

Not a test; CI does not run it. ``run(...)`` is the entry point for other commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from api.app import create_app
from api.runtime import tune_gc
from bench import baseline_endpoint
from config.settings import Settings, load_settings
from db.engine import Database
from db.migrate import upgrade
from demo.generator import seed_demo

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
    token: str
    shop_id: int
    w2_order: str


async def seed(database_url: str, orders: int) -> Seeded:
    database = Database(database_url)
    try:
        await upgrade(database.engine)
        started = time.perf_counter()
        result = await seed_demo(database, orders=orders, secret_key=SECRET, now=NOW)
        print(f"seeded {result.orders:,} orders in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        shop_name, token = next(iter(result.merchant_tokens.items()))
        shop_id = result.shop_ids[shop_name]
        async with database.engine.connect() as connection:
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
    return Seeded(database_url, token, shop_id, f"gid://dropdesk/Order/{order_id}")


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
    if response.status_code != 200:
        return False
    body = orjson.loads(response.content)
    return "errors" not in body and body.get("data") is not None


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


async def serve(factory: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, **env},
    )
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(300):
            try:
                await client.get("/")
                return process, base_url
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    process.kill()
    raise SystemExit(f"{factory} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


async def measure(
    seeded: Seeded, *, rounds: int, seconds: float, concurrency: int, http: bool, gc_tuning: bool = True
) -> float | None:
    """Prints the table; returns the W1/B1 throughput ratio over HTTP for first: 100 (in-process if no HTTP)."""
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
    ratios: dict[str, float] = {}
    print(f"\nin-process, one request at a time, {rounds} rounds after a warm-up")
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
    env = {
        **SERVER_ENV,
        "DROPDESK_DATABASE_URL": seeded.database_url,
        "DROPDESK_BASELINE_SHOP": str(seeded.shop_id),
    }
    print(f"\nover HTTP (uvicorn, 1 worker, loopback), concurrency {concurrency}, {seconds:.0f} s each")
    server, server_url = await serve("api.app:create_served_app", env)
    try:
        server_figures = {
            label: await loaded(label, server_url, send, seconds, concurrency) for label, send, _ in workloads
        }
    finally:
        stop(server)
    b1_server, b1_url = await serve("bench.baseline_endpoint:create_app", env)
    try:
        for label, _, send_b1 in workloads:
            print(server_figures[label].row())
            if send_b1 is None:
                continue
            b1 = await loaded(f"B1 {label[3:]}", b1_url, send_b1, seconds, concurrency)
            print(b1.row())
            ratios[f"http {label}"] = server_figures[label].throughput / b1.throughput
            print(f"  W1/B1 over HTTP ({label[3:]}): {ratios[f'http {label}']:.3f}")
    finally:
        stop(b1_server)
    return ratios["http W1 first: 100"]


async def loop_w1(seeded: Seeded, seconds: float) -> None:
    """W1 first: 100 in-process, over and over, for a profiler to sample (``py-spy record -- ...``)."""
    settings = bench_settings(seeded.database_url)
    database = Database(seeded.database_url)
    app = create_app(settings, database)
    tune_gc()
    send = graphql_request(W1, {"first": 100}, seeded.token)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        figures = await loaded("W1 first: 100 (profiled)", "", send, seconds, 1, client)
    print(figures.row())
    await database.dispose()


async def run(
    orders: int = 10_000,
    database_url: str | None = None,
    *,
    rounds: int = 30,
    seconds: float = 10.0,
    concurrency: int = 8,
    http: bool = True,
    gc_tuning: bool = True,
    profile_seconds: float = 0,
) -> float | None:
    with tempfile.TemporaryDirectory(prefix="dropdesk-bench-reads-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'reads.sqlite3'}"
        seeded = await seed(url, orders)
        if profile_seconds:
            await loop_w1(seeded, profile_seconds)
            return None
        ratio = await measure(
            seeded, rounds=rounds, seconds=seconds, concurrency=concurrency, http=http, gc_tuning=gc_tuning
        )
    if ratio is not None:
        print(f"W1/B1 throughput ratio: {ratio:.2f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=10_000, help="orders to seed (default 10,000)")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--rounds", type=int, default=30, help="in-process requests per workload")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per workload over HTTP")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-http", action="store_true", help="in-process figures only")
    parser.add_argument("--no-gc-tuning", action="store_true", help="in-process: keep the default collector")
    parser.add_argument(
        "--profile-loop",
        type=float,
        default=0,
        help="only run W1 in-process for this many seconds (for py-spy)",
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            args.orders,
            args.database_url,
            rounds=args.rounds,
            seconds=args.seconds,
            concurrency=args.concurrency,
            http=not args.skip_http,
            gc_tuning=not args.no_gc_tuning,
            profile_seconds=args.profile_loop,
        )
    )


if __name__ == "__main__":
    main()
