"""GraphQL subscriptions over graphql-transport-ws: authentication by connection_init, live order events with
tenancy, and (on PostgreSQL) an event committed through one server process reaching a subscriber of another."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from tests.api.test_webhook_processes import _wait_ready, processes
from tests.factories import IMPORT, Api, Tenant, order_input

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = "graphql-transport-ws"

ORDER_EVENTS = """
subscription($orderId: ID) {
  orderEvents(orderId: $orderId) { id type message actorKind order { id number } }
}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def base_url(db: Database) -> AsyncIterator[str]:
    app = create_app(replace(load_settings(), database_url=db.url), db)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", ws="websockets-sansio"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def open_socket(host: str, token: str | None) -> ClientConnection:
    """Connected and acknowledged (raises if the server closes instead)."""
    ws = await connect(f"ws://{host}/graphql", subprotocols=[PROTOCOL])  # type: ignore[list-item]
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
    assert ack["type"] == "connection_ack", ack
    return ws


async def subscribe(ws: ClientConnection, op_id: str, variables: dict[str, Any] | None = None) -> None:
    message = {
        "id": op_id,
        "type": "subscribe",
        "payload": {"query": ORDER_EVENTS, "variables": variables or {}},
    }
    await ws.send(json.dumps(message))


async def next_messages(ws: ClientConnection, timeout: float) -> list[dict[str, Any]]:
    """Every message (pings aside) that arrives within ``timeout`` seconds."""
    messages: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (remaining := deadline - loop.time()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=remaining))
        except TimeoutError:
            break
        if message["type"] in ("ping", "pong"):
            continue
        messages.append(message)
    return messages


async def events_until(ws: ClientConnection, event_type: str, timeout: float = 15) -> list[dict[str, Any]]:
    """Events streamed until one of ``event_type`` arrives."""
    events: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(event["type"] == event_type for event in events):
        remaining = deadline - loop.time()
        assert remaining > 0, f"no {event_type} event; got {events}"
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=remaining))
        if message["type"] in ("ping", "pong"):
            continue
        assert message["type"] == "next" and "errors" not in message["payload"], message
        events.append(message["payload"]["data"]["orderEvents"])
    return events


async def import_over_http(host: str, tenant: Tenant, number: str, **overrides: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={
                "query": IMPORT,
                "variables": {"input": {"orders": [order_input(tenant, number, **overrides)]}},
            },
            headers={"Authorization": f"Bearer {tenant.merchant_token}"},
        )
    payload = response.json()["data"]["ordersImport"]
    assert payload["userErrors"] == [], payload
    order: dict[str, Any] = payload["orders"][0]
    return order


async def settle(ws: ClientConnection, host: str, tenant: Tenant, number: str = "#PROBE") -> None:
    """Wait until the subscription listens: change an order until its event arrives, then drain."""
    for attempt in range(20):
        await import_over_http(host, tenant, number, note=str(attempt))
        messages = await next_messages(ws, 0.5)
        if messages:
            assert all(m["type"] == "next" for m in messages), messages
            await next_messages(ws, 0.3)
            return
    raise AssertionError("the subscription never delivered an event")


async def test_connection_init_must_carry_a_valid_token(base_url: str, tenant: Tenant) -> None:
    for payload in (
        {},
        {"Authorization": "Bearer ddm_not_a_token"},
        {"Authorization": tenant.merchant_token},
    ):
        async with connect(f"ws://{base_url}/graphql", subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, payload
    async with connect(f"ws://{base_url}/graphql", subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        await subscribe(ws, "1")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    supplier = await open_socket(base_url, tenant.supplier_tokens[0])
    await subscribe(supplier, "1")
    refused, *rest = await next_messages(supplier, 2)
    assert [m["type"] for m in rest] in ([], ["complete"])
    assert refused["type"] in ("error", "next"), refused
    errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    await supplier.close()


async def test_order_events_stream_committed_events_of_the_viewers_shop_only(
    base_url: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await open_socket(base_url, tenant.merchant_token)
    theirs = await open_socket(base_url, other_tenant.merchant_token)
    await subscribe(mine, "all")
    await subscribe(theirs, "all")
    await settle(mine, base_url, tenant)
    await settle(theirs, base_url, other_tenant)

    order = await import_over_http(base_url, tenant, "#5101")
    [event] = await events_until(mine, "order_imported")
    assert event["order"] == {"id": order["id"], "number": "#5101"}
    assert event["actorKind"] == "MERCHANT" and "#5101" in event["message"]
    assert await next_messages(theirs, 1.0) == []  # another shop's change never reaches them

    their_order = await import_over_http(base_url, other_tenant, "#5101")
    [their_event] = await events_until(theirs, "order_imported")
    assert their_event["order"]["id"] == their_order["id"]
    assert await next_messages(mine, 1.0) == []
    await mine.close()
    await theirs.close()


async def test_order_events_of_one_order(base_url: str, tenant: Tenant, other_tenant: Tenant) -> None:
    first = await import_over_http(base_url, tenant, "#5201")
    ws = await open_socket(base_url, tenant.merchant_token)
    await subscribe(ws, "one", {"orderId": first["id"]})
    await settle(ws, base_url, tenant, "#5201")
    await import_over_http(base_url, tenant, "#5202")  # another order of the same shop
    await import_over_http(base_url, tenant, "#5201", note="updated")
    events = await events_until(ws, "order_updated")
    assert [e["order"]["id"] for e in events] == [first["id"]]

    # Another shop's order id answers exactly as an id that does not exist.
    foreign = await import_over_http(base_url, other_tenant, "#5203")
    for op_id, order_id in (("foreign", foreign["id"]), ("missing", "gid://dropdesk/Order/999999")):
        await subscribe(ws, op_id, {"orderId": order_id})
        refused, *_ = await next_messages(ws, 2)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert errors[0]["message"] == "order not found", refused
    await ws.close()


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="several server processes share changes through PostgreSQL LISTEN/NOTIFY",
)
async def test_an_event_committed_through_one_server_reaches_a_subscriber_of_another(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    ports = [_free_port(), _free_port()]
    env = {key: value for key, value in os.environ.items() if not key.startswith("DROPDESK_")}
    env.update(DROPDESK_DATABASE_URL=db.url, DROPDESK_DATA_DIR=str(tmp_path), DROPDESK_LOG_LEVEL="WARNING")
    commands = [
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-demo"] for port in ports
    ]
    with processes(commands, env) as servers:
        for port, server in zip(ports, servers, strict=True):
            await _wait_ready(f"http://127.0.0.1:{port}", server)
        ws = await open_socket(f"127.0.0.1:{ports[1]}", tenant.merchant_token)
        await subscribe(ws, "all")
        await settle(ws, f"127.0.0.1:{ports[0]}", tenant)
        order = await import_over_http(f"127.0.0.1:{ports[0]}", tenant, "#5301")
        [event] = await events_until(ws, "order_imported")
        assert event["order"]["id"] == order["id"]
        await ws.close()


async def test_a_subscription_over_plain_http_is_told_to_use_the_websocket(api: Api, tenant: Tenant) -> None:
    body = await api.gql(tenant.merchant_token, "subscription { orderEvents { type } }")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "graphql-transport-ws" in body["errors"][0]["message"]


async def test_a_malformed_id_is_bad_input_naming_the_argument(base_url: str, tenant: Tenant) -> None:
    ws = await open_socket(base_url, tenant.merchant_token)
    await subscribe(ws, "bad", {"orderId": "gid://dropdesk/Export/1"})
    [refused, *_] = await next_messages(ws, 2)
    [error] = refused["payload"]["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["argument"] == "orderId"
    assert "is a Export id" in error["message"], error
    await ws.close()
