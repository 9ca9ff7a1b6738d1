"""What the edge's checks cost next to the work of answering: a deep page of orders, end to end, against the
time the guard spends on it (document tokens, stored-text walk, requested and actual cost).

Seeds a temporary SQLite database with demo orders, answers ``orders(first: N)`` with lines, supplier
orders, packages and events through the ASGI app, then times the guard's steps alone on the same document
and result; the ratio is the share of a request they take.

    .venv/bin/python -m bench.edge [--orders 2000] [--first 80] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from graphql import OperationDefinitionNode, parse

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.migrate import upgrade
from demo.generator import seed_demo
from schema.cost import CostCalculator
from schema.extensions import count_tokens, unstorable_text_error
from schema.pagination import DEFAULT_PAGE_SIZE
from schema.root import build_schema

DEEP = """
query Deep($first: Int!) {
  orders(first: $first) {
    pageInfo { hasNextPage endCursor }
    nodes {
      number total { amount } customer { name email }
      lines { title sku quantity unitPrice { amount } }
      supplierOrders { aliexpressOrderId status cost { amount } supplier { name }
        packages { trackingNumber events { status location } } }
      events { type message }
    }
  }
}
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--first", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dropdesk-bench-") as tmp:
        database = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}")
        await upgrade(database.engine)
        seeded = await seed_demo(
            database, orders=args.orders, secret_key="bench", now=datetime(2026, 1, 1, tzinfo=UTC)
        )
        token = next(iter(seeded.merchant_tokens.values()))
        settings = replace(load_settings(), database_url=database.url, cost_restore_rate=1_000_000)
        app = create_app(settings, database)
        variables = {"first": args.first}
        request_times = []
        body: dict[str, Any] = {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client:
            for _ in range(args.rounds + 1):
                started = time.perf_counter()
                response = await client.post(
                    "/graphql",
                    json={"query": DEEP, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                request_times.append(time.perf_counter() - started)
                body = response.json()
        assert "errors" not in body, body
        await database.dispose()

    schema = build_schema(settings)._schema
    document = parse(DEEP)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    guard_times = []
    for _ in range(args.rounds + 1):
        started = time.perf_counter()
        count_tokens(DEEP, settings.max_query_tokens)
        unstorable_text_error(document, operation, variables)
        calculator = CostCalculator(schema, document, variables, DEFAULT_PAGE_SIZE)
        requested = calculator.requested(operation)
        actual = calculator.actual(operation, body["data"])
        guard_times.append(time.perf_counter() - started)

    request = statistics.median(request_times[1:])
    guard = statistics.median(guard_times[1:])
    nodes = len(body["data"]["orders"]["nodes"])
    print(f"orders(first: {args.first}) deep, {nodes} orders, {len(response.content):,} bytes")
    print(f"  request end to end (median of {args.rounds}): {request * 1000:8.1f} ms")
    print(f"  the guard's checks on it:                    {guard * 1000:8.2f} ms")
    print(f"  share of the request: {guard / request:.1%}  (requested cost {requested}, actual {actual})")


if __name__ == "__main__":
    asyncio.run(main())
