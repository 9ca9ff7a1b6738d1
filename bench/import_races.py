"""What queueing concurrent re-imports of one order number on its row lock costs, over real HTTP.

Serves the app with uvicorn on a loopback port, then sends R concurrent ``ordersImport`` requests in rounds:
the baseline re-imports R different existing orders at once (nothing to wait for), the measured run
re-imports one order R times at once (each waits for the one before it). Prints wall time, imports per
second and the ratio against the baseline of the same run, and checks that one order with one request's
lines is left.

    .venv/bin/python -m bench.import_races [--database-url URL] [--racers R] [--rounds N]

Without ``--database-url`` it uses a temporary SQLite file; give a PostgreSQL URL of a scratch database
(it is migrated, and a new shop is added to it on each run).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.migrate import upgrade
from db.models import Order, OrderLine
from tests.factories import IMPORT, Tenant, make_tenant, order_input


def _variant(tenant: Tenant, number: str, index: int) -> dict[str, Any]:
    data = order_input(tenant, number, note=f"request {index}")
    data["lines"][0]["quantity"] = 1 + index % 7
    return data


async def _send(client: httpx.AsyncClient, tenant: Tenant, data: dict[str, Any]) -> None:
    response = await client.post(
        "/graphql",
        json={"query": IMPORT, "variables": {"input": {"orders": [data]}}},
        headers={"Authorization": f"Bearer {tenant.merchant_token}"},
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    assert body["data"]["ordersImport"]["userErrors"] == [], body


async def _rounds(
    client: httpx.AsyncClient, tenant: Tenant, numbers: list[str], racers: int, rounds: int
) -> float:
    """Seconds for ``rounds`` rounds of ``racers`` concurrent imports, request i going to numbers[i]."""
    started = time.perf_counter()
    for round_index in range(rounds):
        await asyncio.gather(
            *(
                _send(client, tenant, _variant(tenant, numbers[index], round_index * racers + index))
                for index in range(racers)
            )
        )
    return time.perf_counter() - started


async def run(url: str, racers: int, rounds: int) -> None:
    database = Database(url)
    await upgrade(database.engine)
    tenant = await make_tenant(database)
    app = create_app(replace(load_settings(), database_url=url), database)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            spread = [f"#{9100 + index}" for index in range(racers)]
            for number in [*spread, "#9000"]:
                await _send(client, tenant, _variant(tenant, number, 0))
            baseline = await _rounds(client, tenant, spread, racers, rounds)
            contended = await _rounds(client, tenant, ["#9000"] * racers, racers, rounds)
        async with database.read() as session:
            [order_id] = (
                await session.scalars(
                    select(Order.id).where(Order.shop_id == tenant.shop_id, Order.number == "#9000")
                )
            ).all()
            lines = await session.scalar(
                select(func.count()).select_from(OrderLine).where(OrderLine.order_id == order_id)
            )
        assert lines == 2, lines
    finally:
        server.should_exit = True
        await task
        sock.close()
        await database.dispose()
    imports = racers * rounds
    print(f"database: {database.dialect}, {racers} concurrent requests x {rounds} rounds")
    print(f"  {racers} different orders at once: {baseline:6.2f} s  {imports / baseline:7.1f} imports/s")
    print(f"  one order {racers} times at once:   {contended:6.2f} s  {imports / contended:7.1f} imports/s")
    print(f"  time relative to the baseline: {contended / baseline:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--racers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(run(args.database_url, args.racers, args.rounds))
        return
    with tempfile.TemporaryDirectory(prefix="dropdesk-bench-") as tmp:
        asyncio.run(run(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}", args.racers, args.rounds))


if __name__ == "__main__":
    main()
