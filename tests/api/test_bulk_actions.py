"""Bulk actions over GraphQL: tags, cancellations of unshipped supplier orders and exports over matching
orders, per-order outcomes, refusals, tenancy, and retries that never do an order twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from api.worker import Worker
from config.settings import Settings, load_settings
from db.engine import Database
from db.jobs import JobContext
from db.models import BulkAction, BulkActionResult, CancellationRequest, Order, OrderEvent
from domain import bulk_actions as bulk_cases
from schema.ids import parse_id
from tests.factories import Api, Tenant, order_input

START = """mutation($input: OrdersBulkActionInput!) {
  ordersBulkAction(input: $input) { bulkAction { id status action } userErrors { field message code } } }"""
SHOW = """query($id: ID!, $ok: Boolean) { bulkAction(id: $id) {
  id action status requestedBy failedCount progress { done total } export { id status }
  results(first: 250, ok: $ok) { nodes { ok order { number tags } userErrors { field message code } } }
} }"""
ORDER = "query($id: ID!) { order(id: $id) { number tags events { type actorName message } } }"


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return replace(
        load_settings(), database_url=db.url, data_dir=tmp_path, smtp_url="", run_worker_in_server=False
    )


async def start(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    return dict((await api.data(token, START, {"input": fields}))["ordersBulkAction"])


async def show(api: Api, token: str, gid: str, ok: bool | None = None) -> dict[str, Any] | None:
    return (await api.data(token, SHOW, {"id": gid, "ok": ok}))["bulkAction"]  # type: ignore[no-any-return]


async def test_add_then_remove_tags_over_a_query_with_each_orders_outcome(
    api: Api, tenant: Tenant, db: Database, settings: Settings
) -> None:
    orders = await api.import_orders(
        tenant,
        *(order_input(tenant, f"#20{index:02d}", tags=["vip"] if index % 2 else []) for index in range(6)),
    )
    started = await start(
        api, tenant.merchant_token, action="ADD_TAGS", query="tag:vip", tags=["priority", "VIP"]
    )
    assert started["userErrors"] == [] and started["bulkAction"]["status"] == "PENDING"
    gid = started["bulkAction"]["id"]
    assert await Worker(db, settings).drain() == 1
    shown = await show(api, tenant.merchant_token, gid)
    assert shown is not None
    assert shown["status"] == "SUCCEEDED" and shown["progress"] == {"done": 3, "total": 3}
    assert shown["requestedBy"] == "staff" and shown["failedCount"] == 0
    assert sorted(
        (r["ok"], r["order"]["number"], tuple(r["order"]["tags"])) for r in shown["results"]["nodes"]
    ) == [
        (True, "#2001", ("vip", "priority")),
        (True, "#2003", ("vip", "priority")),
        (True, "#2005", ("vip", "priority")),
    ]
    untouched = await api.data(tenant.merchant_token, ORDER, {"id": orders[0]["id"]})
    assert untouched["order"]["tags"] == []
    tagged = await api.data(tenant.merchant_token, ORDER, {"id": orders[1]["id"]})
    assert [
        (e["type"], e["actorName"]) for e in tagged["order"]["events"] if e["type"].startswith("tags")
    ] == [("tags_added", "staff")]

    removed = await start(
        api, tenant.merchant_token, action="REMOVE_TAGS", query="tag:priority", tags=["PRIORITY"]
    )
    await Worker(db, settings).drain()
    shown = await show(api, tenant.merchant_token, removed["bulkAction"]["id"])
    assert shown is not None and shown["progress"] == {"done": 3, "total": 3}
    assert all(r["order"]["tags"] == ["vip"] for r in shown["results"]["nodes"])


async def test_cancel_unshipped_proceeds_where_it_can_and_says_why_not_elsewhere(
    api: Api, tenant: Tenant, db: Database, settings: Settings
) -> None:
    orders = await api.import_orders(
        tenant,
        order_input(tenant, "#3001", supplier_status="WAIT_SELLER_SEND_GOODS"),
        order_input(tenant, "#3002", supplier_status="PLACE_ORDER_SUCCESS"),
        order_input(tenant, "#3003", supplier_status="WAIT_BUYER_ACCEPT_GOODS"),
    )
    ids = [order["id"] for order in orders]
    started = await start(
        api,
        tenant.merchant_token,
        action="CANCEL_UNSHIPPED",
        ids=ids,
        reason="CUSTOMER_CANCELLED",
        message="Sorry",
    )
    assert started["userErrors"] == []
    await Worker(db, settings).drain()
    shown = await show(api, tenant.merchant_token, started["bulkAction"]["id"])
    assert shown is not None and shown["progress"] == {"done": 3, "total": 3} and shown["failedCount"] == 1
    failed = await show(api, tenant.merchant_token, started["bulkAction"]["id"], ok=False)
    assert failed is not None
    [refused] = failed["results"]["nodes"]
    assert refused["order"]["number"] == "#3003"
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["orderId"], "NOT_CANCELLABLE")]
    async with db.read() as session:
        requests = (
            await session.execute(select(CancellationRequest.status, CancellationRequest.order_id))
        ).all()
    by_order: dict[int, list[str]] = {}
    for status, order_id in requests:
        by_order.setdefault(order_id, []).append(status.value)
    assert by_order == {
        parse_id(ids[0], "Order"): ["PENDING", "PENDING"],
        parse_id(ids[1], "Order"): ["APPROVED", "APPROVED"],
    }
    cancelled = await api.data(
        tenant.merchant_token, "query($id: ID!) { order(id: $id) { status } }", {"id": ids[1]}
    )
    assert cancelled["order"]["status"] == "CANCELLED"


async def test_a_retried_or_doubled_run_does_each_order_once(
    api: Api, tenant: Tenant, db: Database, settings: Settings
) -> None:
    await api.import_orders(tenant, *(order_input(tenant, f"#40{index:02d}") for index in range(12)))
    started = await start(
        api,
        tenant.merchant_token,
        action="CANCEL_UNSHIPPED",
        query="supplier_status:wait_seller_send_goods",
        reason="DUPLICATE_ORDER",
    )
    pk = parse_id(started["bulkAction"]["id"], "BulkAction")
    assert pk is not None
    ctx = JobContext(database=db, settings=settings, worker_name="test")
    async with db.read() as session:
        bulk = (await session.execute(select(BulkAction).where(BulkAction.id == pk))).scalar_one()
        first_half = list(
            (
                await session.execute(
                    select(Order.id).where(bulk_cases.scope_clause(bulk)).order_by(Order.id).limit(5)
                )
            ).scalars()
        )
    # An attempt that died after its first batch committed, then the job's retry, then a stray second run.
    async with db.write() as session:
        assert (
            await bulk_cases.run_batch(
                session, bulk, first_half, response_time=timedelta(hours=48), now=ctx.clock()
            )
            == 5
        )
    async with db.write() as session:
        assert (
            await bulk_cases.run_batch(
                session, bulk, first_half, response_time=timedelta(hours=48), now=ctx.clock()
            )
            == 0
        )
    finished = await bulk_cases.run_bulk_action(ctx, pk, batch_orders=4)
    assert finished is not None and finished.done == 12 and finished.failed == 0
    assert await bulk_cases.run_bulk_action(ctx, pk) is None  # finished: nothing more to do
    await Worker(db, settings).drain()  # the queued job finds it finished
    async with db.read() as session:
        results = await session.scalar(select(func.count()).select_from(BulkActionResult))
        requests = await session.scalar(select(func.count()).select_from(CancellationRequest))
        asked = await session.scalar(
            select(func.count()).select_from(OrderEvent).where(OrderEvent.type == "cancellation_requested")
        )
    assert (results, requests, asked) == (12, 24, 24)


async def test_export_action_builds_one_export_of_the_matching_orders_with_their_notes(
    api: Api, tenant: Tenant, db: Database, settings: Settings
) -> None:
    orders = await api.import_orders(
        tenant, order_input(tenant, "#5001"), order_input(tenant, "#5002", tags=[])
    )
    note = await api.data(
        tenant.merchant_token,
        """mutation($input: OrderNoteAddInput!) { orderNoteAdd(input: $input) { userErrors { code } } }""",
        {"input": {"orderId": orders[0]["id"], "body": "Gift wrap, please"}},
    )
    assert note["orderNoteAdd"]["userErrors"] == []
    started = await start(api, tenant.merchant_token, action="EXPORT", query="tag:vip", format="CSV")
    assert started["userErrors"] == []
    await Worker(db, settings).drain()
    shown = await show(api, tenant.merchant_token, started["bulkAction"]["id"])
    assert (
        shown is not None and shown["status"] == "SUCCEEDED" and shown["progress"] == {"done": 1, "total": 1}
    )
    assert shown["export"]["status"] == "SUCCEEDED"
    files = list((settings.export_dir).glob("*.csv"))
    assert len(files) == 1
    text = files[0].read_text("utf-8-sig")
    assert "#5001" in text and "#5002" not in text and "[staff] staff: Gift wrap, please" in text


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"action": "ADD_TAGS", "tags": ["x"]}, ["query"], "REQUIRED"),
        ({"action": "ADD_TAGS", "query": "tag:(", "tags": ["x"]}, ["query"], "INVALID_QUERY"),
        ({"action": "ADD_TAGS", "query": "tag:vip"}, ["tags"], "REQUIRED"),
        ({"action": "ADD_TAGS", "query": "tag:vip", "tags": ["a,b"]}, ["tags", "0"], "INVALID"),
        ({"action": "REMOVE_TAGS", "query": "tag:vip", "tags": ["x" * 41]}, ["tags", "0"], "INVALID"),
        ({"action": "CANCEL_UNSHIPPED", "query": "tag:vip"}, ["reason"], "REQUIRED"),
        ({"action": "CANCEL_UNSHIPPED", "query": "tag:vip", "reason": "OTHER"}, ["message"], "REQUIRED"),
        ({"action": "EXPORT", "query": "tag:vip", "email": "not-an-email"}, ["email"], "INVALID"),
        ({"action": "EXPORT", "ids": []}, ["ids"], "REQUIRED"),
        ({"action": "EXPORT", "ids": ["gid://dropdesk/Order/999999"]}, ["ids", "0"], "NOT_FOUND"),
        ({"action": "EXPORT", "ids": ["gid://dropdesk/Shop/1"]}, ["ids", "0"], "INVALID"),
    ],
)
async def test_refusals(
    api: Api, tenant: Tenant, db: Database, fields: dict[str, Any], field: list[str], code: str
) -> None:
    payload = await start(api, tenant.merchant_token, **fields)
    assert payload["bulkAction"] is None
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(field, code)]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(BulkAction)) == 0


async def test_tenancy_and_scopes(
    api: Api, tenant: Tenant, other_tenant: Tenant, db: Database, settings: Settings
) -> None:
    [mine] = await api.import_orders(tenant, order_input(tenant, "#6001"))
    [theirs] = await api.import_orders(other_tenant, order_input(other_tenant, "#6001"))
    # Another shop's order ids are unknown ids; a query only ever reaches the shop's own orders.
    refused = await start(api, tenant.merchant_token, action="ADD_TAGS", ids=[theirs["id"]], tags=["x"])
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["ids", "0"], "NOT_FOUND")]
    started = await start(api, tenant.merchant_token, action="ADD_TAGS", query="number:6001", tags=["mine"])
    await Worker(db, settings).drain()
    gid = started["bulkAction"]["id"]
    assert await show(api, other_tenant.merchant_token, gid) is None
    other = await api.data(other_tenant.merchant_token, ORDER, {"id": theirs["id"]})
    assert other["order"]["tags"] == ["vip"]
    own = await api.data(tenant.merchant_token, ORDER, {"id": mine["id"]})
    assert own["order"]["tags"] == ["vip", "mine"]
    for token in (tenant.readonly_token, tenant.supplier_tokens[0]):
        body = await api.gql(
            token, START, {"input": {"action": "ADD_TAGS", "query": "tag:vip", "tags": ["x"]}}
        )
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api.gql(tenant.supplier_tokens[0], SHOW, {"id": gid})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_query_that_no_longer_parses_fails_the_action_with_the_parse_error(
    api: Api, tenant: Tenant, db: Database, settings: Settings
) -> None:
    await api.import_orders(tenant, order_input(tenant, "#6101"))
    started = await start(api, tenant.merchant_token, action="ADD_TAGS", query="tag:vip", tags=["x"])
    pk = parse_id(started["bulkAction"]["id"], "BulkAction")
    async with db.write() as session:  # as if the search syntax had dropped a value since
        await session.execute(update(BulkAction).where(BulkAction.id == pk).values(query="has:gift_card"))
    assert await Worker(db, settings).drain() == 1  # no retries: they could not help
    shown = (
        await api.data(
            tenant.merchant_token,
            "query($id: ID!) { bulkAction(id: $id) { status error } }",
            {"id": started["bulkAction"]["id"]},
        )
    )["bulkAction"]
    assert shown["status"] == "FAILED" and "unknown value 'gift_card'" in shown["error"]
    order = (await api.data(tenant.merchant_token, "{ orders(first: 1) { nodes { tags } } }"))["orders"][
        "nodes"
    ][0]
    assert order["tags"] == ["vip"]
