"""Races over real HTTP: concurrent decisions (GraphQL and webhooks) and creations on one supplier order.

The app runs under uvicorn on a free loopback port, so each request has its own connection and transaction,
as in production; the same tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.models import CancellationRequest, OrderEvent, SupplierRefund
from schema.ids import parse_id
from tests.api.test_cancellations import CREATE, DECIDE, REQUEST_FIELDS, import_order
from tests.api.test_supplier_webhooks import decided, signed
from tests.factories import Api, Tenant

RACERS = 20


@pytest.fixture
async def base_url(db: Database) -> AsyncIterator[str]:
    """The app served by uvicorn on 127.0.0.1 at a port the OS picked."""
    app = create_app(replace(load_settings(), database_url=db.url), db)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        yield client


async def graphql(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


async def pending(api: Api, tenant: Tenant) -> tuple[str, str]:
    _, [so_id] = await import_order(api, tenant)
    variables = {"input": {"supplierOrderId": so_id, "reason": "DUPLICATE_ORDER"}}
    payload = (await api.data(tenant.merchant_token, CREATE, variables))["cancellationRequestCreate"]
    assert payload["userErrors"] == []
    return so_id, payload["cancellationRequest"]["id"]


async def outcome(db: Database, request_gid: str) -> tuple[str, int, list[str]]:
    """The request's status, its refunds, and its decision events."""
    pk = parse_id(request_gid, "CancellationRequest")
    async with db.read() as session:
        status = await session.scalar(select(CancellationRequest.status).where(CancellationRequest.id == pk))
        refunds = await session.scalar(
            select(func.count()).select_from(SupplierRefund).where(SupplierRefund.source_id == pk)
        )
        events = list(
            await session.scalars(
                select(OrderEvent.type).where(
                    OrderEvent.type.in_(["cancellation_approved", "cancellation_rejected"]),
                    OrderEvent.data["cancellationRequestId"].as_integer() == pk,
                )
            )
        )
    assert status is not None
    return status.value, int(refunds or 0), events


def decision(index: int) -> str:
    return "APPROVE" if index % 2 == 0 else "REJECT"


@pytest.mark.parametrize("round", range(3))
async def test_concurrent_decisions_exactly_one_wins(
    api: Api, client: httpx.AsyncClient, db: Database, tenant: Tenant, round: int
) -> None:
    _, request_id = await pending(api, tenant)
    order = [(index + round) % RACERS for index in range(RACERS)]  # vary who is first in line

    payloads = await asyncio.gather(
        *(
            graphql(
                client,
                tenant.supplier_tokens[0],
                DECIDE,
                {"input": {"id": request_id, "decision": decision(index)}},
            )
            for index in order
        )
    )
    results = [payload["cancellationRequestDecide"] for payload in payloads]
    winners = [(index, r) for index, r in zip(order, results, strict=True) if not r["userErrors"]]
    assert len(winners) == 1, results
    losers = [r for r in results if r["userErrors"]]
    assert {error["code"] for r in losers for error in r["userErrors"]} == {"INVALID_STATE"}
    assert all(r["cancellationRequest"] is None for r in losers)

    index, winner = winners[0]
    expected = "APPROVED" if decision(index) == "APPROVE" else "REJECTED"
    assert winner["cancellationRequest"]["status"] == expected
    status, refunds, events = await outcome(db, request_id)
    assert (status, refunds, len(events)) == (expected, 1 if expected == "APPROVED" else 0, 1)


async def test_webhooks_and_mutations_racing_exactly_one_wins(
    api: Api, client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    _, request_id = await pending(api, tenant)

    async def by_webhook(index: int) -> tuple[str, bool, list[str]]:
        raw, headers = signed(decided(request_id, decision(index), None))
        response = await client.post(
            f"/webhooks/suppliers/{tenant.supplier_ids[0]}", content=raw, headers=headers
        )
        body = response.json()
        assert response.status_code in (200, 409), body
        return decision(index), response.status_code == 200, [e["code"] for e in body["userErrors"]]

    async def by_mutation(index: int) -> tuple[str, bool, list[str]]:
        variables = {"input": {"id": request_id, "decision": decision(index)}}
        result = (await graphql(client, tenant.supplier_tokens[0], DECIDE, variables))[
            "cancellationRequestDecide"
        ]
        return decision(index), not result["userErrors"], [e["code"] for e in result["userErrors"]]

    racers = [by_webhook(i) if i % 2 else by_mutation(i // 2) for i in range(RACERS)]
    results = await asyncio.gather(*racers)
    winners = [r for r in results if r[1]]
    assert len(winners) == 1, results
    assert {code for r in results if not r[1] for code in r[2]} == {"INVALID_STATE"}
    expected = "APPROVED" if winners[0][0] == "APPROVE" else "REJECTED"
    status, refunds, events = await outcome(db, request_id)
    assert (status, refunds, len(events)) == (expected, 1 if expected == "APPROVED" else 0, 1)


async def test_concurrent_requests_open_only_one(
    api: Api, client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    _, [so_id] = await import_order(api, tenant)
    create = CREATE.replace(REQUEST_FIELDS, "id status")
    variables = {"input": {"supplierOrderId": so_id, "reason": "DUPLICATE_ORDER"}}
    payloads = await asyncio.gather(
        *(graphql(client, tenant.merchant_token, create, variables) for _ in range(RACERS))
    )
    results = [payload["cancellationRequestCreate"] for payload in payloads]
    assert len([r for r in results if not r["userErrors"]]) == 1, results
    assert {e["code"] for r in results for e in r["userErrors"]} == {"ALREADY_EXISTS"}
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(CancellationRequest)) == 1
