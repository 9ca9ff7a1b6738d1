"""How fast the demo seeder fills a fresh database (SQLite by default, or the PostgreSQL one given).

Seeds a 10,000-order baseline and then N orders (default 100,000), each into its own temporary, migrated
SQLite database (or the given PostgreSQL database, emptied before each run), and prints seconds and orders
per second; the ratio shows whether the cost per order stays flat as the database grows.

    .venv/bin/python -m bench.seed [--orders N] [--database-url postgresql+asyncpg://.../NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from db.engine import Database
from db.migrate import upgrade
from demo.generator import seed_demo

BASELINE_ORDERS = 10_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _progress(done: int, total: int) -> None:
    if done == total or done % (total // 10 or 1) < 1_000:
        print(f"  {done:>8,} / {total:,}", file=sys.stderr, flush=True)


async def run(orders: int, url: str | None = None) -> float:
    """Seconds to seed ``orders`` orders into a fresh database (migration time excluded)."""
    with tempfile.TemporaryDirectory(prefix="dropdesk-bench-") as tmp:
        database = Database(url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            if database.dialect == "postgresql":
                async with database.engine.begin() as connection:
                    await connection.execute(text("DROP SCHEMA public CASCADE"))
                    await connection.execute(text("CREATE SCHEMA public"))
            await upgrade(database.engine)
            started = time.perf_counter()
            result = await seed_demo(database, orders=orders, secret_key="bench", now=NOW, progress=_progress)
            elapsed = time.perf_counter() - started
        finally:
            await database.dispose()
    assert result.created and result.orders == orders
    print(f"{orders:>8,} orders: {elapsed:7.1f} s  {orders / elapsed:8,.0f} orders/s", flush=True)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=100_000, help="orders to seed (default 100,000)")
    parser.add_argument("--database-url", help="a PostgreSQL database of its own (emptied); default SQLite")
    args = parser.parse_args()
    baseline = await run(BASELINE_ORDERS, args.database_url)
    elapsed = await run(args.orders, args.database_url)
    per_order_ratio = (elapsed / args.orders) / (baseline / BASELINE_ORDERS)
    print(f"cost per order relative to the {BASELINE_ORDERS:,}-order baseline: {per_order_ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
