"""Returns, refunds and policies through GraphQL, as a merchant, a read-only token and a supplier use them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.test_disputes import OPEN, open_input
from tests.factories import Api, Tenant, order_input

POLICIES_UPDATE = """
mutation($input: ShopPoliciesUpdateInput!) {
  shopPoliciesUpdate(input: $input) {
    policies { id kind version body returnWindowDays restockingFeePercent returnShippingPaidBy
               returnAddress { address1 city } effectiveAt supersededAt }
    userErrors { field message code }
  }
}
"""
SHOP_POLICIES = """
{ shop { returnAddress { address1 }
         policies { kind version body }
         policyHistory { kind version supersededAt }
         returnHistory: policyHistory(kind: RETURN) { kind version } } }
"""
DRAFT = "query($kind: PolicyKind!) { policyDraft(kind: $kind) { kind body } }"
RETURN_FIELDS = """
  id status note outsideReturnWindow declineReason declineNote
  returnAddress { address1 city }
  policy { id version returnWindowDays }
  lines { id quantity receivedQuantity reason orderLine { sku } }
  receipts { returnLineId quantity disposition }
  order { number }
"""
REQUEST = f"""
mutation($input: ReturnRequestInput!) {{
  returnRequest(input: $input) {{ return {{ {RETURN_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
APPROVE = f"""
mutation($input: ReturnApproveInput!) {{
  returnApprove(input: $input) {{ return {{ {RETURN_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
DECLINE = f"""
mutation($input: ReturnDeclineInput!) {{
  returnDecline(input: $input) {{ return {{ {RETURN_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
RECEIVE = f"""
mutation($input: ReturnReceiveInput!) {{
  returnReceive(input: $input) {{ return {{ {RETURN_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
CLOSE = f"""
mutation($input: ReturnIdInput!) {{
  returnClose(input: $input) {{ return {{ {RETURN_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
CANCEL = f"""
mutation($input: ReturnIdInput!) {{
  returnCancel(input: $input) {{ return {{ {RETURN_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
STOCK = """
query($sku: String) {
  returnedStock(first: 10, sku: $sku) { nodes { id sku title condition quantity } pageInfo { hasNextPage } }
}
"""
STOCK_USE = """
mutation($input: ReturnedStockUseInput!) {
  returnedStockUse(input: $input) { returnedStockItem { sku condition quantity } userErrors { field message code } }
}
"""
REFUND = """
mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) {
    refund {
      id amount { amount currencyCode } note disputeId dispute { id status } return { id }
      lines { quantity amount { amount } }
    }
    userErrors { field message code }
  }
}
"""
ORDER_MONEY = """
query($id: ID!) {
  order(id: $id) {
    financialStatus status
    total { amount } refundableAmount { amount } refundDue { amount } totalRefunded { amount }
    supplierCost { amount } supplierRefunds { amount } margin { amount }
    refunds { amount { amount } }
    returns { id status }
    events { type }
  }
}
"""
RETURNS = """
query($status: ReturnStatus, $after: String) {
  returns(first: 1, status: $status, after: $after) {
    nodes { id status } pageInfo { hasNextPage endCursor }
  }
}
"""

RETURN_POLICY = {
    "body": "Send items back within 30 days.",
    "returnWindowDays": 30,
    "restockingFeePercent": "10",
    "returnShippingPaidBy": "CUSTOMER",
    "returnAddress": {"name": "Returns", "address1": "1 Dock Road", "city": "Leeds", "countryCode": "GB"},
}


async def set_policies(api: Api, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    variables = {
        "input": {"returnPolicy": {**RETURN_POLICY, **overrides}, "refundPolicy": {"body": "Refunds."}}
    }
    payload = (await api.data(tenant.merchant_token, POLICIES_UPDATE, variables))["shopPoliciesUpdate"]
    assert payload["userErrors"] == []
    result: dict[str, Any] = payload
    return result


async def shipped_order(api: Api, tenant: Tenant, number: str = "#3001") -> tuple[str, list[str]]:
    [order] = await api.import_orders(
        tenant, order_input(tenant, number, supplier_status="WAIT_BUYER_ACCEPT_GOODS")
    )
    data = await api.data(
        tenant.merchant_token, "query($id: ID!) { order(id: $id) { lines { id } } }", {"id": order["id"]}
    )
    return order["id"], [line["id"] for line in data["order"]["lines"]]


async def mutate(api: Api, token: str, query: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = (await api.data(token, query, {"input": input}))[name]
    return payload


async def test_return_flow_feeds_stock_and_refund(api: Api, tenant: Tenant) -> None:
    token = tenant.merchant_token
    await set_policies(api, tenant)
    order_id, [case_line, _charger_line] = await shipped_order(api, tenant)

    requested = await mutate(
        api,
        token,
        REQUEST,
        "returnRequest",
        {
            "orderId": order_id,
            "note": "too small",
            "lines": [{"orderLineId": case_line, "quantity": 2, "reason": "SIZE_TOO_SMALL"}],
        },
    )
    assert requested["userErrors"] == []
    ret = requested["return"]
    assert ret["status"] == "REQUESTED" and ret["outsideReturnWindow"] is False
    assert ret["returnAddress"] is None and ret["policy"]["version"] == 1
    assert ret["lines"][0]["orderLine"]["sku"] == "CASE-#3001"

    approved = await mutate(api, token, APPROVE, "returnApprove", {"id": ret["id"], "note": "ok"})
    assert approved["return"]["status"] == "APPROVED"
    assert approved["return"]["returnAddress"] == {"address1": "1 Dock Road", "city": "Leeds"}
    line_id = ret["lines"][0]["id"]

    partial = await mutate(
        api,
        token,
        RECEIVE,
        "returnReceive",
        {"id": ret["id"], "lines": [{"returnLineId": line_id, "quantity": 1, "disposition": "RESTOCK"}]},
    )
    assert partial["return"]["status"] == "APPROVED"
    assert partial["return"]["lines"][0]["receivedQuantity"] == 1
    over = await mutate(
        api,
        token,
        RECEIVE,
        "returnReceive",
        {"id": ret["id"], "lines": [{"returnLineId": line_id, "quantity": 2, "disposition": "RESELL"}]},
    )
    assert [e["code"] for e in over["userErrors"]] == ["EXCEEDS_OUTSTANDING_QUANTITY"]
    assert over["userErrors"][0]["field"] == ["lines", "0", "quantity"]
    received = await mutate(
        api,
        token,
        RECEIVE,
        "returnReceive",
        {"id": ret["id"], "lines": [{"returnLineId": line_id, "quantity": 1, "disposition": "RESELL"}]},
    )
    assert received["return"]["status"] == "RECEIVED"
    assert [(r["quantity"], r["disposition"]) for r in received["return"]["receipts"]] == [
        (1, "RESTOCK"),
        (1, "RESELL"),
    ]

    stock = (await api.data(token, STOCK, {"sku": "CASE-#3001"}))["returnedStock"]["nodes"]
    assert sorted((s["condition"], s["quantity"], s["title"]) for s in stock) == [
        ("NEW", 1, "Phone case"),
        ("USED", 1, "Phone case"),
    ]
    node = await api.data(
        token,
        "query($id: ID!) { node(id: $id) { ... on ReturnedStockItem { sku } } }",
        {"id": stock[0]["id"]},
    )
    assert node["node"] == {"sku": "CASE-#3001"}
    used = await mutate(
        api, token, STOCK_USE, "returnedStockUse", {"sku": "CASE-#3001", "quantity": 1, "orderId": order_id}
    )
    assert used == {
        "returnedStockItem": {"sku": "CASE-#3001", "condition": "NEW", "quantity": 0},
        "userErrors": [],
    }
    short = await mutate(
        api, token, STOCK_USE, "returnedStockUse", {"sku": "CASE-#3001", "quantity": 5, "orderId": order_id}
    )
    assert [e["code"] for e in short["userErrors"]] == ["INSUFFICIENT_RETURNED_STOCK"]
    stock = (await api.data(token, STOCK, {"sku": None}))["returnedStock"]["nodes"]
    assert [(s["sku"], s["condition"], s["quantity"]) for s in stock] == [("CASE-#3001", "USED", 1)]

    refund = await mutate(
        api, token, REFUND, "refundCreate", {"orderId": order_id, "returnId": ret["id"], "note": "return"}
    )
    assert refund["userErrors"] == []
    # 2 x 12.50 less the 10% restocking fee (SIZE_TOO_SMALL is the customer's choice).
    assert refund["refund"]["amount"] == {"amount": "22.50", "currencyCode": "USD"}
    assert refund["refund"]["return"] == {"id": ret["id"]}
    assert refund["refund"]["lines"] == [{"quantity": 2, "amount": {"amount": "25.00"}}]

    closed = await mutate(api, token, CLOSE, "returnClose", {"id": ret["id"]})
    assert closed["return"]["status"] == "CLOSED"
    money = (await api.data(token, ORDER_MONEY, {"id": order_id}))["order"]
    # Total 49.99 (25.00 + 20.00 + 4.99), supplier cost 17.10.
    assert money["financialStatus"] == "PARTIALLY_REFUNDED"
    assert money["refundableAmount"] == {"amount": "27.49"}
    assert money["margin"] == {"amount": "10.39"}
    assert money["refundDue"] == {"amount": "0.00"}
    assert money["refunds"] == [{"amount": {"amount": "22.50"}}]
    assert money["returns"] == [{"id": ret["id"], "status": "CLOSED"}]
    types = [event["type"] for event in money["events"]]
    for expected in (
        "return_requested",
        "return_approved",
        "return_partially_received",
        "return_received",
        "returned_stock_used",
        "refund_created",
        "return_closed",
    ):
        assert expected in types


async def test_declines_cancels_and_status_filter(api: Api, tenant: Tenant) -> None:
    token = tenant.merchant_token
    await set_policies(api, tenant)
    order_id, [case_line, charger_line] = await shipped_order(api, tenant)

    async def request(line: str) -> str:
        payload = await mutate(
            api,
            token,
            REQUEST,
            "returnRequest",
            {"orderId": order_id, "lines": [{"orderLineId": line, "quantity": 1, "reason": "UNWANTED"}]},
        )
        assert payload["userErrors"] == []
        result: str = payload["return"]["id"]
        return result

    first, second = await request(case_line), await request(charger_line)
    open_count = '{ ordersCount(query: "has:open_return") }'
    assert (await api.data(token, open_count))["ordersCount"] == 1
    too_long = await mutate(
        api, token, DECLINE, "returnDecline", {"id": first, "reason": "OTHER", "note": "x" * 501}
    )
    assert [(e["field"], e["code"]) for e in too_long["userErrors"]] == [(["note"], "TOO_LONG")]
    declined = await mutate(
        api, token, DECLINE, "returnDecline", {"id": first, "reason": "FINAL_SALE", "note": "final"}
    )
    assert (
        declined["return"]["status"],
        declined["return"]["declineReason"],
        declined["return"]["declineNote"],
    ) == ("DECLINED", "FINAL_SALE", "final")
    canceled = await mutate(api, token, CANCEL, "returnCancel", {"id": second})
    assert canceled["return"]["status"] == "CANCELED"
    assert (await api.data(token, open_count))["ordersCount"] == 0
    again = await mutate(api, token, APPROVE, "returnApprove", {"id": second})
    assert again["return"] is None and again["userErrors"][0]["code"] == "INVALID_TRANSITION"

    page = (await api.data(token, RETURNS, {"status": "DECLINED"}))["returns"]
    assert page["nodes"] == [{"id": first, "status": "DECLINED"}] and not page["pageInfo"]["hasNextPage"]
    page = (await api.data(token, RETURNS, {}))["returns"]
    assert page["nodes"] == [{"id": first, "status": "DECLINED"}] and page["pageInfo"]["hasNextPage"]
    page = (await api.data(token, RETURNS, {"after": page["pageInfo"]["endCursor"]}))["returns"]
    assert page["nodes"] == [{"id": second, "status": "CANCELED"}]
    node = await api.data(
        token, "query($id: ID!) { node(id: $id) { ... on Return { status } } }", {"id": first}
    )
    assert node["node"] == {"status": "DECLINED"}


async def test_bad_input_is_a_user_error_naming_the_field(api: Api, tenant: Tenant) -> None:
    token = tenant.merchant_token
    order_id, [case_line, _] = await shipped_order(api, tenant)
    cases = [
        (
            REQUEST,
            "returnRequest",
            {"orderId": order_id, "lines": [{"orderLineId": case_line, "quantity": 3, "reason": "STYLE"}]},
            ["lines", "0", "quantity"],
            "EXCEEDS_RETURNABLE_QUANTITY",
        ),
        (
            REQUEST,
            "returnRequest",
            {"orderId": "gid://dropdesk/Order/x", "lines": []},
            ["orderId"],
            "INVALID",
        ),
        (
            REQUEST,
            "returnRequest",
            {"orderId": order_id, "lines": [{"orderLineId": "nope", "quantity": 1, "reason": "STYLE"}]},
            ["lines", "0", "orderLineId"],
            "INVALID",
        ),
        (
            REQUEST,
            "returnRequest",
            {
                "orderId": order_id,
                "lines": [
                    {"orderLineId": "gid://dropdesk/OrderLine/999999", "quantity": 1, "reason": "STYLE"}
                ],
            },
            ["lines", "0", "orderLineId"],
            "NOT_FOUND",
        ),
        (REFUND, "refundCreate", {"orderId": order_id, "amount": "1.005"}, ["amount"], "INVALID"),
        (REFUND, "refundCreate", {"orderId": order_id, "amount": "-5"}, ["amount"], "INVALID"),
        (
            REFUND,
            "refundCreate",
            {"orderId": order_id, "amount": "50.00"},
            ["amount"],
            "EXCEEDS_REFUNDABLE_AMOUNT",
        ),
        (
            REFUND,
            "refundCreate",
            {"orderId": order_id, "amount": "1", "disputeId": "gid://dropdesk/Order/1"},
            ["disputeId"],
            "INVALID",
        ),
        (
            REFUND,
            "refundCreate",
            {"orderId": order_id, "lines": [{"orderLineId": case_line, "quantity": 3}]},
            ["lines", "0", "quantity"],
            "EXCEEDS_REFUNDABLE_QUANTITY",
        ),
        (
            POLICIES_UPDATE,
            "shopPoliciesUpdate",
            {"returnPolicy": {"body": "x", "returnWindowDays": 999}},
            ["returnPolicy", "returnWindowDays"],
            "INVALID",
        ),
        (
            STOCK_USE,
            "returnedStockUse",
            {"sku": "X", "quantity": 1, "orderId": order_id},
            ["quantity"],
            "INSUFFICIENT_RETURNED_STOCK",
        ),
    ]
    # NUL and lone surrogates in any text are refused at the edge for every operation (tests/api/test_edge.py).
    for query, name, input, field, code in cases:
        # ASCII-escaped JSON carries lone surrogates as a client would send them ("\ud800").
        response = await api.client.post(
            "/graphql",
            content=json.dumps({"query": query, "variables": {"input": input}}),
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert response.status_code == 200, (name, input, response.text)
        payload = response.json()["data"][name]
        assert [(e["field"], e["code"]) for e in payload["userErrors"]][:1] == [(field, code)], (
            name,
            input,
            payload,
        )
    body = await api.gql(token, STOCK, {"sku": "A\u0000B"})
    assert (
        body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "sku" in body["errors"][0]["message"]
    )
    money = (await api.data(token, ORDER_MONEY, {"id": order_id}))["order"]
    assert money["refunds"] == [] and money["returns"] == [] and money["financialStatus"] == "PAID"


async def disputed_order(api: Api, tenant: Tenant, number: str) -> tuple[str, str]:
    """A shipped order of two supplier orders, the first one disputed: the order's and the dispute's ids."""
    [order] = await api.import_orders(
        tenant, order_input(tenant, number, supplier_status="WAIT_BUYER_ACCEPT_GOODS")
    )
    so_id = order["supplierOrders"][0]["id"]
    opened = await mutate(api, tenant.merchant_token, OPEN, "disputeOpen", open_input(so_id))
    assert opened["userErrors"] == []
    return order["id"], opened["dispute"]["id"]


async def test_refund_with_dispute_id_and_financial_status(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    token = tenant.merchant_token
    order_id, dispute_id = await disputed_order(api, tenant, "#3001")
    _, dispute_of_another_order = await disputed_order(api, tenant, "#3002")
    _, dispute_of_another_shop = await disputed_order(api, other_tenant, "#3001")
    for foreign in (dispute_of_another_order, dispute_of_another_shop, "gid://dropdesk/Dispute/999999"):
        refused = await mutate(
            api, token, REFUND, "refundCreate", {"orderId": order_id, "amount": "10", "disputeId": foreign}
        )
        assert refused["refund"] is None
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["disputeId"], "NOT_FOUND")]
    refund = await mutate(
        api,
        token,
        REFUND,
        "refundCreate",
        {"orderId": order_id, "amount": "10", "disputeId": dispute_id},
    )
    assert refund["userErrors"] == [] and refund["refund"]["disputeId"] == dispute_id
    assert refund["refund"]["dispute"] == {"id": dispute_id, "status": "AWAITING_SUPPLIER"}
    money = (await api.data(token, ORDER_MONEY, {"id": order_id}))["order"]
    assert (money["financialStatus"], money["refundableAmount"], money["margin"]) == (
        "PARTIALLY_REFUNDED",
        {"amount": "39.99"},
        {"amount": "22.89"},
    )
    rest = await mutate(api, token, REFUND, "refundCreate", {"orderId": order_id, "amount": "39.99"})
    assert rest["userErrors"] == []
    money = (await api.data(token, ORDER_MONEY, {"id": order_id}))["order"]
    assert (money["financialStatus"], money["refundableAmount"], money["margin"]) == (
        "REFUNDED",
        {"amount": "0.00"},
        {"amount": "-17.10"},
    )
    nothing = await mutate(api, token, REFUND, "refundCreate", {"orderId": order_id, "amount": "0.01"})
    assert nothing["userErrors"][0]["code"] == "EXCEEDS_REFUNDABLE_AMOUNT"


DECIDE = """
mutation($input: CancellationRequestDecideInput!) {
  cancellationRequestDecide(input: $input) { userErrors { code } }
}
"""
CANCEL_SUPPLIER_ORDER = """
mutation($input: CancellationRequestCreateInput!) {
  cancellationRequestCreate(input: $input) { cancellationRequest { id status } userErrors { code } }
}
"""


@pytest.mark.parametrize(
    ("supplier_status", "cost"),
    [("PLACE_ORDER_SUCCESS", "0.00"), ("WAIT_SELLER_SEND_GOODS", "17.10")],
    ids=["unpaid, cancelled at once", "paid, approved by the suppliers"],
)
async def test_fully_cancelled_order_shows_refund_due_until_refunded(
    api: Api, tenant: Tenant, supplier_status: str, cost: str
) -> None:
    token = tenant.merchant_token
    [order] = await api.import_orders(tenant, order_input(tenant, "#3009", supplier_status=supplier_status))
    for index, supplier_order in enumerate(order["supplierOrders"]):
        variables = {"input": {"supplierOrderId": supplier_order["id"], "reason": "CUSTOMER_CANCELLED"}}
        created = (await api.data(token, CANCEL_SUPPLIER_ORDER, variables))["cancellationRequestCreate"]
        assert created["userErrors"] == []
        if created["cancellationRequest"]["status"] == "PENDING":
            variables = {"input": {"id": created["cancellationRequest"]["id"], "decision": "APPROVE"}}
            decided = await api.data(tenant.supplier_tokens[index], DECIDE, variables)
            assert decided["cancellationRequestDecide"]["userErrors"] == []
    money = (await api.data(token, ORDER_MONEY, {"id": order["id"]}))["order"]
    assert money["status"] == "CANCELLED" and money["financialStatus"] == "PAID"
    # Supplier cost and supplier refunds cancel out; the customer is owed the total, so there is no margin.
    assert (money["supplierCost"], money["supplierRefunds"]) == ({"amount": cost}, {"amount": cost})
    assert (money["refundDue"], money["margin"], money["refundableAmount"]) == (
        {"amount": "49.99"},
        {"amount": "0.00"},
        {"amount": "49.99"},
    )
    too_much = await mutate(api, token, REFUND, "refundCreate", {"orderId": order["id"], "amount": "50.00"})
    assert too_much["userErrors"][0]["code"] == "EXCEEDS_REFUNDABLE_AMOUNT"
    paid = await mutate(api, token, REFUND, "refundCreate", {"orderId": order["id"], "amount": "49.99"})
    assert paid["userErrors"] == []
    money = (await api.data(token, ORDER_MONEY, {"id": order["id"]}))["order"]
    assert (money["refundDue"], money["margin"], money["totalRefunded"], money["financialStatus"]) == (
        {"amount": "0.00"},
        {"amount": "0.00"},
        {"amount": "49.99"},
        "REFUNDED",
    )


async def test_policies_versions_and_draft(api: Api, tenant: Tenant) -> None:
    token = tenant.merchant_token
    first = await set_policies(api, tenant, returnWindowDays=14)
    assert sorted((p["kind"], p["version"]) for p in first["policies"]) == [("REFUND", 1), ("RETURN", 1)]
    await set_policies(api, tenant, returnWindowDays=45)
    shop = (await api.data(token, SHOP_POLICIES))["shop"]
    assert shop["returnAddress"] == {"address1": "1 Dock Road"}
    assert sorted((p["kind"], p["version"]) for p in shop["policies"]) == [("REFUND", 2), ("RETURN", 2)]
    assert sorted((p["kind"], p["version"]) for p in shop["policyHistory"]) == [("REFUND", 1), ("RETURN", 1)]
    assert all(p["supersededAt"] for p in shop["policyHistory"])
    assert shop["returnHistory"] == [{"kind": "RETURN", "version": 1}]
    draft = (await api.data(token, DRAFT, {"kind": "RETURN"}))["policyDraft"]
    assert draft["kind"] == "RETURN" and "45 days" in draft["body"] and "1 Dock Road" in draft["body"]
    refund_draft = (await api.data(token, DRAFT, {"kind": "REFUND"}))["policyDraft"]
    assert "10%" in refund_draft["body"]


async def test_scopes_and_suppliers(api: Api, tenant: Tenant) -> None:
    await set_policies(api, tenant)
    order_id, [case_line, _] = await shipped_order(api, tenant)
    requested = await mutate(
        api,
        tenant.merchant_token,
        REQUEST,
        "returnRequest",
        {"orderId": order_id, "lines": [{"orderLineId": case_line, "quantity": 1, "reason": "DEFECTIVE"}]},
    )
    return_id = requested["return"]["id"]
    refund = await mutate(
        api, tenant.merchant_token, REFUND, "refundCreate", {"orderId": order_id, "amount": "1"}
    )
    refund_id = refund["refund"]["id"]
    reader, supplier = tenant.readonly_token, tenant.supplier_tokens[0]
    for token in (reader, supplier):
        for query, input in (
            (APPROVE, {"id": return_id}),
            (REFUND, {"orderId": order_id, "amount": "1"}),
            (POLICIES_UPDATE, {"refundPolicy": {"body": "x"}}),
            (STOCK_USE, {"sku": "X", "quantity": 1, "orderId": order_id}),
        ):
            body = await api.gql(token, query, {"input": input})
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = await api.gql(token, DRAFT, {"kind": "RETURN"})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The read-only merchant reads; the supplier sees none of it.
    assert (await api.data(reader, RETURNS, {}))["returns"]["nodes"] == [
        {"id": return_id, "status": "REQUESTED"}
    ]
    body = await api.gql(supplier, RETURNS, {})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api.gql(supplier, STOCK, {})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    nodes = await api.data(
        supplier, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [return_id, refund_id]}
    )
    assert nodes["nodes"] == [None, None]


async def test_another_shop_cannot_see_or_touch(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    await set_policies(api, tenant)
    order_id, [case_line, _] = await shipped_order(api, tenant)
    requested = await mutate(
        api,
        tenant.merchant_token,
        REQUEST,
        "returnRequest",
        {"orderId": order_id, "lines": [{"orderLineId": case_line, "quantity": 1, "reason": "DEFECTIVE"}]},
    )
    return_id = requested["return"]["id"]
    token = other_tenant.merchant_token
    approve = await mutate(api, token, APPROVE, "returnApprove", {"id": return_id})
    assert approve["userErrors"][0]["code"] == "NOT_FOUND"
    refund = await mutate(api, token, REFUND, "refundCreate", {"orderId": order_id, "amount": "1"})
    assert refund["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await api.data(token, RETURNS, {}))["returns"]["nodes"] == []
    node = await api.data(token, "query($id: ID!) { node(id: $id) { id } }", {"id": return_id})
    assert node["node"] is None
