"""Hostile text over real HTTP on every free-text input: each is a 4xx or a clean error naming the field.

NUL characters, lone UTF-16 surrogates (sent as the JSON escape, which json.dumps writes for them), strings
far over any field's limit, and search syntax nested or negated past reason. None may give a 500, and a
refused request writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.models import Order, OrderEvent, SavedSearch
from tests.api.live import served
from tests.factories import IMPORT, Tenant, make_tenant, order_input

# Under the 1 MB body limit, so that the field's own check has to refuse it.
HUGE = "x" * 300_000
ATTACKS = {"nul": "a\x00b", "surrogate": "a\ud800b", "huge": HUGE}


@dataclass(frozen=True)
class Live:
    base: str
    tenant: Tenant
    order_id: str
    supplier_order_id: str

    async def post(self, query: str, variables: dict[str, Any], token: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as client:
            return await client.post(
                "/graphql",
                content=json.dumps({"query": query, "variables": variables}).encode(),
                headers={
                    "Authorization": f"Bearer {token or self.tenant.merchant_token}",
                    "content-type": "application/json",
                },
            )


@pytest.fixture
async def live(db: Database) -> AsyncIterator[Live]:
    tenant = await make_tenant(db)
    app = create_app(replace(load_settings(), database_url=db.url, run_worker_in_server=False), db)
    async with served(app) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            response = await client.post(
                "/graphql",
                json={"query": IMPORT, "variables": {"input": {"orders": [order_input(tenant, "#9001")]}}},
                headers={"Authorization": f"Bearer {tenant.merchant_token}"},
            )
        [order] = response.json()["data"]["ordersImport"]["orders"]
        yield Live(base, tenant, order["id"], order["supplierOrders"][0]["id"])


# (name, document, variables for a text, the field the error must name)
Case = tuple[str, str, Callable[[Live, str], dict[str, Any]], str]
PAYLOAD = "userErrors { field message code }"
CASES: list[Case] = [
    (
        "note body",
        f"mutation($i: OrderNoteAddInput!) {{ orderNoteAdd(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {"i": {"orderId": live.order_id, "body": text}},
        "body",
    ),
    (
        "tag added",
        f"mutation($i: OrderTagsInput!) {{ orderTagsAdd(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {"i": {"id": live.order_id, "tags": [text]}},
        "tags",
    ),
    (
        "tag removed",
        f"mutation($i: OrderTagsInput!) {{ orderTagsRemove(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {"i": {"id": live.order_id, "tags": [text]}},
        "tags",
    ),
    (
        "cancellation message",
        f"mutation($i: CancellationRequestCreateInput!) {{ cancellationRequestCreate(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {
            "i": {"supplierOrderId": live.supplier_order_id, "reason": "OTHER", "message": text}
        },
        "message",
    ),
    (
        "return note",
        f"mutation($i: ReturnRequestInput!) {{ returnRequest(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {"i": {"orderId": live.order_id, "lines": [], "note": text}},
        "note",
    ),
    (
        "refund note",
        f"mutation($i: RefundCreateInput!) {{ refundCreate(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {"i": {"orderId": live.order_id, "amount": "1.00", "note": text}},
        "note",
    ),
    (
        "dispute message",
        f"mutation($i: DisputeOpenInput!) {{ disputeOpen(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {
            "i": {
                "supplierOrderId": live.supplier_order_id,
                "reason": "NOT_RECEIVED",
                "kind": "REFUND_ONLY",
                "requestedAmount": "1.00",
                "message": text,
            }
        },
        "message",
    ),
    (
        "search query",
        "query($query: String!) { orders(first: 5, query: $query) { nodes { id } } }",
        lambda live, text: {"query": text},
        "query",
    ),
    (
        "saved-search name",
        f"mutation($i: SavedSearchCreateInput!) {{ savedSearchCreate(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {"i": {"name": text, "query": "tag:vip"}},
        "name",
    ),
    (
        "saved-search query",
        f"mutation($i: SavedSearchCreateInput!) {{ savedSearchCreate(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {"i": {"name": "mine", "query": text}},
        "query",
    ),
    (
        "bulk action message",
        f"mutation($i: OrdersBulkActionInput!) {{ ordersBulkAction(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {
            "i": {"action": "CANCEL_UNSHIPPED", "ids": [live.order_id], "reason": "OTHER", "message": text}
        },
        "message",
    ),
    (
        "webhook description",
        f"mutation($i: WebhookSubscriptionCreateInput!) {{ webhookSubscriptionCreate(input: $i) {{ {PAYLOAD} }} }}",
        lambda live, text: {
            "i": {"url": "https://hooks.example.com/x", "topics": ["orders/created"], "description": text}
        },
        "description",
    ),
    *[
        (
            f"address {part}",
            IMPORT,
            lambda live, text, part=part: {  # type: ignore[misc]
                "input": {
                    "orders": [
                        order_input(
                            live.tenant,
                            "#9002",
                            shippingAddress={"address1": "Calle 1", "countryCode": "ES", part: text},
                        )
                    ]
                }
            },
            part,
        )
        for part in ("name", "address1", "address2", "city", "province", "zip", "phone")
    ],
    (
        "customer name",
        IMPORT,
        lambda live, text: {
            "input": {
                "orders": [order_input(live.tenant, "#9003", customer={"name": text, "email": "a@b.c"})]
            }
        },
        "name",
    ),
    (
        "order note",
        IMPORT,
        lambda live, text: {"input": {"orders": [order_input(live.tenant, "#9004", note=text)]}},
        "note",
    ),
]


def shipped_with(part: str) -> Callable[[Live, str], dict[str, Any]]:
    """The supplier ships with one package, the text in ``part`` of the package or of its scan."""

    def variables(live: Live, text: str) -> dict[str, Any]:
        event = {"time": "2026-11-02T10:00:00+00:00", "status": "accepted"}
        package: dict[str, Any] = {"trackingNumber": "LP1", "events": [event]}
        (package if part in package or part in ("carrier", "trackingStatus") else event)[part] = text
        return {
            "i": {"id": live.supplier_order_id, "status": "WAIT_BUYER_ACCEPT_GOODS", "packages": [package]}
        }

    return variables


# Sent with the token of the supplier of the order's first supplier order.
SUPPLIER_CASES: list[Case] = [
    (
        f"package {part}",
        f"mutation($i: SupplierOrderUpdateInput!) {{ supplierOrderUpdate(input: $i) {{ {PAYLOAD} }} }}",
        shipped_with(part),
        part,
    )
    for part in ("trackingNumber", "carrier", "trackingStatus", "status", "description", "location")
]


def refusal(response: httpx.Response, field: str) -> str | None:
    """Why the answer is not a clean refusal naming ``field``, or None when it is one."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:300]}"
    if 400 <= response.status_code < 500:
        return None if response.json().get("errors") else f"a {response.status_code} without errors"
    body = response.json()
    messages = [error for error in body.get("errors", [])]
    for payload in (body.get("data") or {}).values():
        if isinstance(payload, dict):
            messages += payload.get("userErrors", [])
    if not messages:
        return f"accepted: {response.text[:300]}"
    named = [m for m in messages if field in json.dumps(m.get("field")) or field in m.get("message", "")]
    codes = {m.get("extensions", {}).get("code") for m in body.get("errors", [])}
    if "INTERNAL_SERVER_ERROR" in codes:
        return f"an internal error: {response.text[:300]}"
    return None if named else f"the error does not name {field!r}: {messages}"


async def rows(db: Database) -> tuple[int, int, int]:
    async with db.read() as session:
        return (
            await session.scalar(select(func.count()).select_from(Order)) or 0,
            await session.scalar(select(func.count()).select_from(OrderEvent)) or 0,
            await session.scalar(select(func.count()).select_from(SavedSearch)) or 0,
        )


@pytest.mark.parametrize("attack", ATTACKS)
async def test_hostile_text_in_every_free_text_input_is_refused_naming_the_field(
    db: Database, live: Live, attack: str
) -> None:
    before = await rows(db)
    failures = []
    for name, document, variables, field in CASES:
        response = await live.post(document, variables(live, ATTACKS[attack]))
        problem = refusal(response, field)
        if problem:
            failures.append(f"{name}: {problem}")
    for name, document, variables, field in SUPPLIER_CASES:
        response = await live.post(document, variables(live, ATTACKS[attack]), live.tenant.supplier_tokens[0])
        problem = refusal(response, field)
        if problem:
            failures.append(f"{name}: {problem}")
    assert failures == []
    assert await rows(db) == before


NESTED_SEARCHES = [
    "(" * 400 + "tag:a" + ")" * 400,
    "(" * 5000 + "tag:a" + ")" * 5000,
    "-" * 900 + "tag:a",
    "NOT " * 200 + "tag:a",
    "(" * 900,
    ")" * 900,
    "tag:a OR " * 100 + "tag:b",
    '"' + "\\" * 900,
    "tag:" + "*" * 900,
]


@pytest.mark.parametrize("query", NESTED_SEARCHES, ids=lambda query: f"{query[:12]}...{len(query)}")
async def test_search_syntax_past_its_limits_is_a_clean_error(db: Database, live: Live, query: str) -> None:
    for name, document, variables, field in CASES:
        if field == "query":
            response = await live.post(document, variables(live, query))
            problem = refusal(response, field)
            assert problem is None, f"{name}: {problem}"


@pytest.mark.parametrize(
    "content",
    [
        b'{"query": "{ shop { name } }", "x": "\xff\xfe"}',
        b"\xc3\x28",
        b'{"query": "mutation { orderNoteAdd(input: {orderId: \\"x\\", body: \\"\xed\xa0\x80\\"}) { userErrors { field } } }"}',
        b"[]",
        b'[{"query": "{ shop { name } }"}]',
        b'"{ shop { name } }"',
        b"null",
        b"1e999999",
        b'{"query": "{ shop { name } }", "variables": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
    ],
    ids=lambda content: f"{content[:16]!r}...{len(content)}",
)
async def test_bodies_that_are_not_a_json_object_of_utf8_are_400(live: Live, content: bytes) -> None:
    async with httpx.AsyncClient(base_url=live.base) as client:
        response = await client.post(
            "/graphql",
            content=content,
            headers={
                "Authorization": f"Bearer {live.tenant.merchant_token}",
                "content-type": "application/json",
            },
        )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("name", "document", "variables", "field"),
    [
        (
            "20,000 tags",
            f"mutation($i: OrderTagsInput!) {{ orderTagsAdd(input: $i) {{ {PAYLOAD} }} }}",
            lambda live: {"i": {"id": live.order_id, "tags": [f"t{n}" for n in range(20_000)]}},
            "tags",
        ),
        (
            "20,000 order ids",
            f"mutation($i: OrdersBulkActionInput!) {{ ordersBulkAction(input: $i) {{ {PAYLOAD} }} }}",
            lambda live: {
                "i": {
                    "action": "ADD_TAGS",
                    "tags": ["x"],
                    "ids": [f"gid://dropdesk/Order/{n}" for n in range(1, 20_001)],
                }
            },
            "ids",
        ),
    ],
)
async def test_lists_far_over_their_limit_are_refused_naming_the_field(
    db: Database,
    live: Live,
    name: str,
    document: str,
    variables: Callable[[Live], dict[str, Any]],
    field: str,
) -> None:
    before = await rows(db)
    problem = refusal(await live.post(document, variables(live)), field)
    assert problem is None, f"{name}: {problem}"
    assert await rows(db) == before
