"""Races over real HTTP on refunds, returns and returned stock of one order: the rows afterwards add up.

Each request has its own connection and transaction under uvicorn, as in production; on PostgreSQL the
requests really overlap, and the order row lock is what keeps the sums within bounds.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import FinancialStatus, Order, OrderEvent, Refund, ReturnedStock, ReturnLine, ShopPolicy
from schema.ids import parse_id
from tests.api import test_cancellation_races as races
from tests.api.test_returns import (
    APPROVE,
    POLICIES_UPDATE,
    RECEIVE,
    REFUND,
    REQUEST,
    STOCK_USE,
    set_policies,
    shipped_order,
)
from tests.factories import Api, Tenant

RACERS = 10
# The app under uvicorn and a client for it, shared with the cancellation races.
base_url = races.base_url
client = races.client
graphql = races.graphql


@pytest.mark.parametrize("amounts", [("30.00", "25.00"), ("49.99", "0.01")])
async def test_two_refunds_whose_sum_exceeds_refundable_one_wins(
    api: Api, client: httpx.AsyncClient, db: Database, tenant: Tenant, amounts: tuple[str, str]
) -> None:
    order_id, _ = await shipped_order(api, tenant)  # total 49.99
    if amounts[1] == "0.01":
        # Bring the refundable amount down to exactly the first refund, so the second is one cent too many.
        first = await graphql(
            client, tenant.merchant_token, REFUND, {"input": {"orderId": order_id, "amount": "0.01"}}
        )
        assert first["refundCreate"]["userErrors"] == []
        amounts = ("49.98", "0.01")
    payloads = await asyncio.gather(
        *(
            graphql(client, tenant.merchant_token, REFUND, {"input": {"orderId": order_id, "amount": amount}})
            for amount in amounts
        )
    )
    results = [payload["refundCreate"] for payload in payloads]
    winners = [r for r in results if not r["userErrors"]]
    losers = [r for r in results if r["userErrors"]]
    assert len(winners) == 1 and len(losers) == 1, results
    assert [e["code"] for e in losers[0]["userErrors"]] == ["EXCEEDS_REFUNDABLE_AMOUNT"]
    assert losers[0]["refund"] is None

    pk = parse_id(order_id, "Order")
    async with db.read() as session:
        refunded = await session.scalar(select(func.sum(Refund.amount)).where(Refund.order_id == pk))
        count = await session.scalar(select(func.count()).select_from(Refund).where(Refund.order_id == pk))
        order = await session.get(Order, pk)
        events = await session.scalar(
            select(func.count())
            .select_from(OrderEvent)
            .where(OrderEvent.order_id == pk, OrderEvent.type == "refund_created")
        )
    assert order is not None
    assert refunded is not None and refunded <= Decimal("49.99")
    assert count == events == (2 if amounts[1] == "0.01" else 1)
    expected = (
        FinancialStatus.REFUNDED if refunded == Decimal("49.99") else FinancialStatus.PARTIALLY_REFUNDED
    )
    assert order.financial_status is expected


async def test_many_refunds_never_pass_the_total(
    api: Api, client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    order_id, _ = await shipped_order(api, tenant)  # total 49.99: at most 4 refunds of 10.00 fit
    payloads = await asyncio.gather(
        *(
            graphql(
                client, tenant.merchant_token, REFUND, {"input": {"orderId": order_id, "amount": "10.00"}}
            )
            for _ in range(RACERS)
        )
    )
    results = [payload["refundCreate"] for payload in payloads]
    assert len([r for r in results if not r["userErrors"]]) == 4, results
    assert {e["code"] for r in results for e in r["userErrors"]} == {"EXCEEDS_REFUNDABLE_AMOUNT"}
    async with db.read() as session:
        total = await session.scalar(
            select(func.sum(Refund.amount)).where(Refund.order_id == parse_id(order_id, "Order"))
        )
    assert total == Decimal("40.00")


async def test_concurrent_returns_never_exceed_what_was_ordered(
    api: Api, client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    order_id, [case_line, _] = await shipped_order(api, tenant)  # 2 phone cases ordered
    variables = {
        "input": {
            "orderId": order_id,
            "lines": [{"orderLineId": case_line, "quantity": 1, "reason": "UNWANTED"}],
        }
    }
    payloads = await asyncio.gather(
        *(graphql(client, tenant.merchant_token, REQUEST, variables) for _ in range(RACERS))
    )
    results = [payload["returnRequest"] for payload in payloads]
    assert len([r for r in results if not r["userErrors"]]) == 2, results
    assert {e["code"] for r in results for e in r["userErrors"]} == {"EXCEEDS_RETURNABLE_QUANTITY"}
    async with db.read() as session:
        held = await session.scalar(
            select(func.sum(ReturnLine.quantity)).where(
                ReturnLine.order_line_id == parse_id(case_line, "OrderLine")
            )
        )
    assert held == 2


async def test_concurrent_stock_use_takes_each_unit_once(
    api: Api, client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    await set_policies(api, tenant)
    order_id, [case_line, _] = await shipped_order(api, tenant)
    token = tenant.merchant_token
    requested = await graphql(
        client,
        token,
        REQUEST,
        {
            "input": {
                "orderId": order_id,
                "lines": [{"orderLineId": case_line, "quantity": 2, "reason": "STYLE"}],
            }
        },
    )
    ret = requested["returnRequest"]["return"]
    await graphql(client, token, APPROVE, {"input": {"id": ret["id"]}})
    line_id = ret["lines"][0]["id"]
    # Two receipts racing on one SKU both land in the stock row (an upsert, not read-then-insert).
    receipts = await asyncio.gather(
        *(
            graphql(
                client,
                token,
                RECEIVE,
                {
                    "input": {
                        "id": ret["id"],
                        "lines": [{"returnLineId": line_id, "quantity": 1, "disposition": "RESTOCK"}],
                    }
                },
            )
            for _ in range(2)
        )
    )
    assert all(r["returnReceive"]["userErrors"] == [] for r in receipts)
    use = {"input": {"sku": "CASE-#3001", "quantity": 1, "orderId": order_id}}
    payloads = await asyncio.gather(*(graphql(client, token, STOCK_USE, use) for _ in range(RACERS)))
    results = [payload["returnedStockUse"] for payload in payloads]
    assert len([r for r in results if not r["userErrors"]]) == 2, results
    assert {e["code"] for r in results for e in r["userErrors"]} == {"INSUFFICIENT_RETURNED_STOCK"}
    async with db.read() as session:
        rows = list(await session.scalars(select(ReturnedStock).where(ReturnedStock.sku == "CASE-#3001")))
    assert [(row.condition.value, row.quantity) for row in rows] == [("NEW", 0)]


async def test_concurrent_policy_updates_each_get_their_own_version(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    body = {"input": {"refundPolicy": {"body": "Refunds within 5 days."}}}
    payloads = await asyncio.gather(
        *(graphql(client, tenant.merchant_token, POLICIES_UPDATE, body) for _ in range(RACERS))
    )
    assert all(payload["shopPoliciesUpdate"]["userErrors"] == [] for payload in payloads)
    async with db.read() as session:
        rows = list(await session.scalars(select(ShopPolicy).where(ShopPolicy.shop_id == tenant.shop_id)))
    assert sorted(row.version for row in rows) == list(range(1, RACERS + 1))
    assert [row.version for row in rows if row.superseded_at is None] == [RACERS]
