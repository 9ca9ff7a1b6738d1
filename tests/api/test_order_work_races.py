"""Races over real HTTP and concurrent jobs: tags on one order, saved-search names, note deletion, and the same
bulk action run twice at once. The same tests run on SQLite and PostgreSQL; rows are checked afterwards."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
from sqlalchemy import func, select

from config.settings import load_settings
from db.engine import Database
from db.jobs import JobContext
from db.models import BulkActionResult, CancellationRequest, OrderEvent, OrderNote, SavedSearch
from domain import bulk_actions as bulk_cases
from schema.ids import parse_id
from tests.api import test_cancellation_races as races
from tests.api.test_bulk_actions import START
from tests.api.test_order_notes_and_tags import ADD, DELETE, ORDER, TAGS_ADD
from tests.api.test_saved_searches import CREATE
from tests.factories import Api, Tenant, order_input

RACERS = 20

# The uvicorn server and its client, shared with the cancellation races.
base_url = races.base_url
client = races.client
graphql = races.graphql


async def post(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, object]
) -> dict[str, object]:
    return await graphql(client, token, query, variables)


async def test_concurrent_tag_additions_on_one_order_lose_none(
    api: Api, tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#8001"))
    await asyncio.gather(
        *(
            post(
                client, tenant.merchant_token, TAGS_ADD, {"input": {"id": order["id"], "tags": [f"t{index}"]}}
            )
            for index in range(RACERS)
        )
    )
    tags = (await api.data(tenant.merchant_token, ORDER, {"id": order["id"]}))["order"]["tags"]
    assert sorted(tags) == sorted(["vip", *(f"t{index}" for index in range(RACERS))])
    async with db.read() as session:
        events = await session.scalar(
            select(func.count()).select_from(OrderEvent).where(OrderEvent.type == "tags_added")
        )
    assert events == RACERS


async def test_concurrent_saved_searches_under_one_name_keep_one(
    tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    answers = await asyncio.gather(
        *(
            post(
                client,
                tenant.merchant_token,
                CREATE,
                {"input": {"name": "Open disputes", "query": f"has:open_dispute -tag:t{i}"}},
            )
            for i in range(RACERS)
        )
    )
    codes = sorted(
        [error["code"] for error in answer["savedSearchCreate"]["userErrors"]]  # type: ignore[index]
        for answer in answers
    )
    assert codes.count([]) == 1 and codes.count(["ALREADY_EXISTS"]) == RACERS - 1
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(SavedSearch)) == 1


async def test_concurrent_deletions_of_one_note_delete_it_once(
    api: Api, tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#8101"))
    note = await api.data(tenant.merchant_token, ADD, {"input": {"orderId": order["id"], "body": "once"}})
    note_id = note["orderNoteAdd"]["note"]["id"]
    answers = await asyncio.gather(
        *(post(client, tenant.merchant_token, DELETE, {"input": {"id": note_id}}) for _ in range(RACERS))
    )
    deleted = [a for a in answers if a["orderNoteDelete"]["deletedNoteId"] == note_id]  # type: ignore[index]
    assert len(deleted) == 1
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(OrderNote)) == 0
        events = await session.scalar(
            select(func.count()).select_from(OrderEvent).where(OrderEvent.type == "note_deleted")
        )
    assert events == 1


async def test_one_bulk_action_run_twice_at_once_does_each_order_once(
    api: Api, tenant: Tenant, db: Database, tmp_path: Path
) -> None:
    await api.import_orders(tenant, *(order_input(tenant, f"#82{index:02d}") for index in range(30)))
    started = (
        await api.data(
            tenant.merchant_token,
            START,
            {
                "input": {
                    "action": "CANCEL_UNSHIPPED",
                    "query": "number:>=8200",
                    "reason": "CUSTOMER_CANCELLED",
                }
            },
        )
    )["ordersBulkAction"]
    pk = parse_id(started["bulkAction"]["id"], "BulkAction")
    assert pk is not None
    settings = replace(load_settings(), database_url=db.url, data_dir=tmp_path, bulk_action_batch_orders=7)
    contexts = [JobContext(database=db, settings=settings, worker_name=f"w{index}") for index in range(2)]
    await asyncio.gather(*(bulk_cases.run_bulk_action(ctx, pk) for ctx in contexts))
    async with db.read() as session:
        results = await session.scalar(select(func.count()).select_from(BulkActionResult))
        failed = await session.scalar(
            select(func.count()).select_from(BulkActionResult).where(BulkActionResult.ok.is_(False))
        )
        requests = await session.scalar(select(func.count()).select_from(CancellationRequest))
        asked = await session.scalar(
            select(func.count()).select_from(OrderEvent).where(OrderEvent.type == "cancellation_requested")
        )
    assert (results, failed, requests, asked) == (30, 0, 60, 60)


async def test_a_bulk_tagging_racing_single_tag_additions_loses_neither(
    api: Api, tenant: Tenant, client: httpx.AsyncClient, db: Database, tmp_path: Path
) -> None:
    orders = await api.import_orders(
        tenant, *(order_input(tenant, f"#83{index:02d}") for index in range(RACERS))
    )
    started = (
        await api.data(
            tenant.merchant_token,
            START,
            {"input": {"action": "ADD_TAGS", "query": "number:>=8300", "tags": ["bulk"]}},
        )
    )["ordersBulkAction"]
    pk = parse_id(started["bulkAction"]["id"], "BulkAction")
    assert pk is not None
    settings = replace(load_settings(), database_url=db.url, data_dir=tmp_path, bulk_action_batch_orders=5)
    ctx = JobContext(database=db, settings=settings, worker_name="w")
    await asyncio.gather(
        bulk_cases.run_bulk_action(ctx, pk),
        *(
            post(client, tenant.merchant_token, TAGS_ADD, {"input": {"id": order["id"], "tags": ["single"]}})
            for order in orders
        ),
    )
    for order in orders:
        tags = (await api.data(tenant.merchant_token, ORDER, {"id": order["id"]}))["order"]["tags"]
        assert sorted(tags) == ["bulk", "single", "vip"]
