"""No N+1: the SQL statements per request do not grow with the page size."""

from __future__ import annotations

from db.engine import StatementCounter, statement_counter
from tests.factories import Api, Tenant, order_input

DEEP_ORDERS = """
query($first: Int!) {
  orders(first: $first) {
    pageInfo { hasNextPage endCursor }
    nodes {
      number total { amount }
      lines { title sku quantity unitPrice { amount } }
      supplierOrders {
        aliexpressOrderId status cost { amount }
        supplier { name aliexpressStoreId }
        packages { trackingNumber carrier events { status } }
      }
      events { type message }
    }
  }
}
"""


async def _count(api: Api, token: str, first: int) -> tuple[int, int]:
    counter = StatementCounter()
    reset = statement_counter.set(counter)
    try:
        data = await api.data(token, DEEP_ORDERS, {"first": first})
    finally:
        statement_counter.reset(reset)
    return counter.count, len(data["orders"]["nodes"])


async def test_statements_do_not_grow_with_page_size(api: Api, tenant: Tenant) -> None:
    orders = []
    for n in range(1, 111):
        order = order_input(tenant, f"#{1000 + n}", supplier_status="WAIT_BUYER_ACCEPT_GOODS")
        for so in order["supplierOrders"]:
            so["packages"] = [
                {
                    "trackingNumber": f"LP{n}{so['aliexpressOrderId']}",
                    "carrier": "Cainiao",
                    "events": [{"time": "2026-11-01T10:00:00Z", "status": "accepted"}],
                }
            ]
        orders.append(order)
    for start in range(0, len(orders), 55):
        await api.import_orders(tenant, *orders[start : start + 55])

    small, small_rows = await _count(api, tenant.merchant_token, 10)
    large, large_rows = await _count(api, tenant.merchant_token, 90)
    assert (small_rows, large_rows) == (10, 90)
    assert small == large
    assert large <= 8


MONEY_AND_RETURNS = """
query($first: Int!) {
  orders(first: $first) {
    nodes {
      number total { amount } refundableAmount { amount } refundDue { amount }
      supplierCost { amount } margin { amount } financialStatus
      returns { status policy { version } lines { quantity orderLine { sku } } receipts { quantity } }
      refunds { amount { amount } lines { quantity amount { amount } } }
    }
  }
}
"""


async def test_money_figures_returns_and_refunds_do_not_grow_with_page_size(api: Api, tenant: Tenant) -> None:
    token = tenant.merchant_token
    orders = [
        order_input(tenant, f"#{2000 + n}", supplier_status="WAIT_BUYER_ACCEPT_GOODS") for n in range(1, 111)
    ]
    for start in range(0, len(orders), 55):
        await api.import_orders(tenant, *orders[start : start + 55])
    ids = await api.data(token, "{ orders(first: 100) { nodes { id lines { id } } } }")
    for node in ids["orders"]["nodes"][::7]:
        variables = {
            "input": {
                "orderId": node["id"],
                "lines": [{"orderLineId": node["lines"][0]["id"], "quantity": 1, "reason": "STYLE"}],
            }
        }
        payload = await api.data(
            token,
            "mutation($input: ReturnRequestInput!) { returnRequest(input: $input) { userErrors { code } } }",
            variables,
        )
        assert payload["returnRequest"]["userErrors"] == []
        variables = {
            "input": {
                "orderId": node["id"],
                "amount": "5",
                "lines": [{"orderLineId": node["lines"][1]["id"], "quantity": 1}],
            }
        }
        payload = await api.data(
            token,
            "mutation($input: RefundCreateInput!) { refundCreate(input: $input) { userErrors { code } } }",
            variables,
        )
        assert payload["refundCreate"]["userErrors"] == []

    async def count(first: int) -> tuple[int, int]:
        counter = StatementCounter()
        reset = statement_counter.set(counter)
        try:
            data = await api.data(token, MONEY_AND_RETURNS, {"first": first})
        finally:
            statement_counter.reset(reset)
        return counter.count, len(data["orders"]["nodes"])

    small, small_rows = await count(10)
    # 60 orders keep the query under the cost limit (15 points an order here).
    large, large_rows = await count(60)
    assert (small_rows, large_rows) == (10, 60)
    assert small == large
    # Token, orders, figures, returns, their lines, order lines, receipts, policies, refunds, refund lines.
    assert large <= 10
