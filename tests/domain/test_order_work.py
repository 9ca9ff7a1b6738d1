"""Bulk actions at scale, and text the database drivers cannot store refused by every new use case."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.worker import Worker
from config.settings import load_settings
from db.engine import Database
from db.models import ActorKind, BulkActionKind, BulkActionResult, CancellationReason, NoteVisibility, Order
from domain import bulk_actions as bulk_cases
from domain import notes as note_cases
from domain import order_tags as tag_cases
from domain import saved_searches as saved_search_cases
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from tests.api.test_bulk_actions import SHOW, START
from tests.factories import Api, Tenant, order_input

ORDERS = 1000


async def test_a_thousand_orders_finish_with_a_result_for_each(
    api: Api, tenant: Tenant, db: Database, tmp_path: Path
) -> None:
    for start in range(0, ORDERS, 100):
        await api.import_orders(
            tenant, *(order_input(tenant, f"#{10000 + n}", split=False) for n in range(start, start + 100))
        )
    settings = replace(load_settings(), database_url=db.url, data_dir=tmp_path, bulk_action_batch_orders=100)
    started = (
        await api.data(
            tenant.merchant_token,
            START,
            {"input": {"action": "ADD_TAGS", "query": "tag:vip", "tags": ["bulk"]}},
        )
    )["ordersBulkAction"]
    began = time.perf_counter()
    await Worker(db, settings).drain()
    elapsed = time.perf_counter() - began
    shown = (await api.data(tenant.merchant_token, SHOW, {"id": started["bulkAction"]["id"], "ok": None}))[
        "bulkAction"
    ]
    assert shown["status"] == "SUCCEEDED" and shown["progress"] == {"done": ORDERS, "total": ORDERS}
    assert shown["failedCount"] == 0
    async with db.read() as session:
        results = await session.scalar(select(func.count()).select_from(BulkActionResult))
        distinct = await session.scalar(select(func.count(func.distinct(BulkActionResult.order_id))))
        tagged = await session.scalar(select(func.count()).select_from(Order).where(Order.tags == "vip,bulk"))
    assert (results, distinct, tagged) == (ORDERS, ORDERS, ORDERS)
    print(f"bulk ADD_TAGS over {ORDERS} orders: {elapsed:.2f} s ({ORDERS / elapsed:.0f} orders/s)")


BAD_TEXTS = ["nul\x00", "lone \ud800 surrogate"]


@pytest.mark.parametrize("bad", BAD_TEXTS)
async def test_unstorable_text_is_a_field_error_everywhere(
    api: Api, tenant: Tenant, db: Database, bad: str
) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#9001"))
    order_id = int(order["id"].rsplit("/", 1)[1])
    actor = Actor(kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset(Scope.ALL))
    attempts: list[tuple[Any, tuple[str, ...]]] = [
        (
            lambda s: saved_search_cases.create_saved_search(
                s, actor, saved_search_cases.SavedSearchInput(name=bad)
            ),
            ("name",),
        ),
        (
            lambda s: saved_search_cases.create_saved_search(
                s, actor, saved_search_cases.SavedSearchInput(name="ok", query=bad)
            ),
            ("query",),
        ),
        (
            lambda s: note_cases.add_note(s, actor, note_cases.NoteInput(order_id=order_id, body=bad)),
            ("body",),
        ),
        (lambda s: tag_cases.add_order_tags(s, actor, order_id, [bad]), ("tags", "0")),
        (
            lambda s: bulk_cases.create_bulk_action(
                s, actor, bulk_cases.BulkActionRequest(action=BulkActionKind.ADD_TAGS, query=bad, tags=["x"])
            ),
            ("query",),
        ),
        (
            lambda s: bulk_cases.create_bulk_action(
                s,
                actor,
                bulk_cases.BulkActionRequest(
                    action=BulkActionKind.CANCEL_UNSHIPPED,
                    query="tag:vip",
                    reason=CancellationReason.CUSTOMER_CANCELLED,
                    message=bad,
                ),
            ),
            ("message",),
        ),
    ]
    for attempt, field in attempts:
        with pytest.raises(DomainError) as refused:
            async with db.write() as session:
                await attempt(session)
        assert [(error.field, error.code) for error in refused.value.errors] == [(field, ErrorCode.INVALID)]


async def test_a_shop_keeps_at_most_its_limit_of_saved_searches(tenant: Tenant, db: Database) -> None:
    actor = Actor(kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset(Scope.ALL))
    async with db.write() as session:
        for index in range(saved_search_cases.MAX_PER_SHOP):
            await saved_search_cases.create_saved_search(
                session, actor, saved_search_cases.SavedSearchInput(name=f"View {index}")
            )
    with pytest.raises(DomainError) as refused:
        async with db.write() as session:
            await saved_search_cases.create_saved_search(
                session, actor, saved_search_cases.SavedSearchInput(name="One too many")
            )
    assert refused.value.errors[0].code is ErrorCode.TOO_MANY


async def test_supplier_payload_notes_carry_supplier_notes_only(
    api: Api, tenant: Tenant, db: Database
) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#9101"))
    order_id = int(order["id"].rsplit("/", 1)[1])
    so_ids = [int(so["id"].rsplit("/", 1)[1]) for so in order["supplierOrders"]]
    actor = Actor(kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset(Scope.ALL))
    async with db.write() as session:
        for body, visibility in (
            ("for the supplier", NoteVisibility.SUPPLIER),
            ("staff only", NoteVisibility.STAFF),
        ):
            await note_cases.add_note(
                session,
                actor,
                note_cases.NoteInput(
                    order_id=order_id, body=body, visibility=visibility, supplier_order_id=so_ids[0]
                ),
            )
    async with db.read() as session:
        carried = await note_cases.supplier_notes_by_supplier_order(session, so_ids)
    assert [(note["body"], note["authorName"]) for note in carried[so_ids[0]]] == [
        ("for the supplier", "staff")
    ]
    assert so_ids[1] not in carried
