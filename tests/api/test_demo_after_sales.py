"""The demo's returns, refunds and policies: every status, consistent figures, and the README's examples run."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.engine import Database
from db.models import Base, Order, OrderLine, Refund, Return, ReturnLine
from demo.generator import seed_demo
from domain.figures import financial_status, order_figures
from tests.factories import Api
from tests.test_readme_examples import fresh_demo

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_examples() -> list[str]:
    section = README.read_text().split("## Returns, refunds and policies", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```graphql\n(.*?)```", section, flags=re.S)


async def seeded(db: Database) -> dict[str, str]:
    result = await seed_demo(db, orders=200, seed=1, secret_key="demo-test", now=NOW)
    return result.merchant_tokens


async def test_every_return_status_and_consistent_money(api: Api, db: Database) -> None:
    tokens = await seeded(db)
    async with db.read() as session:
        returns = (await session.scalars(select(Return))).all()
        return_lines = (await session.scalars(select(ReturnLine))).all()
        lines = {line.id: line for line in (await session.scalars(select(OrderLine))).all()}
        orders = (await session.scalars(select(Order))).all()
        figures = await order_figures(session, [order.id for order in orders])
        refunds = (await session.scalars(select(Refund))).all()
    by_shop: dict[int, Counter[str]] = {}
    for row in returns:
        by_shop.setdefault(row.shop_id, Counter())[row.status.value] += 1
    assert len(by_shop) == 2
    for statuses in by_shop.values():
        assert set(statuses) == {"REQUESTED", "APPROVED", "RECEIVED", "CLOSED", "DECLINED", "CANCELED"}
    assert any(row.outside_return_window for row in returns)
    assert all(row.policy_id is not None for row in returns)
    assert all((row.return_address is not None) == (row.approved_at is not None) for row in returns)
    for line in return_lines:
        assert 0 <= line.received_quantity <= line.quantity <= lines[line.order_line_id].quantity
    assert refunds and all(refund.amount > 0 for refund in refunds)
    statuses = Counter(order.financial_status.value for order in orders)
    assert statuses["PARTIALLY_REFUNDED"] >= 2 and statuses["REFUNDED"] >= 2
    for order in orders:
        got = figures[order.id]
        assert got.refunded <= got.collected
        assert financial_status(order.financial_status, got.total, got.refunded) is order.financial_status
        assert order.updated_at <= NOW
    owed = [figures[order.id] for order in orders if figures[order.id].refund_due > 0]
    assert len(owed) == 2 and all(f.refund_due == f.total and f.margin == 0 for f in owed)

    token = next(iter(tokens.values()))
    stock = await api.data(token, "{ returnedStock(first: 50) { nodes { sku condition quantity } } }")
    assert stock["returnedStock"]["nodes"] and all(n["quantity"] > 0 for n in stock["returnedStock"]["nodes"])
    shop = await api.data(token, "{ shop { policies { kind version } policyHistory { kind version } } }")
    assert sorted((p["kind"], p["version"]) for p in shop["shop"]["policies"]) == [
        ("REFUND", 1),
        ("RETURN", 2),
    ]
    assert shop["shop"]["policyHistory"] == [{"kind": "RETURN", "version": 1}]


async def test_same_seed_gives_the_same_returns_and_refunds(db: Database) -> None:
    async def dump() -> list[Any]:
        async with db.read() as session:
            rows = await session.execute(
                select(Order.number, Return.status, Return.outside_return_window, Return.created_at)
                .join(Order, Order.id == Return.order_id)
                .order_by(Order.number, Return.created_at)
            )
            refunds = await session.execute(
                select(Order.number, Refund.amount, Refund.created_at)
                .join(Order, Order.id == Refund.order_id)
                .order_by(Order.number, Refund.created_at)
            )
            return [list(rows), list(refunds)]

    await seeded(db)
    first = await dump()
    async with db.write() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())
    await seeded(db)
    assert await dump() == first and first[0] and first[1]


async def test_readme_examples_run_against_the_demo(api: Api, db: Database) -> None:
    # The README's examples name the first demo shop's ids, numbered from 1 as on a first run.
    token = next(iter((await fresh_demo(db)).merchant_tokens.values()))
    overview, receive_refund_close, pay_owed, request_and_policy = readme_examples()

    data = await api.data(token, overview)
    assert data["returns"]["nodes"] and data["returnedStock"]["nodes"]
    assert all(node["returnAddress"]["address1"] for node in data["returns"]["nodes"])
    assert "30 days" in data["policyDraft"]["body"]
    [owed] = data["owed"]["nodes"]
    assert owed["refundDue"] == owed["total"] and owed["margin"]["amount"] in ("0.00", "0")
    assert data["refunded"]["nodes"]

    # The approved return the example names: receive its items, refund what arrived, close it.
    approved = [node["id"] for node in data["returns"]["nodes"] if node["status"] == "APPROVED"]
    assert f'"{approved[0]}"' in receive_refund_close
    result = await api.data(token, receive_refund_close)
    assert result["returnReceive"]["userErrors"] == []
    assert result["returnReceive"]["return"]["status"] == "RECEIVED"
    assert (
        result["refundCreate"]["userErrors"] == []
        and Decimal(result["refundCreate"]["refund"]["amount"]["amount"]) > 0
    )
    assert result["returnClose"]["return"]["status"] == "CLOSED"

    assert f'"{owed["id"]}"' in pay_owed and f'"{owed["refundDue"]["amount"]}"' in pay_owed
    query = pay_owed
    result = await api.data(token, query)
    assert result["refundCreate"]["userErrors"] == []
    assert result["refundCreate"]["refund"]["order"]["financialStatus"] == "REFUNDED"
    assert Decimal(result["refundCreate"]["refund"]["order"]["refundDue"]["amount"]) == 0
    again = await api.data(token, query)
    assert again["refundCreate"]["userErrors"][0]["code"] == "EXCEEDS_REFUNDABLE_AMOUNT"

    fresh = await api.data(
        token,
        '{ orders(first: 50, query: "status:closed financial_status:paid -has:open_return") '
        "{ nodes { id lines { id } } } }",
    )
    target = fresh["orders"]["nodes"][0]
    assert f'"{target["id"]}"' in request_and_policy and f'"{target["lines"][0]["id"]}"' in request_and_policy
    query = request_and_policy
    result = await api.data(token, query)
    assert (
        result["returnRequest"]["userErrors"] == []
        and result["returnRequest"]["return"]["policy"]["version"] == 2
    )
    assert result["shopPoliciesUpdate"]["userErrors"] == []
    assert {
        (p["kind"], p["version"], p["returnWindowDays"]) for p in result["shopPoliciesUpdate"]["policies"]
    } == {
        ("RETURN", 3, 45),
        ("REFUND", 1, None),
    }
