"""Orders through the GraphQL API: import, read, paginate, and supplier updates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import Api, Tenant, order_input

ORDERS = """
query Orders($first: Int, $after: String, $last: Int, $before: String, $query: String,
             $sortKey: OrderSortKeys, $reverse: Boolean) {
  orders(first: $first, after: $after, last: $last, before: $before, query: $query,
         sortKey: $sortKey, reverse: $reverse) {
    edges { cursor node { number } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

ORDER = """
query Order($id: ID!) {
  order(id: $id) {
    number status financialStatus tags
    customer { name email }
    subtotal { amount currencyCode } shipping { amount } total { amount }
    supplierCost { amount } margin { amount } refundableAmount { amount }
    lines { title quantity unitPrice { amount } supplierOrder { aliexpressOrderId } }
    supplierOrders { aliexpressOrderId status cost { amount } supplier { name } canRequestCancellation }
    events { type actorKind message }
  }
}
"""


async def test_import_creates_order_with_exact_money(api: Api, tenant: Tenant) -> None:
    [created] = await api.import_orders(tenant, order_input(tenant, "#1001"))
    order = (await api.data(tenant.merchant_token, ORDER, {"id": created["id"]}))["order"]
    assert order["number"] == "#1001"
    assert order["subtotal"] == {"amount": "45.00", "currencyCode": "USD"}
    assert order["shipping"] == {"amount": "4.99"}
    assert order["total"] == {"amount": "49.99"}
    assert order["supplierCost"] == {"amount": "17.10"}
    assert order["margin"] == {"amount": "32.89"}
    assert order["refundableAmount"] == {"amount": "49.99"}
    assert [line["supplierOrder"]["aliexpressOrderId"] for line in order["lines"]] == [
        so["aliexpressOrderId"] for so in order["supplierOrders"]
    ]
    assert len({so["supplier"]["name"] for so in order["supplierOrders"]}) == 2
    assert [event["type"] for event in order["events"]] == ["order_imported"]


async def test_reimport_updates_instead_of_duplicating(api: Api, tenant: Tenant) -> None:
    [first] = await api.import_orders(tenant, order_input(tenant, "#1001"))
    changed = order_input(tenant, "#1001", note="gift wrap", tags=["vip", "gift"])
    changed["lines"][0]["quantity"] = 3
    [second] = await api.import_orders(tenant, changed)
    assert second["id"] == first["id"]
    assert second["total"]["amount"] == "62.49"
    count = await api.data(tenant.merchant_token, "{ ordersCount }")
    assert count == {"ordersCount": 1}
    order = (await api.data(tenant.merchant_token, ORDER, {"id": first["id"]}))["order"]
    assert order["tags"] == ["vip", "gift"]
    assert [event["type"] for event in order["events"]] == ["order_imported", "order_updated"]
    assert len(order["supplierOrders"]) == 2


async def _import_many(api: Api, tenant: Tenant, count: int) -> None:
    orders = [order_input(tenant, f"#{1000 + n}") for n in range(1, count + 1)]
    for start in range(0, count, 50):
        await api.import_orders(tenant, *orders[start : start + 50])


async def _walk(api: Api, token: str, **variables: Any) -> list[str]:
    numbers: list[str] = []
    cursor = None
    backwards = "last" in variables
    while True:
        page_vars = {**variables, ("before" if backwards else "after"): cursor}
        page = (await api.data(token, ORDERS, page_vars))["orders"]
        chunk = [edge["node"]["number"] for edge in page["edges"]]
        numbers = chunk + numbers if backwards else numbers + chunk
        info = page["pageInfo"]
        more = info["hasPreviousPage"] if backwards else info["hasNextPage"]
        if not more:
            return numbers
        cursor = info["startCursor"] if backwards else info["endCursor"]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"first": 4, "sortKey": "NUMBER"}, [f"#{1000 + n}" for n in range(1, 12)]),
        ({"first": 4, "sortKey": "NUMBER", "reverse": True}, [f"#{1000 + n}" for n in range(11, 0, -1)]),
        ({"last": 3, "sortKey": "NUMBER"}, [f"#{1000 + n}" for n in range(1, 12)]),
        ({"first": 5, "sortKey": "CREATED_AT"}, [f"#{1000 + n}" for n in range(1, 12)]),
        ({"first": 2, "sortKey": "TOTAL_PRICE", "query": "number:>1008"}, ["#1009", "#1010", "#1011"]),
    ],
)
async def test_keyset_pagination_walks_every_order_once(
    api: Api, tenant: Tenant, variables: dict[str, Any], expected: list[str]
) -> None:
    await _import_many(api, tenant, 11)
    assert await _walk(api, tenant.merchant_token, **variables) == expected


async def test_page_size_is_capped(api: Api, tenant: Tenant) -> None:
    body = await api.gql(tenant.merchant_token, ORDERS, {"first": 251})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "250" in body["errors"][0]["message"]
    ok = await api.gql(tenant.merchant_token, ORDERS, {"first": 250})
    assert "errors" not in ok


async def test_bad_search_query_says_where_and_why(api: Api, tenant: Tenant) -> None:
    body = await api.gql(tenant.merchant_token, ORDERS, {"first": 5, "query": "status:open colour:red"})
    error = body["errors"][0]
    assert error["extensions"]["position"] == 12
    assert "unknown field 'colour'" in error["message"]


async def test_node_and_nodes_resolve_in_order(api: Api, tenant: Tenant) -> None:
    [created] = await api.import_orders(tenant, order_input(tenant, "#1001"))
    so_id = created["supplierOrders"][0]["id"]
    data = await api.data(
        tenant.merchant_token,
        """query($ids: [ID!]!) { nodes(ids: $ids) { id __typename } }""",
        {"ids": [so_id, created["id"], "gid://dropdesk/Order/999999"]},
    )
    assert data["nodes"] == [
        {"id": so_id, "__typename": "SupplierOrder"},
        {"id": created["id"], "__typename": "Order"},
        None,
    ]
