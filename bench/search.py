"""Search latency: every form of the search syntax, as a merchant's search box sends it.

Each form is one GraphQL request asking for ``ordersCount`` and ``orders(first: 20)`` (newest first), sent to
the real app in-process; the figures are its p50 and p95 over the repetitions, and the ratio against the same
request with no query at all, measured in the same run, and the CPU time the bench process spent on it (the
whole app and, on SQLite, the database; on a shared machine it moves less than the wall clock). The database is
seeded with ``--orders`` demo orders first, then its statistics refreshed, unless it already holds orders
(give a file with ``--database-url sqlite+aiosqlite:////path/file.sqlite3`` to keep and reuse one; the seeding
time is printed too); the plan of the slowest form's count is printed at the end.

    python3 run.py bench --search [--orders N] [--database-url URL] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

import domain.subdomains  # noqa: F401  (registers reactions and job handlers, as the app does)
from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.migrate import refresh_statistics, upgrade
from db.models import Order, OrderLine, Package, Shop, Supplier, SupplierOrder, TokenKind
from db.search import child_rows_count, order_filter
from demo.generator import seed_demo
from domain.actors import Scope
from domain.tokens import issue_token

SEARCH = """
query($query: String) {
  ordersCount(query: $query)
  orders(first: 20, query: $query, sortKey: CREATED_AT, reverse: true) { nodes { id number } }
}
"""
TARGET_MS = 50.0


@dataclass(frozen=True)
class Sample:
    """Values taken from the seeded data, so that every form finds something: a form that finds nothing times
    nothing useful."""

    shop_id: int
    surname: str
    email: str
    email_local: str
    number: str
    tracking: str
    tracking_prefix: str
    sku: str
    sku_prefix: str
    supplier: str
    supplier_store: str
    # The seed's dates are fixed when it runs: relative dates count back from now to its newest order.
    days_since_newest: int
    newest_update_day: str


async def _sample(database: Database) -> Sample:
    async with database.read() as session:
        shop_id = (
            await session.execute(
                select(Order.shop_id).group_by(Order.shop_id).order_by(func.count().desc()).limit(1)
            )
        ).scalar_one()
        middle = (
            (
                await session.execute(
                    select(Order)
                    .where(Order.shop_id == shop_id)
                    .order_by(Order.number_value)
                    .offset(
                        (await session.scalar(select(func.count()).where(Order.shop_id == shop_id)) or 1) // 2
                    )
                )
            )
            .scalars()
            .first()
        )
        assert middle is not None
        tracking = (
            await session.execute(
                select(Package.tracking_number)
                .where(Package.shop_id == shop_id)
                .order_by(Package.id)
                .limit(1)
            )
        ).scalar_one()
        sku = (
            await session.execute(
                select(OrderLine.sku)
                .where(OrderLine.order_id == middle.id, OrderLine.sku.is_not(None))
                .limit(1)
            )
        ).scalar_one()
        supplier = (
            await session.execute(
                select(Supplier.name, Supplier.aliexpress_store_id)
                .join(SupplierOrder, SupplierOrder.supplier_id == Supplier.id)
                .where(SupplierOrder.order_id == middle.id)
                .limit(1)
            )
        ).one()
        newest_created, newest_updated = (
            await session.execute(
                select(func.max(Order.created_at), func.max(Order.updated_at)).where(Order.shop_id == shop_id)
            )
        ).one()
    assert sku is not None and middle.customer_email is not None
    return Sample(
        shop_id=shop_id,
        surname=middle.customer_name.split()[-1],
        email=middle.customer_email,
        email_local=middle.customer_email.split("@")[0],
        number=middle.number,
        tracking=tracking,
        tracking_prefix=tracking[:6],
        sku=sku,
        sku_prefix=sku.split("-")[0] + "-",
        supplier=supplier[0].split()[0],
        supplier_store=supplier[1],
        days_since_newest=(datetime.now(UTC) - _aware(newest_created)).days,
        newest_update_day=_aware(newest_updated).date().isoformat(),
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def forms(sample: Sample) -> list[tuple[str, str]]:
    """(what it shows, query): one line per form in the README's list."""
    s = sample
    return [
        ("no query (baseline)", ""),
        ("bare word: customer surname", s.surname),
        ("bare word: order number", s.number),
        ("bare word: tracking number prefix", s.tracking_prefix),
        ("number: exact", f"number:{s.number}"),
        ("number: prefix wildcard", f"number:{s.number[:4]}*"),
        ("number: comparator", f"number:>{s.number.lstrip('#')}"),
        ("email: exact", f"email:{s.email}"),
        ("email: prefix wildcard", f"email:{s.email_local}*"),
        ("email: domain", "email:@gmail.com"),
        ("customer:", f'customer:"{s.surname}"'),
        ("status:", "status:open"),
        ("financial_status:", "financial_status:voided"),
        ("supplier_status:", "supplier_status:wait_seller_send_goods"),
        ("supplier: name", f"supplier:{s.supplier}"),
        ("supplier: store id and status", f"supplier:{s.supplier_store} status:open"),
        ("sku: exact", f"sku:{s.sku}"),
        ("sku: prefix wildcard", f"sku:{s.sku_prefix}*"),
        ("tracking: exact", f"tracking:{s.tracking}"),
        ("tracking: prefix wildcard", f"tracking:{s.tracking_prefix}*"),
        ("tag:", "tag:vip"),
        ("tag: prefix wildcard", "tag:insta*"),
        ("total: comparator", "total:>50"),
        ("created_at: relative", f"created_at:>-{s.days_since_newest + 7}d"),
        ("updated_at: day", f"updated_at:{s.newest_update_day}"),
        ("has:open_cancellation", "has:open_cancellation"),
        ("has:open_dispute", "has:open_dispute"),
        ("OR of has: and financial_status:", "has:open_cancellation OR financial_status:voided"),
        ("OR of open dispute and financial:", "has:open_dispute OR financial_status:voided"),
        ("OR of sku: and tracking:", f"sku:{s.sku} OR tracking:{s.tracking}"),
        ("OR of sku: and a bare name", f"sku:{s.sku} OR {s.surname}"),
        ("OR of tracking: and a bare name", f"tracking:{s.tracking_prefix}* OR {s.surname}"),
        ("OR of supplier_status: and status:", "supplier_status:wait_seller_send_goods OR status:cancelled"),
        ("AND with NOT", "supplier_status:wait_seller_send_goods total:>50 -tag:vip"),
        ("NOT alone", "-status:open"),
        ("parentheses and OR", f"(tag:vip OR tag:gift) supplier:{s.supplier} -status:cancelled"),
    ]


async def _seed_if_empty(database: Database, orders: int) -> None:
    await upgrade(database.engine)
    async with database.read() as session:
        existing = await session.scalar(select(func.count()).select_from(Order))
    if existing:
        print(f"using the {existing:,} orders already in the database", flush=True)
        return
    started = time.perf_counter()
    await seed_demo(database, orders=orders, secret_key="bench", now=datetime(2026, 1, 1, tzinfo=UTC))
    print(f"seeded {orders:,} orders in {time.perf_counter() - started:.1f} s", flush=True)
    # As `dropdesk seed` does: without statistics both planners take the freshly loaded tables for empty.
    await refresh_statistics(database.engine, vacuum=True)


async def _token(database: Database, shop_id: int) -> str:
    async with database.write() as session:
        shop = await session.get(Shop, shop_id)
        assert shop is not None
        return issue_token(
            session, kind=TokenKind.MERCHANT, name="search bench", shop_id=shop_id, scopes=[Scope.READ_ORDERS]
        ).raw


async def _explain(database: Database, query: str, shop_id: int) -> str:
    """The plan of the count the slowest form runs (with timings on PostgreSQL), as ``ordersCount`` builds it."""
    clause = order_filter(query, shop_id=shop_id)
    statement = child_rows_count(clause, shop_id)
    if statement is None:
        statement = select(func.count()).select_from(Order).where(Order.shop_id == shop_id, clause)
    async with database.read() as session:
        compiled = statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        if database.dialect == "postgresql":
            rows = await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))
            return "\n".join(row[0] for row in rows)
        rows = await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        return "\n".join(row[3] for row in rows)


async def measure(database: Database, repeat: int) -> list[tuple[str, str, float, float, float, int]]:
    sample = await _sample(database)
    token = await _token(database, sample.shop_id)
    # One merchant sending hundreds of searches in a row: the cost limit would throttle it, as it should.
    settings = replace(load_settings(), database_url=database.url, cost_restore_rate=1_000_000)
    app = create_app(settings, database)
    results = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench.test", timeout=60
    ) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for label, query in forms(sample):
            timings = []
            cpu = []
            count = 0
            for attempt in range(repeat + 2):
                started = time.perf_counter()
                cpu_started = time.process_time()
                response = await client.post(
                    "/graphql", json={"query": SEARCH, "variables": {"query": query}}, headers=headers
                )
                elapsed = (time.perf_counter() - started) * 1000
                cpu_elapsed = (time.process_time() - cpu_started) * 1000
                body: dict[str, Any] = response.json()
                if response.status_code != 200 or body.get("errors"):
                    raise SystemExit(f"{label}: {response.status_code} {body}")
                count = body["data"]["ordersCount"]
                if attempt >= 2:  # the first two warm caches and the statement compiler
                    timings.append(elapsed)
                    cpu.append(cpu_elapsed)
            p50 = statistics.median(timings)
            p95 = sorted(timings)[max(0, round(len(timings) * 0.95) - 1)]
            results.append((label, query, p50, p95, statistics.median(cpu), count))
    return results


async def run(url: str | None, orders: int, repeat: int) -> int:
    with tempfile.TemporaryDirectory(prefix="dropdesk-search-") as tmp:
        database = Database(url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            await _seed_if_empty(database, orders)
            results = await measure(database, repeat)
            baseline = results[0][2]
            load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
            print(
                f"\n{database.dialect}: ordersCount + orders(first: 20), {repeat} runs each (ms); load {load}"
            )
            print(f"{'form':<36} {'p50':>7} {'p95':>7} {'x base':>7} {'cpu p50':>7} {'count':>7}  query")
            for label, query, p50, p95, cpu, count in results:
                flag = "" if p50 < TARGET_MS else "  <-- over target"
                flag += "" if count or not query else "  <-- finds nothing"
                print(
                    f"{label:<36} {p50:7.1f} {p95:7.1f} {p50 / baseline:7.2f} {cpu:7.1f} {count:7,}  {query}{flag}"
                )
            slowest = max(results[1:], key=lambda row: row[2])
            over = [row for row in results if row[2] >= TARGET_MS]
            print(f"\nslowest: {slowest[0]} ({slowest[2]:.1f} ms p50): {slowest[1]}")
            sample = await _sample(database)
            print(await _explain(database, slowest[1], sample.shop_id))
            print(f"\n{len(results) - len(over)} of {len(results)} forms under {TARGET_MS:.0f} ms p50")
            return 0
        finally:
            await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=100_000, help="orders to seed into an empty database")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per form (default 15)")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.database_url, args.orders, args.repeat)))


if __name__ == "__main__":
    main()
