"""Search over HTTP: hostile queries are clean errors, and the search keys follow every write path."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import Order, OrderLine, Package
from db.models.orders import email_domain, search_key
from db.search import order_filter
from demo.generator import seed_demo
from tests.factories import Api, Tenant, order_input

SEARCH = """
query($query: String) {
  ordersCount(query: $query)
  orders(first: 20, query: $query, sortKey: CREATED_AT, reverse: true) { nodes { number } }
}
"""

UPDATE = """
mutation($input: SupplierOrderUpdateInput!) {
  supplierOrderUpdate(input: $input) { userErrors { field message code } }
}
"""

HOSTILE = [
    ("ana (", 4),
    ("(" * 300 + "ana" + ")" * 300, 10),
    ("-" * 40 + "ana", 10),
    ("NOT " * 40 + "ana", 40),
    ("ana\x00", 3),
    ("customer:\x00x", 9),
    ("ana \ud800", 4),
    ("tracking:\udc00*", 9),
    ("x" * 5000, 1000),
]


@pytest.mark.parametrize(("query", "position"), HOSTILE, ids=[repr(q[:12]) for q, _ in HOSTILE])
async def test_hostile_queries_are_user_errors(api: Api, tenant: Tenant, query: str, position: int) -> None:
    # JSON with \u escapes, as a browser sends a lone surrogate (httpx would refuse to encode it as UTF-8).
    response = await api.client.post(
        "/graphql",
        content=json.dumps({"query": SEARCH, "variables": {"query": query}}, ensure_ascii=True),
        headers={"Authorization": f"Bearer {tenant.merchant_token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None
    codes = {error["extensions"]["code"] for error in body["errors"]}
    assert codes == {"BAD_USER_INPUT"}, body["errors"]
    if "\x00" in query or any(0xD800 <= ord(char) <= 0xDFFF for char in query):
        # Refused at the edge, like unstorable text in any argument; the parser's own refusal (with its
        # position) is tested in tests/db/test_search.py.
        assert all("$query" in error["message"] for error in body["errors"])
    else:
        assert {error["extensions"]["position"] for error in body["errors"]} == {position}
    assert all("Internal server error" not in error["message"] for error in body["errors"])


async def _numbers(api: Api, tenant: Tenant, query: str) -> list[str]:
    data = await api.data(tenant.merchant_token, SEARCH, {"query": query})
    numbers = sorted(node["number"] for node in data["orders"]["nodes"])
    assert data["ordersCount"] == len(numbers)
    return numbers


async def test_search_keys_follow_imports_and_supplier_updates(api: Api, tenant: Tenant) -> None:
    first = order_input(tenant, "#7001", customer={"name": "Zoe Quant", "email": "Zoe@GMail.com"})
    first["lines"][0]["sku"] = "Case-Ünï-01"
    second = order_input(tenant, "#7002", customer={"name": "Max Ray", "email": "max@corp.example"})
    [created, _] = await api.import_orders(tenant, first, second)

    assert await _numbers(api, tenant, "sku:CASE-ünï*") == ["#7001"]
    assert await _numbers(api, tenant, "email:@gmail.com") == ["#7001"]
    assert await _numbers(api, tenant, "email:gmail.com OR email:corp.example") == ["#7001", "#7002"]
    assert await _numbers(api, tenant, "customer:quant") == ["#7001"]
    assert await _numbers(api, tenant, "tracking:LP7*") == []

    # The supplier ships with a tracking number: tracking search sees it at once.
    supplier_order = created["supplierOrders"][0]["id"]
    payload = await api.data(
        tenant.supplier_tokens[0],
        UPDATE,
        {
            "input": {
                "id": supplier_order,
                "status": "WAIT_BUYER_ACCEPT_GOODS",
                "packages": [{"trackingNumber": "LP7000ABC", "carrier": "Cainiao"}],
            }
        },
    )
    assert payload["supplierOrderUpdate"]["userErrors"] == []
    assert await _numbers(api, tenant, "tracking:lp7000abc") == ["#7001"]
    assert await _numbers(api, tenant, "tracking:LP7*") == ["#7001"]
    assert await _numbers(api, tenant, "lp7000") == ["#7001"]

    # Importing the order again with another customer moves every derived key with it.
    again = order_input(tenant, "#7001", customer={"name": "Yan Other", "email": "yan@yahoo.example"})
    again["lines"][0]["sku"] = "NEW-SKU-9"
    again["supplierOrders"][0]["status"] = "WAIT_BUYER_ACCEPT_GOODS"
    again["supplierOrders"][0]["packages"] = [{"trackingNumber": "LP7000ABC"}]
    await api.import_orders(tenant, again)
    assert await _numbers(api, tenant, "email:@gmail.com") == []
    assert await _numbers(api, tenant, "email:yahoo.example") == ["#7001"]
    assert await _numbers(api, tenant, "customer:quant") == []
    assert await _numbers(api, tenant, 'customer:"yan other"') == ["#7001"]
    assert await _numbers(api, tenant, "sku:case*") == ["#7002"]
    assert await _numbers(api, tenant, "sku:new-sku-9") == ["#7001"]


async def test_demo_seeding_fills_the_search_keys(db: Database) -> None:
    seeded = await seed_demo(db, orders=60, secret_key="k", now=datetime(2026, 1, 1, tzinfo=UTC))
    shop_id = next(iter(seeded.shop_ids.values()))
    async with db.read() as session:
        lines = (await session.execute(select(OrderLine.sku, OrderLine.sku_key))).all()
        packages = (await session.execute(select(Package.tracking_number, Package.tracking_key))).all()
        orders = (
            await session.execute(
                select(Order.customer_email, Order.customer_email_domain, Order.customer_name).where(
                    Order.shop_id == shop_id
                )
            )
        ).all()
        assert lines and packages and orders
        assert all(key == search_key(sku) for sku, key in lines)
        assert all(key == search_key(number) for number, key in packages)
        assert all(domain == email_domain(email) for email, domain, _ in orders)

        # The text index (trigram GIN or FTS5) answers exactly what a scan of the names would.
        surname = orders[0][2].split()[-1]
        expected = sum(surname.lower() in name.lower() for _, _, name in orders)
        found = await session.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.shop_id == shop_id, order_filter(f"customer:{surname}", shop_id=shop_id))
        )
        assert found == expected >= 1
