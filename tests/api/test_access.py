"""Authentication and tenancy: no token is a 401, no scope is FORBIDDEN, and nobody sees another's data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.factories import Api, Tenant, order_input

VICTIM_EMAIL = "victim.customer@a.test"


@dataclass
class World:
    victim: Tenant
    other: Tenant
    order_id: str
    supplier_order_ids: list[str]  # [0] is supplier 0's, [1] supplier 1's

    def secrets(self, who: str) -> list[str]:
        if who == "sibling_supplier":
            # Its own supplier order is fine; the other supplier's, the customer and retail prices are not.
            return [VICTIM_EMAIL, "VICTIM-SKU", self.order_id, self.supplier_order_ids[0], "12.50", "20.00"]
        return [VICTIM_EMAIL, "VICTIM-SKU", self.order_id, *self.supplier_order_ids, '"#7001"']


@pytest.fixture
async def world(api: Api, tenant: Tenant, other_tenant: Tenant) -> World:
    victim_order = order_input(tenant, "#7001", customer={"name": "Victim", "email": VICTIM_EMAIL})
    victim_order["lines"][0]["sku"] = "VICTIM-SKU"
    [created] = await api.import_orders(tenant, victim_order)
    await api.import_orders(other_tenant, order_input(other_tenant, "#1001"))
    return World(tenant, other_tenant, created["id"], [so["id"] for so in created["supplierOrders"]])


# (case, who asks, query, variables from the world)
CASES: list[tuple[str, str, str, Any]] = [
    (
        "node order",
        "other_merchant",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": w.order_id},
    ),
    (
        "node supplier order",
        "other_merchant",
        "query($id: ID!) { node(id: $id) { id ... on SupplierOrder { aliexpressOrderId } } }",
        lambda w: {"id": w.supplier_order_ids[0]},
    ),
    (
        "node supplier",
        "other_merchant",
        "query($id: ID!) { node(id: $id) { id ... on Supplier { name } } }",
        lambda w: {"id": w.victim.supplier_gid(0)},
    ),
    (
        "nodes",
        "other_merchant",
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        lambda w: {"ids": [w.order_id, *w.supplier_order_ids, w.victim.supplier_gid(0)]},
    ),
    ("shop", "other_merchant", "{ shop { id name suppliers { id name } } }", lambda w: {}),
    ("suppliers", "other_merchant", "{ suppliers { id name } }", lambda w: {}),
    (
        "orders",
        "other_merchant",
        "{ orders(first: 50) { nodes { id number customer { email } lines { sku } } } }",
        lambda w: {},
    ),
    (
        "orders search",
        "other_merchant",
        "query($q: String) { orders(first: 50, query: $q) { nodes { id number } } }",
        lambda w: {"q": VICTIM_EMAIL},
    ),
    ("ordersCount", "other_merchant", '{ ordersCount(query: "VICTIM-SKU") }', lambda w: {}),
    (
        "order",
        "other_merchant",
        "query($id: ID!) { order(id: $id) { id number } }",
        lambda w: {"id": w.order_id},
    ),
    (
        "supplierOrders",
        "other_merchant",
        "{ supplierOrders(first: 50) { nodes { id aliexpressOrderId } } }",
        lambda w: {},
    ),
    (
        "ordersImport with a foreign supplier",
        "other_merchant",
        """mutation($input: OrdersImportInput!) { ordersImport(input: $input) {
             orders { id } userErrors { field code } } }""",
        lambda w: {
            "input": {
                "orders": [
                    {
                        **order_input(w.other, "#1002"),
                        "lines": [
                            {
                                "title": "x",
                                "quantity": 1,
                                "unitPrice": "1.00",
                                "supplierId": w.victim.supplier_gid(0),
                                "aliexpressOrderId": "999",
                            }
                        ],
                        "supplierOrders": [{"aliexpressOrderId": "999", "cost": "1.00"}],
                    }
                ]
            }
        },
    ),
    (
        "supplierOrderUpdate on a foreign shop's order",
        "other_supplier",
        """mutation($id: ID!) { supplierOrderUpdate(input: {id: $id, status: WAIT_BUYER_ACCEPT_GOODS}) {
             supplierOrder { id } userErrors { code } } }""",
        lambda w: {"id": w.supplier_order_ids[0]},
    ),
    (
        "supplier: orders",
        "sibling_supplier",
        "{ orders(first: 50) { nodes { id customer { email } } } }",
        lambda w: {},
    ),
    (
        "supplier: order",
        "sibling_supplier",
        "query($id: ID!) { order(id: $id) { id } }",
        lambda w: {"id": w.order_id},
    ),
    (
        "supplier: node order",
        "sibling_supplier",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": w.order_id},
    ),
    (
        "supplier: another supplier's order",
        "sibling_supplier",
        "query($id: ID!) { node(id: $id) { id } }",
        lambda w: {"id": w.supplier_order_ids[0]},
    ),
    (
        "supplier: own supplier orders hide prices, customer and other suppliers",
        "sibling_supplier",
        """{ supplierOrders(first: 50) { nodes { id aliexpressOrderId lines { sku unitPrice { amount } }
             order { customer { email } } } } }""",
        lambda w: {},
    ),
    ("supplier: shop", "sibling_supplier", "{ shop { name } }", lambda w: {}),
    ("supplier: suppliers", "sibling_supplier", "{ suppliers { id name } }", lambda w: {}),
    ("supplier: ordersCount", "sibling_supplier", "{ ordersCount }", lambda w: {}),
    (
        "supplier: ordersImport",
        "sibling_supplier",
        """mutation($input: OrdersImportInput!) { ordersImport(input: $input) { userErrors { code } } }""",
        lambda w: {"input": {"orders": [order_input(w.victim, "#7002")]}},
    ),
    (
        "supplier: update another supplier's order",
        "sibling_supplier",
        """mutation($id: ID!) { supplierOrderUpdate(input: {id: $id, status: WAIT_BUYER_ACCEPT_GOODS}) {
             supplierOrder { id status } userErrors { code } } }""",
        lambda w: {"id": w.supplier_order_ids[0]},
    ),
]


def _token(world: World, who: str) -> str:
    return {
        "other_merchant": world.other.merchant_token,
        "other_supplier": world.other.supplier_tokens[0],
        # A supplier of the victim's own shop, asking about the other supplier's order and the merchant's data.
        "sibling_supplier": world.victim.supplier_tokens[1],
    }[who]


@pytest.mark.parametrize(("case", "who", "query", "variables"), CASES, ids=[case[0] for case in CASES])
async def test_foreign_data_never_comes_back(
    api: Api, world: World, case: str, who: str, query: str, variables: Any
) -> None:
    body = await api.gql(_token(world, who), query, variables(world))
    text = json.dumps(body)
    leaked = [secret for secret in world.secrets(who) if secret in text]
    assert leaked == [], f"{case} leaked {leaked}: {text}"
    # Mutations refused for tenancy must not have changed anything.
    order = await api.data(
        world.victim.merchant_token,
        "query($id: ID!) { order(id: $id) { supplierOrders { status } lines { sku } } }",
        {"id": world.order_id},
    )
    assert {so["status"] for so in order["order"]["supplierOrders"]} == {"WAIT_SELLER_SEND_GOODS"}
    assert (await api.data(world.victim.merchant_token, "{ ordersCount }"))["ordersCount"] == 1


async def test_sibling_supplier_sees_only_its_own_supplier_order(api: Api, world: World) -> None:
    body = await api.gql(
        world.victim.supplier_tokens[1],
        "{ supplierOrders(first: 10) { nodes { id lines { sku quantity } } } }",
    )
    assert body["data"]["supplierOrders"]["nodes"] == [
        {"id": world.supplier_order_ids[1], "lines": [{"sku": "CHG-#7001", "quantity": 1}]}
    ]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ddm_not-a-token", "Basic dXNlcjpwYXNz", "ddm_x"])
async def test_missing_or_bad_token_is_401_json(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await api.client.post("/graphql", json={"query": "{ shop { name } }"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_revoked_token_is_401(api: Api, tenant: Tenant) -> None:
    from domain.tokens import authenticate, revoke_token

    database = api.client._transport.app.state.database  # type: ignore[attr-defined]
    async with database.read() as session:
        actor = await authenticate(session, tenant.readonly_token)
    assert actor is not None and actor.token_id is not None
    async with database.write() as session:
        assert await revoke_token(session, actor.token_id)
    response = await api.post(tenant.readonly_token, "{ shop { name } }")
    assert response.status_code == 401


async def test_missing_scope_is_forbidden(api: Api, tenant: Tenant) -> None:
    body = await api.gql(
        tenant.readonly_token,
        """mutation($input: OrdersImportInput!) { ordersImport(input: $input) { userErrors { code } } }""",
        {"input": {"orders": [order_input(tenant, "#1001")]}},
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await api.data(tenant.readonly_token, "{ ordersCount }"))["ordersCount"] == 0


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled plan", "standard executor"])
async def test_a_page_of_orders_built_once_stays_within_each_shop(
    api: Api, world: World, compiled: bool
) -> None:
    # The same document from both merchants in turn: the statement of a page without a search is kept
    # between requests, and must be each shop's own.
    query = (
        "{ orders(first: 5) { nodes { number } } }"
        if compiled
        else "{ orders(first: 5) { nodes { number refundableAmount { amount } } } }"
    )
    for _ in range(2):
        victim = await api.data(world.victim.merchant_token, query)
        other = await api.data(world.other.merchant_token, query)
        assert [node["number"] for node in victim["orders"]["nodes"]] == ["#7001"]
        assert [node["number"] for node in other["orders"]["nodes"]] == ["#1001"]
