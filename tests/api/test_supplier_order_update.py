"""supplierOrderUpdate: only moves the AliExpress flow allows, packages and tracking, and the timeline."""

from __future__ import annotations

from typing import Any

import pytest

from domain.supplier_orders import TRANSITIONS
from tests.factories import Api, Tenant, order_input

UPDATE = """
mutation($input: SupplierOrderUpdateInput!) {
  supplierOrderUpdate(input: $input) {
    supplierOrder { id status endReason shippedAt packages { trackingNumber carrier events { status } } }
    userErrors { field message code }
  }
}
"""

TIMELINE = "query($id: ID!) { order(id: $id) { status events { type actorKind message } } }"

ALL_MOVES = [(source, target) for source in TRANSITIONS for target in TRANSITIONS if source is not target]


async def _order(api: Api, tenant: Tenant, status: str) -> tuple[str, str]:
    # IN_CANCEL is reached only through a cancellation request, as in real life.
    imported = "WAIT_SELLER_SEND_GOODS" if status == "IN_CANCEL" else status
    order = order_input(tenant, "#3001", supplier_status=imported, split=False)
    [created] = await api.import_orders(tenant, order)
    so_id = created["supplierOrders"][0]["id"]
    if status == "IN_CANCEL":
        requested = await api.data(
            tenant.merchant_token,
            """mutation($id: ID!) { cancellationRequestCreate(input: {supplierOrderId: $id, reason: DUPLICATE_ORDER}) {
                 userErrors { code } } }""",
            {"id": so_id},
        )
        assert requested["cancellationRequestCreate"]["userErrors"] == []
    return created["id"], so_id


@pytest.mark.parametrize(("source", "target"), ALL_MOVES, ids=[f"{s.value}->{t.value}" for s, t in ALL_MOVES])
async def test_every_move_is_allowed_or_refused_as_the_flow_says(
    api: Api, tenant: Tenant, source: object, target: object
) -> None:
    order_id, so_id = await _order(api, tenant, source.value)  # type: ignore[attr-defined]
    data = await api.data(
        tenant.supplier_tokens[0],
        UPDATE,
        {"input": {"id": so_id, "status": target.value}},  # type: ignore[attr-defined]
    )
    payload = data["supplierOrderUpdate"]
    if target in TRANSITIONS[source]:  # type: ignore[index]
        assert payload["userErrors"] == []
        assert payload["supplierOrder"]["status"] == target.value  # type: ignore[attr-defined]
        events = (await api.data(tenant.merchant_token, TIMELINE, {"id": order_id}))["order"]["events"]
        changed = [event for event in events if event["type"] == "supplier_order_status_changed"]
        assert changed[-1]["actorKind"] == "SUPPLIER"
        assert changed[-1]["message"].endswith(f"→ {target.value}")  # type: ignore[attr-defined]
    else:
        assert payload["supplierOrder"] is None
        assert payload["userErrors"][0]["code"] == "INVALID_TRANSITION"
        assert payload["userErrors"][0]["field"] == ["status"]


async def test_shipping_adds_packages_and_tracking_once(api: Api, tenant: Tenant) -> None:
    order_id, so_id = await _order(api, tenant, "WAIT_SELLER_SEND_GOODS")
    package: dict[str, Any] = {
        "trackingNumber": "LP00123456789",
        "carrier": "Cainiao",
        "events": [{"time": "2026-11-02T08:00:00Z", "status": "accepted", "location": "Shenzhen"}],
    }
    shipped = await api.data(
        tenant.supplier_tokens[0],
        UPDATE,
        {"input": {"id": so_id, "status": "WAIT_BUYER_ACCEPT_GOODS", "packages": [package]}},
    )
    so = shipped["supplierOrderUpdate"]["supplierOrder"]
    assert so["shippedAt"] is not None
    assert so["packages"] == [
        {"trackingNumber": "LP00123456789", "carrier": "Cainiao", "events": [{"status": "accepted"}]}
    ]
    package["events"].append({"time": "2026-11-04T08:00:00Z", "status": "in_transit"})
    again = await api.data(tenant.supplier_tokens[0], UPDATE, {"input": {"id": so_id, "packages": [package]}})
    events = again["supplierOrderUpdate"]["supplierOrder"]["packages"][0]["events"]
    assert [event["status"] for event in events] == ["accepted", "in_transit"]
    timeline = (await api.data(tenant.merchant_token, TIMELINE, {"id": order_id}))["order"]["events"]
    assert [event["type"] for event in timeline] == [
        "order_imported",
        "supplier_order_status_changed",
        "package_added",
        "tracking_updated",
    ]
    found = await api.data(
        tenant.merchant_token, '{ orders(first: 5, query: "tracking:LP00123456789") { nodes { id } } }'
    )
    assert found["orders"]["nodes"] == [{"id": order_id}]


async def test_finishing_every_supplier_order_closes_the_store_order(api: Api, tenant: Tenant) -> None:
    order_id, so_id = await _order(api, tenant, "WAIT_BUYER_ACCEPT_GOODS")
    data = await api.data(tenant.supplier_tokens[0], UPDATE, {"input": {"id": so_id, "status": "FINISH"}})
    assert data["supplierOrderUpdate"]["supplierOrder"]["endReason"] == "buyer_accept_goods"
    order = (await api.data(tenant.merchant_token, TIMELINE, {"id": order_id}))["order"]
    assert order["status"] == "CLOSED"
    assert order["events"][-1]["type"] == "order_closed"


@pytest.mark.parametrize(
    ("status", "change", "field", "code"),
    [
        ("WAIT_SELLER_SEND_GOODS", {"packages": [{"trackingNumber": "LP1"}]}, ["packages"], "INVALID_STATE"),
        ("WAIT_BUYER_ACCEPT_GOODS", {}, ["status"], "REQUIRED"),
        ("WAIT_BUYER_ACCEPT_GOODS", {"status": "FINISH", "endReason": "because"}, ["endReason"], "INVALID"),
        (
            "WAIT_BUYER_ACCEPT_GOODS",
            {"packages": [{"trackingNumber": ""}]},
            ["packages", "0", "trackingNumber"],
            "REQUIRED",
        ),
    ],
)
async def test_bad_updates_are_refused(
    api: Api, tenant: Tenant, status: str, change: dict[str, object], field: list[str], code: str
) -> None:
    _, so_id = await _order(api, tenant, status)
    data = await api.data(tenant.supplier_tokens[0], UPDATE, {"input": {"id": so_id, **change}})
    assert data["supplierOrderUpdate"]["userErrors"][0]["field"] == field
    assert data["supplierOrderUpdate"]["userErrors"][0]["code"] == code


async def test_merchant_cannot_update_a_supplier_order(api: Api, tenant: Tenant) -> None:
    _, so_id = await _order(api, tenant, "WAIT_SELLER_SEND_GOODS")
    body = await api.gql(
        tenant.merchant_token, UPDATE, {"input": {"id": so_id, "status": "WAIT_BUYER_ACCEPT_GOODS"}}
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
