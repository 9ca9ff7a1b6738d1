"""Signed supplier webhooks: verification, idempotency by webhook-id, and the same rules as GraphQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.api.test_cancellations import create_request, import_order
from tests.factories import Api, Tenant

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # what tests.factories gives every supplier
OTHER_SECRET = "whsec_" + "c2VjcmV0IG9mIHNvbWVib2R5IGVsc2U="

REQUEST = """
query($id: ID!) {
  node(id: $id) {
    ... on CancellationRequest { status messages { author body } supplierOrder { status } }
  }
}
"""
ORDER = "query($id: ID!) { order(id: $id) { events { type actorName } } }"


def signed(
    body: dict[str, Any] | str | bytes,
    *,
    secret: str = SECRET,
    webhook_id: str | None = None,
    at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    raw = raw.encode() if isinstance(raw, str) else raw
    msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, timestamp, raw.decode("utf-8", errors="replace"))
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return raw, headers


async def send(api: Api, supplier_id: int | str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    response = await api.client.post(f"/webhooks/suppliers/{supplier_id}", content=raw, headers=headers)
    assert response.headers["content-type"] == "application/json", response.text
    return response


def decided(request_id: str, decision: str = "APPROVE", message: str | None = "ok") -> dict[str, Any]:
    return {
        "type": "cancellation_request.decided",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"id": request_id, "decision": decision, "message": message},
    }


async def pending_request(api: Api, tenant: Tenant, number: str = "#1001") -> tuple[str, str, str]:
    order_id, [so_id] = await import_order(api, tenant, number)
    request_id = (await create_request(api, tenant, so_id))["cancellationRequest"]["id"]
    return order_id, so_id, request_id


async def test_decision_by_webhook_runs_the_domain_rules(api: Api, tenant: Tenant) -> None:
    order_id, _, request_id = await pending_request(api, tenant)
    response = await send(api, tenant.supplier_ids[0], *signed(decided(request_id, message="cancelled")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["userErrors"] == []
    assert body["cancellationRequest"]["id"] == request_id
    assert body["cancellationRequest"]["status"] == "APPROVED"

    node = (await api.data(tenant.merchant_token, REQUEST, {"id": request_id}))["node"]
    assert node["status"] == "APPROVED"
    assert node["messages"][-1] == {"author": "SUPPLIER", "body": "cancelled"}
    assert node["supplierOrder"]["status"] == "FINISH"
    events = (await api.data(tenant.merchant_token, ORDER, {"id": order_id}))["order"]["events"]
    approved = next(event for event in events if event["type"] == "cancellation_approved")
    assert approved["actorName"].endswith("(webhook)")


async def test_replay_answers_the_first_answer_and_changes_nothing(api: Api, tenant: Tenant) -> None:
    order_id, _, request_id = await pending_request(api, tenant)
    raw, headers = signed(decided(request_id, "REJECT", "no"))
    first = await send(api, tenant.supplier_ids[0], raw, headers)
    assert first.status_code == 200
    events = (await api.data(tenant.merchant_token, ORDER, {"id": order_id}))["order"]["events"]

    replay = await send(api, tenant.supplier_ids[0], raw, headers)
    assert (replay.status_code, replay.json()) == (200, first.json())
    assert replay.headers["dropdesk-webhook-replay"] == "true"
    assert (await api.data(tenant.merchant_token, ORDER, {"id": order_id}))["order"]["events"] == events

    # A refusal is an answer too: replayed as it was first given.
    raw, headers = signed(decided(request_id, "APPROVE"))
    refused = await send(api, tenant.supplier_ids[0], raw, headers)
    assert refused.status_code == 409
    assert refused.json()["userErrors"][0]["code"] == "INVALID_STATE"
    again = await send(api, tenant.supplier_ids[0], raw, headers)
    assert (again.status_code, again.json()) == (409, refused.json())


@pytest.mark.parametrize(
    ("case", "tamper"),
    [
        ("stale", lambda raw, h: {**h, **signed(raw, at=datetime.now(UTC) - timedelta(minutes=6))[1]}),
        ("future", lambda raw, h: {**h, **signed(raw, at=datetime.now(UTC) + timedelta(minutes=6))[1]}),
        ("other secret", lambda raw, h: signed(raw, secret=OTHER_SECRET)[1]),
        ("body changed", lambda raw, h: {**h, "webhook-id": h["webhook-id"] + "x"}),
        ("no signature", lambda raw, h: {k: v for k, v in h.items() if k != "webhook-signature"}),
        ("garbage signature", lambda raw, h: {**h, "webhook-signature": "garbage"}),
        ("bad base64", lambda raw, h: {**h, "webhook-signature": "v1,@@@"}),
        ("bad timestamp", lambda raw, h: {**h, "webhook-timestamp": "yesterday"}),
    ],
)
async def test_unverified_webhooks_are_401(api: Api, tenant: Tenant, case: str, tamper: Any) -> None:
    _, _, request_id = await pending_request(api, tenant)
    raw, headers = signed(decided(request_id))
    response = await send(api, tenant.supplier_ids[0], raw, tamper(raw, headers))
    assert response.status_code == 401, (case, response.text)
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    node = (await api.data(tenant.merchant_token, REQUEST, {"id": request_id}))["node"]
    assert node["status"] == "PENDING"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "MALFORMED"),
        (b"\xff\xfe", 400, "MALFORMED"),
        (b"[1, 2]", 400, "MALFORMED"),
        ({"type": "cancellation_request.decided"}, 400, "MALFORMED"),
        ({"data": {}}, 400, "MALFORMED"),
        ({"type": "cancellation_request.decided", "data": {"decision": "APPROVE"}}, 400, "MALFORMED"),
        ({"type": "cancellation_request.decided", "data": {"id": "x"}}, 400, "MALFORMED"),
        (
            {"type": "cancellation_request.decided", "data": {"id": "x", "decision": "MAYBE"}},
            400,
            "MALFORMED",
        ),
        ({"type": "supplier_order.updated", "data": {"id": "x", "status": "SHIPPED"}}, 400, "MALFORMED"),
        (
            {"type": "supplier_order.updated", "data": {"id": "x", "packages": [{"trackingNumber": 7}]}},
            400,
            "MALFORMED",
        ),
        (
            {
                "type": "supplier_order.updated",
                "data": {"id": "x", "packages": [{"trackingNumber": "LP1", "events": [{"time": "noon"}]}]},
            },
            400,
            "MALFORMED",
        ),
        ({"type": "dispute.opened", "data": {}}, 422, "UNKNOWN_EVENT_TYPE"),
    ],
)
async def test_malformed_and_unknown_bodies(
    api: Api, tenant: Tenant, body: dict[str, Any] | bytes, status: int, code: str
) -> None:
    response = await send(api, tenant.supplier_ids[0], *signed(body))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_unknown_supplier_and_foreign_objects_are_not_found(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    _, _, request_id = await pending_request(api, tenant)
    for supplier in ["999999999", "gid:x", "abc"]:
        response = await send(api, supplier, *signed(decided(request_id)))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    # Supplier 1 of the same shop and a supplier of another shop: the request is not theirs.
    for supplier_id in [tenant.supplier_ids[1], other_tenant.supplier_ids[0]]:
        response = await send(api, supplier_id, *signed(decided(request_id)))
        assert response.status_code == 404
        assert response.json()["userErrors"][0]["code"] == "NOT_FOUND"
    response = await send(api, tenant.supplier_ids[0], *signed(decided("gid://dropdesk/Order/1")))
    assert response.status_code == 422
    assert response.json()["userErrors"][0]["field"] == ["id"]
    assert (
        "expected gid://dropdesk/CancellationRequest/<number>" in response.json()["userErrors"][0]["message"]
    )
    node = (await api.data(tenant.merchant_token, REQUEST, {"id": request_id}))["node"]
    assert node["status"] == "PENDING"


async def test_request_info_without_message_is_422(api: Api, tenant: Tenant) -> None:
    _, _, request_id = await pending_request(api, tenant)
    response = await send(api, tenant.supplier_ids[0], *signed(decided(request_id, "REQUEST_INFO", None)))
    assert response.status_code == 422
    assert response.json()["userErrors"] == [
        {"field": ["message"], "message": "say what information you need", "code": "REQUIRED"}
    ]


async def test_supplier_order_update_by_webhook_ships_and_closes_the_request(
    api: Api, tenant: Tenant
) -> None:
    _, so_id, request_id = await pending_request(api, tenant)
    update = {
        "type": "supplier_order.updated",
        "data": {
            "id": so_id,
            "status": "WAIT_BUYER_ACCEPT_GOODS",
            "packages": [
                {
                    "trackingNumber": "LP00123",
                    "carrier": "Cainiao",
                    "events": [
                        {"time": "2026-11-02T10:00:00+00:00", "status": "accepted", "location": "Shenzhen"}
                    ],
                }
            ],
        },
    }
    response = await send(api, tenant.supplier_ids[0], *signed(update))
    assert response.status_code == 200, response.text
    assert response.json()["supplierOrder"] == {
        "id": so_id,
        "status": "WAIT_BUYER_ACCEPT_GOODS",
        "endReason": None,
    }
    node = (await api.data(tenant.merchant_token, REQUEST, {"id": request_id}))["node"]
    assert node["status"] == "CLOSED"
    assert node["messages"][-1]["author"] == "SYSTEM"

    backwards = {"type": "supplier_order.updated", "data": {"id": so_id, "status": "PLACE_ORDER_SUCCESS"}}
    response = await send(api, tenant.supplier_ids[0], *signed(backwards))
    assert response.status_code == 409
    assert response.json()["userErrors"][0]["code"] == "INVALID_TRANSITION"


async def test_oversized_body_is_413(api: Api, tenant: Tenant) -> None:
    raw, headers = signed({"type": "supplier_order.updated", "data": {"pad": "x" * 300_000}})
    response = await send(api, tenant.supplier_ids[0], raw, headers)
    assert response.status_code == 413


async def test_other_methods_get_a_json_405(api: Api, tenant: Tenant) -> None:
    response = await api.client.get(f"/webhooks/suppliers/{tenant.supplier_ids[0]}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
