"""Builders for test data, going through the same domain code as the API wherever one exists."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from db.engine import Database
from db.models import Shop, Supplier, TokenKind
from domain.actors import Scope
from domain.tokens import issue_token
from schema.ids import to_global_id

_counter = itertools.count(1)


@dataclass
class Tenant:
    shop_id: int
    supplier_ids: list[int]
    merchant_token: str
    supplier_tokens: list[str]
    readonly_token: str

    def supplier_gid(self, index: int = 0) -> str:
        return to_global_id("Supplier", self.supplier_ids[index])


async def make_tenant(database: Database, *, suppliers: int = 2, currency: str = "USD") -> Tenant:
    n = next(_counter)
    async with database.write() as session:
        shop = Shop(name=f"Shop {n}", currency=currency, email=f"owner{n}@shop.test")
        session.add(shop)
        await session.flush()
        shop.shop_id = shop.id
        supplier_rows = []
        for index in range(suppliers):
            supplier = Supplier(
                shop_id=shop.id,
                name=f"Supplier {n}-{index}",
                aliexpress_store_id=f"{n}{index:03d}",
                webhook_secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
            session.add(supplier)
            supplier_rows.append(supplier)
        await session.flush()
        merchant = issue_token(
            session, kind=TokenKind.MERCHANT, name="staff", shop_id=shop.id, scopes=Scope.ALL
        )
        readonly = issue_token(
            session, kind=TokenKind.MERCHANT, name="reader", shop_id=shop.id, scopes=[Scope.READ_ORDERS]
        )
        supplier_tokens = [
            issue_token(session, kind=TokenKind.SUPPLIER, name=f"supplier {s.name}", supplier=s).raw
            for s in supplier_rows
        ]
    return Tenant(
        shop_id=shop.id,
        supplier_ids=[s.id for s in supplier_rows],
        merchant_token=merchant.raw,
        supplier_tokens=supplier_tokens,
        readonly_token=readonly.raw,
    )


def order_input(
    tenant: Tenant,
    number: str,
    *,
    supplier_status: str = "WAIT_SELLER_SEND_GOODS",
    split: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """A store order of two lines, each fulfilled by a different supplier when ``split``."""
    second = 1 if split and len(tenant.supplier_ids) > 1 else 0
    data: dict[str, Any] = {
        "number": number,
        "currencyCode": "USD",
        "customer": {"name": "Ana Lopez", "email": "ana@example.com", "phone": "+34600000000"},
        "shippingAddress": {
            "name": "Ana Lopez",
            "address1": "Calle 1",
            "city": "Madrid",
            "countryCode": "ES",
        },
        "shippingPrice": "4.99",
        "tags": ["vip"],
        "lines": [
            {
                "title": "Phone case",
                "quantity": 2,
                "unitPrice": "12.50",
                "sku": f"CASE-{number}",
                "supplierId": tenant.supplier_gid(0),
                "aliexpressOrderId": f"{tenant.shop_id}{number.strip('#')}1",
            },
            {
                "title": "Charger",
                "quantity": 1,
                "unitPrice": "20.00",
                "sku": f"CHG-{number}",
                "supplierId": tenant.supplier_gid(second),
                "aliexpressOrderId": f"{tenant.shop_id}{number.strip('#')}{2 if second else 1}",
            },
        ],
        "supplierOrders": [
            {
                "aliexpressOrderId": f"{tenant.shop_id}{number.strip('#')}1",
                "cost": "9.10",
                "status": supplier_status,
            }
        ],
    }
    if second:
        data["supplierOrders"].append(
            {
                "aliexpressOrderId": f"{tenant.shop_id}{number.strip('#')}2",
                "cost": "8.00",
                "status": supplier_status,
            }
        )
    data.update(overrides)
    return data


IMPORT = """
mutation Import($input: OrdersImportInput!) {
  ordersImport(input: $input) {
    orders { id number total { amount currencyCode } supplierOrders { id aliexpressOrderId status } }
    userErrors { field message code }
  }
}
"""


class Api:
    """A GraphQL client speaking to the ASGI app in-process."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self, token: str | None, query: str, variables: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def gql(self, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(token, query, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.gql(token, query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def import_orders(self, tenant: Tenant, *orders: dict[str, Any]) -> list[dict[str, Any]]:
        payload = (await self.data(tenant.merchant_token, IMPORT, {"input": {"orders": list(orders)}}))[
            "ordersImport"
        ]
        assert payload["userErrors"] == [], payload["userErrors"]
        result: list[dict[str, Any]] = payload["orders"]
        return result


def money(value: str) -> Decimal:
    return Decimal(value)
