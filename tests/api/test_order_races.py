"""Races over real HTTP on one store order: re-imports, supplier updates, and imports against decisions.

Each request has its own connection and transaction (uvicorn on a loopback port, as in production). The
assertions read the rows afterwards: one order whose lines, money and supplier orders all come from one
request, packages and tracking events never doubled, and no internal error or spurious refusal on the way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import (
    CancellationRequest,
    Order,
    OrderEvent,
    OrderLine,
    Package,
    SupplierOrder,
    SupplierRefund,
)
from schema.ids import parse_id
from tests.api import test_cancellation_races as races
from tests.api.test_cancellations import CREATE, DECIDE
from tests.api.test_supplier_order_update import UPDATE
from tests.api.test_supplier_webhooks import signed
from tests.factories import IMPORT, Tenant

# The uvicorn server and its client, shared with the cancellation races.
base_url = races.base_url
client = races.client
graphql = races.graphql

NUMBER = "#7001"
RACER_COUNTS = [2, 20]


def variant(tenant: Tenant, index: int, *, status: str = "WAIT_SELLER_SEND_GOODS") -> dict[str, Any]:
    """The same order number as request ``index`` sees it: its own lines, prices, shipping, note and costs."""
    first, second = f"{tenant.shop_id}70011", f"{tenant.shop_id}70012"
    lines = [
        {
            "title": f"Item {index}-{position}",
            "quantity": position + 1,
            "unitPrice": f"{index + 1}.{position:02d}",
            "sku": f"SKU-{index}-{position}",
            "supplierId": tenant.supplier_gid(position % 2),
            "aliexpressOrderId": first if position % 2 == 0 else second,
        }
        for position in range(2 + index % 3)
    ]
    return {
        "number": NUMBER,
        "currencyCode": "USD",
        "customer": {"name": f"Customer {index}", "email": f"c{index}@example.com"},
        "shippingPrice": f"{index % 5}.99",
        "note": f"request {index}",
        "lines": lines,
        "supplierOrders": [
            {"aliexpressOrderId": first, "cost": f"{index}.10", "status": status},
            {"aliexpressOrderId": second, "cost": f"{index}.20", "status": status},
        ],
    }


def single_supplier_variant(tenant: Tenant, index: int, status: str) -> dict[str, Any]:
    """A variant whose lines all go to the first supplier order (the one a cancellation is about)."""
    data = variant(tenant, index, status=status)
    for line in data["lines"]:
        line["supplierId"] = tenant.supplier_gid(0)
        line["aliexpressOrderId"] = data["supplierOrders"][0]["aliexpressOrderId"]
    data["supplierOrders"] = data["supplierOrders"][:1]
    return data


@dataclass
class StoredOrder:
    """What the database holds for one order number, read back after a race."""

    order: Order
    lines: list[OrderLine]
    supplier_orders: list[SupplierOrder]
    events: list[OrderEvent]


async def stored(db: Database, tenant: Tenant, number: str = NUMBER) -> StoredOrder:
    async with db.read() as session:
        [order] = (
            await session.scalars(
                select(Order).where(Order.shop_id == tenant.shop_id, Order.number == number)
            )
        ).all()
        lines = (
            await session.scalars(
                select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.position)
            )
        ).all()
        supplier_orders = (
            await session.scalars(
                select(SupplierOrder)
                .where(SupplierOrder.order_id == order.id)
                .order_by(SupplierOrder.aliexpress_order_id)
            )
        ).all()
        events = (
            await session.scalars(
                select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
            )
        ).all()
    return StoredOrder(order, list(lines), list(supplier_orders), list(events))


def assert_is_variant(found: StoredOrder, sent: dict[str, Any]) -> None:
    """Every figure of the stored order is the one ``sent`` gave, and the derived ones agree with the rows."""
    order = found.order
    assert order.note == sent["note"]
    assert order.customer_name == sent["customer"]["name"]
    assert [(line.title, line.quantity, line.unit_price, line.position) for line in found.lines] == [
        (line["title"], line["quantity"], Decimal(line["unitPrice"]), position)
        for position, line in enumerate(sent["lines"])
    ]
    subtotal = sum((line.unit_price * line.quantity for line in found.lines), Decimal(0))
    assert order.subtotal == subtotal
    assert order.shipping == Decimal(sent["shippingPrice"])
    assert order.total == subtotal + order.shipping
    expected_costs = {so["aliexpressOrderId"]: Decimal(so["cost"]) for so in sent["supplierOrders"]}
    assert {so.aliexpress_order_id: so.cost for so in found.supplier_orders} == expected_costs
    ali_by_pk = {so.id: so.aliexpress_order_id for so in found.supplier_orders}
    assert [ali_by_pk[line.supplier_order_id] for line in found.lines if line.supplier_order_id] == [
        line["aliexpressOrderId"] for line in sent["lines"]
    ]


def sent_by_note(variants: list[dict[str, Any]], note: str | None) -> dict[str, Any]:
    [sent] = [data for data in variants if data["note"] == note]
    return sent


async def import_one(client: httpx.AsyncClient, tenant: Tenant, data: dict[str, Any]) -> dict[str, Any]:
    payload = await graphql(client, tenant.merchant_token, IMPORT, {"input": {"orders": [data]}})
    result: dict[str, Any] = payload["ordersImport"]
    return result


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
@pytest.mark.parametrize("racers", RACER_COUNTS)
async def test_concurrent_reimports_leave_one_consistent_order(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, racers: int, existing: bool
) -> None:
    if existing:
        first = await import_one(client, tenant, variant(tenant, 100))
        assert first["userErrors"] == []
    variants = [variant(tenant, index) for index in range(racers)]

    results = await asyncio.gather(*(import_one(client, tenant, data) for data in variants))

    assert [result["userErrors"] for result in results] == [[]] * racers
    assert len({result["orders"][0]["id"] for result in results}) == 1
    async with db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.shop_id == tenant.shop_id)
        )
        line_count = await session.scalar(select(func.count()).select_from(OrderLine))
    assert count == 1
    found = await stored(db, tenant)
    assert len(found.lines) == line_count  # no line of a losing request left behind
    assert_is_variant(found, sent_by_note(variants, found.order.note))
    types = [event.type for event in found.events]
    imported = 0 if existing else 1
    assert types.count("order_imported") == 1
    assert types.count("order_updated") == racers - imported
    # The last import to commit is the one whose figures the order kept.
    last = [event for event in found.events if event.type in ("order_imported", "order_updated")][-1]
    assert last.data["lines"] == len(found.lines)


@pytest.mark.parametrize("racers", RACER_COUNTS)
async def test_concurrent_imports_claim_an_aliexpress_order_once(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, racers: int
) -> None:
    """Different store orders naming the same AliExpress order: one gets it, the others are told why."""
    shared = f"{tenant.shop_id}99999"
    variants = []
    for index in range(racers):
        data = variant(tenant, index)
        data["number"] = f"#80{index:02d}"
        data["supplierOrders"][0]["aliexpressOrderId"] = shared
        for line in data["lines"][::2]:
            line["aliexpressOrderId"] = shared
        data["supplierOrders"][1]["aliexpressOrderId"] = f"{tenant.shop_id}8{index:02d}2"
        for line in data["lines"][1::2]:
            line["aliexpressOrderId"] = f"{tenant.shop_id}8{index:02d}2"
        variants.append(data)

    results = await asyncio.gather(*(import_one(client, tenant, data) for data in variants))

    winners = [index for index, result in enumerate(results) if not result["userErrors"]]
    assert len(winners) == 1, results
    refusals = [error for result in results for error in result["userErrors"]]
    assert {(error["code"], tuple(error["field"])) for error in refusals} == {
        ("ALREADY_EXISTS", ("orders", "0", "supplierOrders", "0", "aliexpressOrderId"))
    }
    async with db.read() as session:
        numbers = (await session.scalars(select(Order.number).where(Order.shop_id == tenant.shop_id))).all()
        owners = (
            await session.scalars(
                select(SupplierOrder.order_id).where(SupplierOrder.aliexpress_order_id == shared)
            )
        ).all()
    assert numbers == [variants[winners[0]]["number"]]
    assert len(owners) == 1
    assert_is_variant(await stored(db, tenant, numbers[0]), variants[winners[0]])


def shipment(index: int) -> dict[str, Any]:
    """Supplier update ``index``: ships, reports a shared parcel with one scan of its own, and maybe a second."""
    packages: list[dict[str, Any]] = [
        {
            "trackingNumber": "LP-SHARED",
            "carrier": "Cainiao",
            "events": [
                {"time": "2026-11-02T08:00:00+00:00", "status": "accepted"},
                {"time": f"2026-11-03T08:{index:02d}:00+00:00", "status": f"scan {index}"},
            ],
        }
    ]
    if index % 2:
        packages.append(
            {
                "trackingNumber": "LP-SECOND",
                "events": [{"time": "2026-11-02T09:00:00+00:00", "status": "accepted"}],
            }
        )
    return {"status": "WAIT_BUYER_ACCEPT_GOODS", "packages": packages}


@pytest.mark.parametrize("racers", RACER_COUNTS)
async def test_concurrent_supplier_updates_never_double_packages_or_scans(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, racers: int
) -> None:
    [created] = (await import_one(client, tenant, variant(tenant, 1)))["orders"]
    so_gid = created["supplierOrders"][0]["id"]

    async def by_mutation(index: int) -> list[dict[str, Any]]:
        variables = {"input": {"id": so_gid, **shipment(index)}}
        payload = await graphql(client, tenant.supplier_tokens[0], UPDATE, variables)
        errors: list[dict[str, Any]] = payload["supplierOrderUpdate"]["userErrors"]
        return errors

    async def by_webhook(index: int) -> list[dict[str, Any]]:
        body = {"type": "supplier_order.updated", "data": {"id": so_gid, **shipment(index)}}
        raw, headers = signed(body)
        response = await client.post(
            f"/webhooks/suppliers/{tenant.supplier_ids[0]}", content=raw, headers=headers
        )
        assert response.status_code == 200, response.text
        errors: list[dict[str, Any]] = response.json()["userErrors"]
        return errors

    results = await asyncio.gather(
        *(by_webhook(index) if index % 2 else by_mutation(index) for index in range(racers))
    )

    assert results == [[]] * racers
    so_pk = parse_id(so_gid, "SupplierOrder")
    async with db.read() as session:
        packages = (
            await session.scalars(
                select(Package).where(Package.supplier_order_id == so_pk).order_by(Package.tracking_number)
            )
        ).all()
        status = await session.scalar(select(SupplierOrder.status).where(SupplierOrder.id == so_pk))
        timeline = (
            await session.scalars(
                select(OrderEvent.type).where(OrderEvent.supplier_order_id == so_pk).order_by(OrderEvent.id)
            )
        ).all()
    assert status == "WAIT_BUYER_ACCEPT_GOODS"
    assert [package.tracking_number for package in packages] == ["LP-SECOND", "LP-SHARED"]
    second, shared = packages
    assert [event["status"] for event in shared.tracking_events] == [
        "accepted",
        *(f"scan {index}" for index in range(racers)),
    ]
    assert [event["status"] for event in second.tracking_events] == ["accepted"]
    assert timeline.count("supplier_order_status_changed") == 1
    assert timeline.count("package_added") == 2
    # Only a request that brought a scan nobody had reported yet updates the tracking.
    assert timeline.count("tracking_updated") <= racers - 1


async def open_request(client: httpx.AsyncClient, tenant: Tenant) -> tuple[dict[str, Any], str]:
    """An order of one supplier order with a PENDING cancellation request: what was imported, the request."""
    initial = single_supplier_variant(tenant, 100, "WAIT_SELLER_SEND_GOODS")
    [created] = (await import_one(client, tenant, initial))["orders"]
    so_gid = created["supplierOrders"][0]["id"]
    variables = {"input": {"supplierOrderId": so_gid, "reason": "DUPLICATE_ORDER"}}
    opened = (await graphql(client, tenant.merchant_token, CREATE, variables))["cancellationRequestCreate"]
    assert opened["userErrors"] == []
    return initial, opened["cancellationRequest"]["id"]


# What the store reports for the AliExpress order: the request's own IN_CANCEL, or a stale status.
@pytest.mark.parametrize("reported", ["IN_CANCEL", "WAIT_SELLER_SEND_GOODS"])
@pytest.mark.parametrize("decision", ["APPROVE", "REJECT"])
@pytest.mark.parametrize("racers", RACER_COUNTS)
async def test_imports_racing_a_cancellation_decision(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, racers: int, decision: str, reported: str
) -> None:
    initial, request_gid = await open_request(client, tenant)
    variants = [single_supplier_variant(tenant, index, reported) for index in range(racers - 1)]

    async def decide() -> list[dict[str, Any]]:
        variables = {"input": {"id": request_gid, "decision": decision, "message": "done"}}
        payload = await graphql(client, tenant.supplier_tokens[0], DECIDE, variables)
        errors: list[dict[str, Any]] = payload["cancellationRequestDecide"]["userErrors"]
        return errors

    middle = (racers - 1) // 2
    racing = [import_one(client, tenant, data) for data in variants]
    decided, *imports = await asyncio.gather(decide(), *racing[:middle], *racing[middle:])

    assert decided == []
    accepted = [data for data, result in zip(variants, imports, strict=True) if not result["userErrors"]]
    refused = [error for result in imports for error in result["userErrors"]]
    # An import whose status no longer fits the supplier order (before or after the decision) is told so.
    assert {(error["code"], error["field"][-1]) for error in refused} <= {("INVALID_STATE", "status")}
    if decision == "APPROVE" and reported != "IN_CANCEL":
        assert accepted == []  # neither an open request nor a cancelled trade is overwritten
    found = await stored(db, tenant)
    assert_is_variant(found, sent_by_note([initial, *accepted], found.order.note))
    [supplier_order] = found.supplier_orders
    pk = parse_id(request_gid, "CancellationRequest")
    async with db.read() as session:
        request_status = await session.scalar(
            select(CancellationRequest.status).where(CancellationRequest.id == pk)
        )
        refunds = (
            await session.scalars(select(SupplierRefund.amount).where(SupplierRefund.source_id == pk))
        ).all()
    if decision == "APPROVE":
        assert (request_status, supplier_order.status) == ("APPROVED", "FINISH")
        assert supplier_order.end_reason == "cancel_order_close_trade"
        assert found.order.status == "CANCELLED"
        assert refunds == [supplier_order.cost]
    else:
        assert (request_status, supplier_order.status) == ("REJECTED", "WAIT_SELLER_SEND_GOODS")
        assert found.order.status == "OPEN"
        assert refunds == []
    types = [event.type for event in found.events]
    assert types.count("order_updated") == len(accepted)
    assert types.count("cancellation_approved" if decision == "APPROVE" else "cancellation_rejected") == 1


@pytest.mark.parametrize("racers", RACER_COUNTS)
async def test_supplier_orders_of_one_order_finishing_together_close_it_once(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, racers: int
) -> None:
    """Each update sees its siblings' committed state, so the last one to finish closes the store order."""
    ali_ids = [f"{tenant.shop_id}71{index:02d}" for index in range(racers)]
    data = {
        "number": NUMBER,
        "currencyCode": "USD",
        "lines": [
            {
                "title": f"Item {index}",
                "quantity": 1,
                "unitPrice": "5.00",
                "supplierId": tenant.supplier_gid(0),
                "aliexpressOrderId": ali_id,
            }
            for index, ali_id in enumerate(ali_ids)
        ],
        "supplierOrders": [
            {"aliexpressOrderId": ali_id, "cost": "2.00", "status": "WAIT_BUYER_ACCEPT_GOODS"}
            for ali_id in ali_ids
        ],
    }
    [created] = (await import_one(client, tenant, data))["orders"]

    payloads = await asyncio.gather(
        *(
            graphql(
                client, tenant.supplier_tokens[0], UPDATE, {"input": {"id": so["id"], "status": "FINISH"}}
            )
            for so in created["supplierOrders"]
        )
    )

    assert [payload["supplierOrderUpdate"]["userErrors"] for payload in payloads] == [[]] * racers
    found = await stored(db, tenant)
    assert {so.status for so in found.supplier_orders} == {"FINISH"}
    assert found.order.status == "CLOSED"
    types = [event.type for event in found.events]
    assert types.count("supplier_order_status_changed") == racers
    assert types.count("order_closed") == 1
    assert types[-1] == "order_closed"


async def test_a_stale_import_after_an_approval_does_not_reopen_the_trade(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    _, request_gid = await open_request(client, tenant)
    variables = {"input": {"id": request_gid, "decision": "APPROVE"}}
    approved = await graphql(client, tenant.supplier_tokens[0], DECIDE, variables)
    assert approved["cancellationRequestDecide"]["userErrors"] == []

    stale = await import_one(client, tenant, single_supplier_variant(tenant, 1, "WAIT_SELLER_SEND_GOODS"))
    assert [(error["code"], error["field"]) for error in stale["userErrors"]] == [
        ("INVALID_STATE", ["orders", "0", "supplierOrders", "0", "status"])
    ]
    finished = single_supplier_variant(tenant, 2, "FINISH")
    assert (await import_one(client, tenant, finished))["userErrors"] == []

    found = await stored(db, tenant)
    assert_is_variant(found, finished)
    [supplier_order] = found.supplier_orders
    assert (supplier_order.status, supplier_order.end_reason) == ("FINISH", "cancel_order_close_trade")
    assert found.order.status == "CANCELLED"


@pytest.mark.parametrize("racers", RACER_COUNTS)
async def test_imports_racing_a_cancellation_request(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, racers: int
) -> None:
    """The request puts the supplier order in IN_CANCEL; no import that read it before may put it back."""
    initial = single_supplier_variant(tenant, 100, "WAIT_SELLER_SEND_GOODS")
    [created] = (await import_one(client, tenant, initial))["orders"]
    so_gid = created["supplierOrders"][0]["id"]
    variants = [
        single_supplier_variant(tenant, index, "WAIT_SELLER_SEND_GOODS") for index in range(racers - 1)
    ]

    async def request() -> list[dict[str, Any]]:
        variables = {"input": {"supplierOrderId": so_gid, "reason": "DUPLICATE_ORDER"}}
        payload = await graphql(client, tenant.merchant_token, CREATE, variables)
        errors: list[dict[str, Any]] = payload["cancellationRequestCreate"]["userErrors"]
        return errors

    middle = (racers - 1) // 2
    racing = [import_one(client, tenant, data) for data in variants]
    results: list[Any] = await asyncio.gather(*racing[:middle], request(), *racing[middle:])
    assert results[middle] == []  # the request itself
    imports = results[:middle] + results[middle + 1 :]
    accepted = [data for data, result in zip(variants, imports, strict=True) if not result["userErrors"]]
    refused = [error for result in imports for error in result["userErrors"]]
    assert {(error["code"], error["field"][-1]) for error in refused} <= {("INVALID_STATE", "status")}
    found = await stored(db, tenant)
    assert_is_variant(found, sent_by_note([initial, *accepted], found.order.note))
    [supplier_order] = found.supplier_orders
    assert supplier_order.status == "IN_CANCEL"
    async with db.read() as session:
        requests = (
            await session.execute(
                select(CancellationRequest.status, CancellationRequest.open_key).where(
                    CancellationRequest.supplier_order_id == supplier_order.id
                )
            )
        ).all()
    assert [tuple(row) for row in requests] == [("PENDING", supplier_order.id)]
