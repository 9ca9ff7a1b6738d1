"""Outbound webhook benchmark: deliveries per second with one and two worker processes, and commit-to-delivery
latency, to a receiver on loopback that answers 200 at once.

    .venv/bin/python -m bench.webhooks                                   # SQLite in a temporary directory
    .venv/bin/python -m bench.webhooks --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/NAME --reset

``--reset`` drops and recreates the PostgreSQL database's public schema: give it a scratch database only.
Each delivery is a real one: rendered from the GraphQL schema, signed, POSTed over HTTP and recorded. Workers
are ``dropdesk worker`` processes (concurrency 4 each). Throughput: a burst of orders is committed (100 per
transaction, one ``orders/created`` delivery each), then the workers start; the rate is deliveries over the
time from the first arrival to the last. Latency: single orders committed one at a time, each timed
from the end of its commit to its arrival at the receiver. Ratios are against one worker, measured in the
same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

import domain.subdomains  # noqa: F401  (registers the reaction that writes deliveries)
from db.engine import Database
from db.migrate import upgrade
from db.models import ActorKind, Shop, Supplier, TokenKind
from domain.actors import Actor, Scope
from domain.orders import LineInput, OrderInput, SupplierOrderInput, import_orders
from domain.tokens import issue_token
from domain.webhooks import create_subscription
from tests.webhook_receiver import Receiver, running_receiver

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 4


async def prepare(database: Database, reset: bool) -> tuple[Actor, int]:
    if reset and database.dialect == "postgresql":
        async with database.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await upgrade(database.engine)
    async with database.write() as session:
        shop = Shop(name=f"Bench {time.time_ns()}", currency="USD", email="bench@example.com")
        session.add(shop)
        await session.flush()
        shop.shop_id = shop.id
        supplier = Supplier(
            shop_id=shop.id, name="Bench supplier", aliexpress_store_id="1", webhook_secret="x"
        )
        session.add(supplier)
        await session.flush()
        issue_token(session, kind=TokenKind.MERCHANT, name="bench", shop_id=shop.id, scopes=Scope.ALL)
    actor = Actor(kind=ActorKind.MERCHANT, name="bench", shop_id=shop.id, scopes=frozenset(Scope.ALL))
    return actor, supplier.id


def order(number: str, supplier_id: int) -> OrderInput:
    ali = f"{number.strip('#')}01"
    return OrderInput(
        number=number,
        currency="USD",
        customer_name="Bench Customer",
        customer_email="customer@example.com",
        lines=[
            LineInput(
                title="Phone case",
                quantity=1,
                unit_price=Decimal("12.50"),
                supplier_id=supplier_id,
                aliexpress_order_id=ali,
            )
        ],
        supplier_orders=[SupplierOrderInput(aliexpress_order_id=ali, cost=Decimal("4.10"))],
    )


def spawn(url: str, count: int, data_dir: str) -> list[subprocess.Popen[bytes]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DROPDESK_")}
    env.update(
        DROPDESK_DATABASE_URL=url,
        DROPDESK_DATA_DIR=data_dir,
        DROPDESK_WEBHOOK_ALLOW_PRIVATE_URLS="1",
        DROPDESK_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "api.cli", "worker", "--concurrency", str(CONCURRENCY)]
    return [
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


_arrived: dict[str, float] = {}
_read = 0


def arrivals(receiver: Receiver) -> dict[str, float]:
    """Order number -> arrival time of every delivery received so far (bodies parsed once)."""
    global _read
    for received in receiver.received[_read:]:
        _arrived.setdefault(json.loads(received.body)["data"]["number"], received.at)
    _read = len(receiver.received)
    return _arrived


async def wait_for(receiver: Receiver, numbers: set[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not numbers <= arrivals(receiver).keys():
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(numbers & arrivals(receiver).keys())} of {len(numbers)} arrived")
        await asyncio.sleep(0.002)


async def run(
    database: Database,
    actor: Actor,
    supplier_id: int,
    receiver: Receiver,
    workers: int,
    prefix: str,
    args: Any,
) -> tuple[float, float, float]:
    # The burst is committed before the workers start, so that the rate measures sending, not producing.
    numbers = [f"#{prefix}T{index}" for index in range(args.events)]
    for start in range(0, len(numbers), 100):
        async with database.write() as session:
            await import_orders(session, actor, [order(n, supplier_id) for n in numbers[start : start + 100]])
    processes = spawn(database.url, workers, args.data_dir)
    try:
        await wait_for(receiver, set(numbers))
        got = sorted(arrivals(receiver)[n] for n in numbers)
        rate = (len(got) - 1) / (got[-1] - got[0])

        latencies = []
        for index in range(args.samples):
            number = f"#{prefix}L{index}"
            async with database.write() as session:
                await import_orders(session, actor, [order(number, supplier_id)])
            committed = time.time()
            await wait_for(receiver, {number}, timeout=60)
            latencies.append((arrivals(receiver)[number] - committed) * 1000)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return rate, statistics.median(latencies), p99
    finally:
        stop(processes)


async def bench(args: argparse.Namespace) -> None:
    database = Database(args.database_url)
    try:
        actor, supplier_id = await prepare(database, args.reset)
        async with running_receiver() as receiver:
            async with database.write() as session:
                await create_subscription(
                    session, actor, f"{receiver.url}/hooks", ["orders/created"], None, allow_private=True
                )
            results = {}
            for workers in (1, 2):
                results[workers] = await run(
                    database,
                    actor,
                    supplier_id,
                    receiver,
                    workers,
                    f"{workers}{time.time_ns() % 10**6}",
                    args,
                )
                rate, median, p99 = results[workers]
                print(
                    f"{database.dialect:<10} {workers} worker(s): {rate:7.1f} deliveries/s "
                    f"({rate / results[1][0]:.2f}x one worker); commit-to-delivery median {median:.1f} ms, "
                    f"p99 {p99:.1f} ms",
                    flush=True,
                )
    finally:
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--reset", action="store_true", help="drop and recreate a PostgreSQL scratch schema")
    parser.add_argument("--events", type=int, default=400, help="deliveries in the throughput burst")
    parser.add_argument("--samples", type=int, default=100, help="single commits timed for latency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dropdesk-bench-webhooks-") as tmp:
        args.data_dir = tmp
        if args.database_url is None:
            args.database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        print(
            f"outbound webhooks: {args.events} deliveries per burst, {args.samples} latency samples",
            flush=True,
        )
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
