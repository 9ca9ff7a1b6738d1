"""A page of orders answers its children from what the page resolver loaded; one order answers them through
the DataLoaders item by item. Both paths must give the same answer, however the query is written."""

from __future__ import annotations

from typing import Any

from db.engine import StatementCounter, statement_counter
from tests.factories import Api, Tenant, order_input

ORDER_FIELDS = """
  id number
  lines { title sku quantity unitPrice { amount currencyCode } }
  supplierOrders {
    aliexpressOrderId status
    supplier { name }
    packages { trackingNumber events { status } }
    cancellationRequests { status reason }
  }
"""

# The same selection written four ways: plain, under edges, through a named fragment, through inline fragments.
PAGES = {
    "nodes": f"query($first: Int!) {{ orders(first: $first) {{ nodes {{ {ORDER_FIELDS} }} }} }}",
    "edges": f"query($first: Int!) {{ orders(first: $first) {{ edges {{ node {{ {ORDER_FIELDS} }} }} }} }}",
    "fragment": (
        "query($first: Int!) { orders(first: $first) { nodes { ...Dashboard } } }\n"
        f"fragment Dashboard on Order {{ {ORDER_FIELDS} }}"
    ),
    "inline": (
        "query($first: Int!) { orders(first: $first) { nodes { id number ... on Order { lines { title sku "
        "quantity unitPrice { amount currencyCode } } } supplierOrders { aliexpressOrderId status "
        "... on SupplierOrder { supplier { name } packages { trackingNumber events { status } } "
        "cancellationRequests { status reason } } } } } }"
    ),
}
ONE = f"query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"
REQUEST_CANCELLATION = """
mutation($id: ID!) {
  cancellationRequestCreate(input: {supplierOrderId: $id, reason: CUSTOMER_CANCELLED}) { userErrors { code } }
}
"""


def _nodes(data: dict[str, Any]) -> list[dict[str, Any]]:
    connection = data["orders"]
    return connection["nodes"] if "nodes" in connection else [edge["node"] for edge in connection["edges"]]


async def _counted(api: Api, token: str, query: str, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
    counter = StatementCounter()
    reset = statement_counter.set(counter)
    try:
        data = await api.data(token, query, variables)
    finally:
        statement_counter.reset(reset)
    return data, counter.count


async def test_a_page_answers_as_its_orders_do_one_by_one(api: Api, tenant: Tenant) -> None:
    orders = []
    for n in range(1, 13):
        order = order_input(tenant, f"#{3000 + n}")
        for so in order["supplierOrders"][: n % 2]:
            so["packages"] = [
                {
                    "trackingNumber": f"LP{n}",
                    "events": [{"time": "2026-11-01T10:00:00Z", "status": "accepted"}],
                }
            ]
        orders.append(order)
    imported = await api.import_orders(tenant, *orders)
    token = tenant.merchant_token
    some = await api.data(token, PAGES["nodes"], {"first": 3})
    supplier_order_id = imported[0]["supplierOrders"][0]["id"]
    answer = await api.data(token, REQUEST_CANCELLATION, {"id": supplier_order_id})
    assert answer["cancellationRequestCreate"]["userErrors"] == []
    assert len(_nodes(some)) == 3

    one_by_one = [(await api.data(token, ONE, {"id": order["id"]}))["order"] for order in imported]
    expected = sorted(one_by_one, key=lambda order: order["id"])
    assert any(order["supplierOrders"][0]["cancellationRequests"] for order in expected)
    assert any(so["packages"] for order in expected for so in order["supplierOrders"])
    for way, query in PAGES.items():
        small, small_statements = await _counted(api, token, query, {"first": 2})
        page, statements = await _counted(api, token, query, {"first": 12})
        assert sorted(_nodes(page), key=lambda order: order["id"]) == expected, way
        assert len(_nodes(small)) == 2 and statements == small_statements, way
