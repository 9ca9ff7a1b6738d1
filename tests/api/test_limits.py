"""Limits on what one request may ask, and errors that never leak internals."""

from __future__ import annotations

import json
import logging

import pytest

from config.logs import JsonFormatter
from db.engine import Database
from db.models import Order
from tests.factories import Api, Tenant


async def test_depth_limit(api: Api, tenant: Tenant) -> None:
    nested = "number"
    for _ in range(10):
        nested = f"supplierOrders {{ order {{ {nested} }} }}"
    deep = "{ orders(first: 1) { nodes { " + nested + " } } }"
    body = await api.gql(tenant.merchant_token, deep)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert body.get("data") is None


async def test_alias_limit(api: Api, tenant: Tenant) -> None:
    aliases = " ".join(f"a{n}: ordersCount" for n in range(31))
    body = await api.gql(tenant.merchant_token, "{ " + aliases + " }")
    assert "aliases" in body["errors"][0]["message"].lower()


async def test_token_limit(api: Api, tenant: Tenant) -> None:
    fields = " ".join("ordersCount" for _ in range(2100))
    body = await api.gql(tenant.merchant_token, "{ " + fields + " }")
    assert "token" in body["errors"][0]["message"].lower()


async def test_batched_operations_are_refused(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(
        "/graphql",
        json=[{"query": "{ ordersCount }"}, {"query": "{ ordersCount }"}],
        headers={"Authorization": f"Bearer {tenant.merchant_token}"},
    )
    assert response.status_code == 400
    assert "batch" in response.text.lower()


@pytest.mark.parametrize(
    ("query", "variables", "phrase"),
    [
        ("query($n: Int) { orders(first: $n) { nodes { number } } }", {"n": "ten"}, "Int cannot represent"),
        ("query($id: ID!) { order(id: $id) { number } }", {}, "to be provided"),
        ("{ orders(first: 1) { nodes { colour } } }", {}, "Cannot query field 'colour'"),
        ("{ ordersCount(query: 5) }", {}, "String cannot represent"),
        (
            "{ orders(first: 1, sortKey: PRICE) { nodes { number } } }",
            {},
            "does not exist in 'OrderSortKeys'",
        ),
        ("{ orders(first: 1) { nodes { number } }", {}, "Syntax Error"),
        ("query($c: String) { orders(after: $c) { nodes { number } } }", {"c": "garbage!"}, "invalid cursor"),
    ],
)
async def test_bad_requests_get_graphql_errors_not_500(
    api: Api, tenant: Tenant, query: str, variables: dict[str, object], phrase: str
) -> None:
    response = await api.post(tenant.merchant_token, query, variables)
    assert response.status_code in (200, 400)
    assert phrase in response.json()["errors"][0]["message"]


async def test_unexpected_errors_are_masked_with_the_request_id_of_the_log(
    api: Api, tenant: Tenant, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    from decimal import Decimal

    async with db.write() as session:
        # A currency the schema cannot represent makes the resolver fail the way a bug would.
        session.add(
            Order(
                shop_id=tenant.shop_id,
                number="#1",
                currency="XXX",
                subtotal=Decimal(1),
                shipping=Decimal(0),
                total=Decimal(1),
            )
        )
    with caplog.at_level(logging.ERROR, logger="dropdesk.graphql"):
        response = await api.post(
            tenant.merchant_token, "{ orders(first: 5) { nodes { number total { amount } } } }"
        )
    error = response.json()["errors"][0]
    request_id = response.headers["x-request-id"]
    assert error["message"] == f"Internal server error (request id {request_id})"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert "KeyError" not in response.text and "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.name == "dropdesk.graphql"]
    logged = json.loads(JsonFormatter().format(record))
    assert logged["request_id"] == request_id
    assert "KeyError" in logged["error"]
