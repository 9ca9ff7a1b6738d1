"""exportProgress and bulkActionProgress over graphql-transport-ws: a result per change of progress, ending
when the work ends, only for the shop that owns it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from api.worker import Worker
from config.settings import load_settings
from db.engine import Database
from db.types import utcnow
from tests.api import test_subscriptions
from tests.api.test_subscriptions import next_messages, open_socket
from tests.factories import IMPORT, Api, Tenant, order_input

# The uvicorn server of the subscription tests, with its worker off so that the test runs the export.
server_url = test_subscriptions.base_url

EXPORT_PROGRESS = """
subscription($id: ID!) { exportProgress(id: $id) { id status progress { done total } rowCount } }
"""


async def _start_export(api: Api, tenant: Tenant) -> str:
    imported = await api.gql(
        tenant.merchant_token,
        IMPORT,
        {"input": {"orders": [order_input(tenant, f"#{7001 + n}") for n in range(3)]}},
    )
    assert imported["data"]["ordersImport"]["userErrors"] == []
    created = await api.gql(
        tenant.merchant_token,
        "mutation($input: OrdersExportInput!) { ordersExport(input: $input) { export { id } userErrors { field } } }",
        {"input": {"format": "CSV"}},
    )
    assert created["data"]["ordersExport"]["userErrors"] == [], created
    return str(created["data"]["ordersExport"]["export"]["id"])


async def test_progress_streams_until_the_export_finishes_and_only_to_its_shop(
    db: Database, server_url: str, tenant: Tenant, other_tenant: Tenant, api: Api, tmp_path: Path
) -> None:
    export_id = await _start_export(api, tenant)

    stranger = await open_socket(server_url, other_tenant.merchant_token)
    await stranger.send(
        json.dumps(
            {
                "id": "x",
                "type": "subscribe",
                "payload": {"query": EXPORT_PROGRESS, "variables": {"id": export_id}},
            }
        )
    )
    refused = await next_messages(stranger, timeout=3)
    errors = refused[0]["payload"]["errors"]
    assert refused[0]["type"] == "next" and errors[0]["extensions"]["code"] == "NOT_FOUND", refused
    await stranger.close()

    ws = await open_socket(server_url, tenant.merchant_token)
    await ws.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": EXPORT_PROGRESS, "variables": {"id": export_id}},
            }
        )
    )
    first = await next_messages(ws, timeout=2)
    assert [m["payload"]["data"]["exportProgress"]["status"] for m in first] == ["PENDING"]

    settings = replace(
        load_settings(), database_url=db.url, data_dir=tmp_path, export_dir_override=str(tmp_path)
    )
    worker = Worker(db, settings, clock=lambda: utcnow() + timedelta(seconds=1))
    assert await worker.drain() == 1

    rest = await next_messages(ws, timeout=4)
    results: list[dict[str, Any]] = [
        m["payload"]["data"]["exportProgress"] for m in rest if m["type"] == "next"
    ]
    assert results[-1]["status"] == "SUCCEEDED" and results[-1]["progress"] == {"done": 6, "total": 6}
    assert results[-1]["rowCount"] == 6 and results[-1]["id"] == export_id
    assert rest[-1] == {"id": "1", "type": "complete"}
    await ws.close()


BULK_PROGRESS = """
subscription($id: ID!) { bulkActionProgress(id: $id) { id status progress { done total } } }
"""


async def test_bulk_action_progress_streams_until_it_finishes(
    db: Database, server_url: str, tenant: Tenant, other_tenant: Tenant, api: Api, tmp_path: Path
) -> None:
    await api.import_orders(tenant, *(order_input(tenant, f"#{8001 + n}") for n in range(3)))
    started = await api.gql(
        tenant.merchant_token,
        "mutation($input: OrdersBulkActionInput!) { ordersBulkAction(input: $input) { bulkAction { id } } }",
        {"input": {"action": "ADD_TAGS", "query": "number:#800*", "tags": ["checked"]}},
    )
    gid = started["data"]["ordersBulkAction"]["bulkAction"]["id"]
    subscribe = {"type": "subscribe", "payload": {"query": BULK_PROGRESS, "variables": {"id": gid}}}

    stranger = await open_socket(server_url, other_tenant.merchant_token)
    await stranger.send(json.dumps({"id": "x", **subscribe}))
    refused = (await next_messages(stranger, timeout=3))[0]
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    await stranger.close()

    ws = await open_socket(server_url, tenant.merchant_token)
    await ws.send(json.dumps({"id": "1", **subscribe}))
    first = await next_messages(ws, timeout=2)
    assert [m["payload"]["data"]["bulkActionProgress"]["status"] for m in first] == ["PENDING"]
    settings = replace(load_settings(), database_url=db.url, data_dir=tmp_path, smtp_url="")
    assert await Worker(db, settings, clock=lambda: utcnow() + timedelta(seconds=1)).drain() == 1
    rest = await next_messages(ws, timeout=4)
    last = [m["payload"]["data"]["bulkActionProgress"] for m in rest if m["type"] == "next"][-1]
    assert last["status"] == "SUCCEEDED" and last["progress"] == {"done": 3, "total": 3}
    assert rest[-1] == {"id": "1", "type": "complete"}
    await ws.close()


async def test_a_malformed_export_id_is_bad_input(server_url: str, tenant: Tenant) -> None:
    ws = await open_socket(server_url, tenant.merchant_token)
    subscribe = {"query": EXPORT_PROGRESS, "variables": {"id": "not-an-id"}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
    refused = (await next_messages(ws, timeout=3))[0]
    assert refused["payload"]["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "id"}
    await ws.close()
