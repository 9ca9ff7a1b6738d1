"""What a person reads: money with the currency's decimals, times at one precision, bad values with their path."""

from __future__ import annotations

import re
from decimal import Decimal

from domain.money import format_money
from tests.factories import Api, Tenant, order_input

SECONDS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")

TIMELINE = """
query($id: ID!) {
  order(id: $id) {
    createdAt updatedAt
    events { message createdAt data }
    supplierOrders { createdAt updatedAt paidAt finishedAt packages { events { time } } }
  }
}
"""


def test_money_is_written_with_the_currencys_decimals() -> None:
    assert format_money(Decimal("48.9"), "USD") == "48.90 USD"
    assert format_money(Decimal("10"), "EUR") == "10.00 EUR"
    assert format_money(Decimal("1200"), "JPY") == "1200 JPY"
    assert format_money(Decimal("5.1"), "KWD") == "5.100 KWD"


async def test_timeline_money_and_times_read_the_same_everywhere(api: Api, tenant: Tenant) -> None:
    data = order_input(tenant, "#1001", split=False)
    data["supplierOrders"][0]["cost"] = "48.9"
    data["supplierOrders"][0]["packages"] = [
        {
            "trackingNumber": "LP1",
            "events": [{"time": "2026-11-02T10:00:00.123456+02:00", "status": "accepted"}],
        }
    ]
    [order] = await api.import_orders(tenant, data)
    supplier_order_id = order["supplierOrders"][0]["id"]
    created = await api.data(
        tenant.merchant_token,
        "mutation($id: ID!) { cancellationRequestCreate(input: {supplierOrderId: $id, reason: DUPLICATE_ORDER}) "
        "{ cancellationRequest { id } userErrors { code } } }",
        {"id": supplier_order_id},
    )
    request_id = created["cancellationRequestCreate"]["cancellationRequest"]["id"]
    decided = await api.data(
        tenant.supplier_tokens[0],
        "mutation($id: ID!) { cancellationRequestDecide(input: {id: $id, decision: APPROVE}) "
        "{ userErrors { code } } }",
        {"id": request_id},
    )
    assert decided["cancellationRequestDecide"]["userErrors"] == []

    timeline = (await api.data(tenant.merchant_token, TIMELINE, {"id": order["id"]}))["order"]
    refunds = [event for event in timeline["events"] if event["message"].startswith("Supplier refund")]
    assert [event["message"] for event in refunds] == [
        f"Supplier refund of 48.90 USD recorded for AliExpress order {tenant.shop_id}10011"
    ]
    assert refunds[0]["data"]["amount"] == "48.90"
    [supplier_order] = timeline["supplierOrders"]
    times = [
        timeline["createdAt"],
        timeline["updatedAt"],
        *(event["createdAt"] for event in timeline["events"]),
        *(supplier_order[key] for key in ("createdAt", "updatedAt", "finishedAt")),
    ]
    assert len(times) >= 8 and all(SECONDS_UTC.match(moment) for moment in times), times
    assert supplier_order["packages"][0]["events"] == [{"time": "2026-11-02T08:00:00+00:00"}]


async def test_a_bad_literal_deep_in_an_input_names_its_path(api: Api, tenant: Tenant) -> None:
    body = await api.gql(
        tenant.merchant_token,
        'mutation { ordersImport(input: {orders: [{number: "#1", currencyCode: "USD", lines: ['
        '{title: "a", quantity: 1, unitPrice: "1.00"}, {title: "b", quantity: 1, unitPrice: "12,50"}]}]}) '
        "{ userErrors { field } } }",
    )
    [error] = body["errors"]
    assert (
        error["message"]
        == 'Value cannot represent a Decimal: "12,50" (at input.orders[0].lines[1].unitPrice)'
    )
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "field": ["input", "orders", "0", "lines", "1", "unitPrice"],
    }
    variables = await api.gql(
        tenant.merchant_token,
        "query($first: Int) { orders(first: $first) { nodes { id } } }",
        {"first": "ten"},
    )
    assert "$first" in variables["errors"][0]["message"]
    literal = await api.gql(tenant.merchant_token, '{ orders(first: "ten") { nodes { id } } }')
    assert literal["errors"][0]["extensions"]["field"] == ["first"]
