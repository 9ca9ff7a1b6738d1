"""Cancellation requests through GraphQL: the four mutations, the queries, tenancy, and no N+1."""

from __future__ import annotations

from typing import Any

from db.engine import StatementCounter, statement_counter
from tests.factories import Api, Tenant, order_input

REQUEST_FIELDS = """
  id status reason respondBy decidedAt
  messages { author body createdAt }
  supplierOrder { id status canRequestCancellation }
"""

CREATE = f"""
mutation($input: CancellationRequestCreateInput!) {{
  cancellationRequestCreate(input: $input) {{
    cancellationRequest {{ {REQUEST_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

DECIDE = f"""
mutation($input: CancellationRequestDecideInput!) {{
  cancellationRequestDecide(input: $input) {{
    cancellationRequest {{ {REQUEST_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

REPLY = f"""
mutation($input: CancellationRequestReplyInput!) {{
  cancellationRequestReply(input: $input) {{
    cancellationRequest {{ {REQUEST_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

WITHDRAW = f"""
mutation($input: CancellationRequestWithdrawInput!) {{
  cancellationRequestWithdraw(input: $input) {{
    cancellationRequest {{ {REQUEST_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

LIST = """
query($status: CancellationRequestStatus, $first: Int, $after: String) {
  cancellationRequests(status: $status, first: $first, after: $after) {
    nodes { id status supplierOrder { id } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

NODE = "query($id: ID!) { node(id: $id) { id ... on CancellationRequest { status reason } } }"

ORDER = """
query($id: ID!) {
  order(id: $id) {
    status cancelledAt
    cancellationRequests { id status }
    supplierOrders { status endReason cancellationRequests { id status } }
    events { type }
  }
}
"""


async def import_order(
    api: Api,
    tenant: Tenant,
    number: str = "#1001",
    status: str = "WAIT_SELLER_SEND_GOODS",
    split: bool = False,
) -> tuple[str, list[str]]:
    [created] = await api.import_orders(
        tenant, order_input(tenant, number, supplier_status=status, split=split)
    )
    return created["id"], [so["id"] for so in created["supplierOrders"]]


async def create_request(
    api: Api,
    tenant: Tenant,
    supplier_order_id: str,
    reason: str = "CUSTOMER_CANCELLED",
    message: str | None = "pls",
) -> dict[str, Any]:
    variables = {"input": {"supplierOrderId": supplier_order_id, "reason": reason, "message": message}}
    payload: dict[str, Any] = (await api.data(tenant.merchant_token, CREATE, variables))[
        "cancellationRequestCreate"
    ]
    return payload


async def decide(
    api: Api, token: str, request_id: str, decision: str, message: str | None = None
) -> dict[str, Any]:
    variables = {"input": {"id": request_id, "decision": decision, "message": message}}
    payload: dict[str, Any] = (await api.data(token, DECIDE, variables))["cancellationRequestDecide"]
    return payload


async def test_paid_order_request_then_supplier_approval_cancels_everything(api: Api, tenant: Tenant) -> None:
    order_id, [so_id] = await import_order(api, tenant)
    created = await create_request(api, tenant, so_id, message="customer cancelled")
    assert created["userErrors"] == []
    request = created["cancellationRequest"]
    assert request["status"] == "PENDING"
    assert request["reason"] == "CUSTOMER_CANCELLED"
    assert request["respondBy"] is not None and request["decidedAt"] is None
    assert request["supplierOrder"] == {"id": so_id, "status": "IN_CANCEL", "canRequestCancellation": False}
    assert [(m["author"], m["body"]) for m in request["messages"]] == [("MERCHANT", "customer cancelled")]

    decided = await decide(api, tenant.supplier_tokens[0], request["id"], "APPROVE", "done")
    assert decided["userErrors"] == []
    assert decided["cancellationRequest"]["status"] == "APPROVED"
    assert decided["cancellationRequest"]["decidedAt"] is not None
    assert decided["cancellationRequest"]["supplierOrder"]["status"] == "FINISH"
    assert [m["author"] for m in decided["cancellationRequest"]["messages"]] == ["MERCHANT", "SUPPLIER"]

    order = (await api.data(tenant.merchant_token, ORDER, {"id": order_id}))["order"]
    assert order["status"] == "CANCELLED" and order["cancelledAt"] is not None
    assert order["cancellationRequests"] == [{"id": request["id"], "status": "APPROVED"}]
    assert order["supplierOrders"] == [
        {
            "status": "FINISH",
            "endReason": "cancel_order_close_trade",
            "cancellationRequests": [{"id": request["id"], "status": "APPROVED"}],
        }
    ]
    assert "supplier_refund_recorded" in [event["type"] for event in order["events"]]


async def test_unpaid_order_is_cancelled_at_once(api: Api, tenant: Tenant) -> None:
    _, [so_id] = await import_order(api, tenant, status="PLACE_ORDER_SUCCESS")
    created = await create_request(api, tenant, so_id, message=None)
    request = created["cancellationRequest"]
    assert (request["status"], request["respondBy"]) == ("APPROVED", None)
    assert [m["author"] for m in request["messages"]] == ["SYSTEM"]
    assert request["supplierOrder"]["status"] == "FINISH"


async def test_question_reply_and_withdrawal(api: Api, tenant: Tenant) -> None:
    _, [so_id] = await import_order(api, tenant, status="WAIT_SELLER_EXAMINE_MONEY")
    request_id = (await create_request(api, tenant, so_id))["cancellationRequest"]["id"]
    asked = await decide(api, tenant.supplier_tokens[0], request_id, "REQUEST_INFO", "which colour?")
    assert asked["cancellationRequest"]["status"] == "INFO_REQUESTED"

    reply = (await api.data(tenant.merchant_token, REPLY, {"input": {"id": request_id, "message": "red"}}))[
        "cancellationRequestReply"
    ]
    assert reply["userErrors"] == []
    assert reply["cancellationRequest"]["status"] == "PENDING"
    assert [m["body"] for m in reply["cancellationRequest"]["messages"]] == ["pls", "which colour?", "red"]

    withdrawn = (await api.data(tenant.merchant_token, WITHDRAW, {"input": {"id": request_id}}))[
        "cancellationRequestWithdraw"
    ]
    assert withdrawn["cancellationRequest"]["status"] == "WITHDRAWN"
    assert withdrawn["cancellationRequest"]["supplierOrder"]["status"] == "WAIT_SELLER_EXAMINE_MONEY"

    again = (await api.data(tenant.merchant_token, WITHDRAW, {"input": {"id": request_id}}))[
        "cancellationRequestWithdraw"
    ]
    assert again["cancellationRequest"] is None
    assert again["userErrors"][0]["code"] == "INVALID_STATE"


async def test_refusals_are_user_errors(api: Api, tenant: Tenant) -> None:
    _, [shipped] = await import_order(api, tenant, "#1001", status="WAIT_BUYER_ACCEPT_GOODS")
    refused = await create_request(api, tenant, shipped)
    assert refused["cancellationRequest"] is None
    assert refused["userErrors"][0]["code"] == "NOT_CANCELLABLE"
    assert refused["userErrors"][0]["field"] == ["supplierOrderId"]

    _, [so_id] = await import_order(api, tenant, "#1002")
    other = await create_request(api, tenant, so_id, reason="OTHER", message=None)
    assert other["userErrors"] == [
        {"field": ["message"], "message": "a reason of OTHER needs a message", "code": "REQUIRED"}
    ]
    assert (await create_request(api, tenant, so_id))["userErrors"] == []
    duplicate = await create_request(api, tenant, so_id)
    assert duplicate["userErrors"][0]["code"] == "ALREADY_EXISTS"
    bad_id = await create_request(api, tenant, "gid://dropdesk/Order/1")
    assert bad_id["userErrors"][0]["code"] == "INVALID"
    assert bad_id["userErrors"][0]["field"] == ["supplierOrderId"]
    unknown = await create_request(api, tenant, "gid://dropdesk/SupplierOrder/999999")
    assert unknown["userErrors"][0]["code"] == "NOT_FOUND"


async def test_list_filters_by_status_and_paginates(api: Api, tenant: Tenant) -> None:
    ids = []
    for n in range(3):
        _, [so_id] = await import_order(api, tenant, f"#10{n}")
        ids.append((await create_request(api, tenant, so_id))["cancellationRequest"]["id"])
    await decide(api, tenant.supplier_tokens[0], ids[1], "REJECT")

    pending = (await api.data(tenant.merchant_token, LIST, {"status": "PENDING"}))["cancellationRequests"]
    assert [node["id"] for node in pending["nodes"]] == [ids[0], ids[2]]
    page = (await api.data(tenant.merchant_token, LIST, {"first": 2}))["cancellationRequests"]
    assert [node["id"] for node in page["nodes"]] == ids[:2]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = (
        await api.data(tenant.merchant_token, LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]})
    )["cancellationRequests"]
    assert [node["id"] for node in rest["nodes"]] == ids[2:]
    node = (await api.data(tenant.merchant_token, NODE, {"id": ids[1]}))["node"]
    assert node == {"id": ids[1], "status": "REJECTED", "reason": "CUSTOMER_CANCELLED"}


# --- access -----------------------------------------------------------------------------------------------


async def test_roles_are_enforced(api: Api, tenant: Tenant) -> None:
    _, [so_id] = await import_order(api, tenant)
    request_id = (await create_request(api, tenant, so_id))["cancellationRequest"]["id"]

    body = await api.gql(tenant.merchant_token, DECIDE, {"input": {"id": request_id, "decision": "APPROVE"}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    create = {"input": {"supplierOrderId": so_id, "reason": "DUPLICATE_ORDER"}}
    body = await api.gql(tenant.supplier_tokens[0], CREATE, create)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api.gql(tenant.readonly_token, WITHDRAW, {"input": {"id": request_id}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    node = (await api.data(tenant.merchant_token, NODE, {"id": request_id}))["node"]
    assert node["status"] == "PENDING"


async def test_a_supplier_sees_and_decides_only_its_own(api: Api, tenant: Tenant) -> None:
    _, so_ids = await import_order(api, tenant, split=True)
    mine = (await create_request(api, tenant, so_ids[0]))["cancellationRequest"]["id"]
    theirs = (await create_request(api, tenant, so_ids[1]))["cancellationRequest"]["id"]
    supplier = tenant.supplier_tokens[0]

    listed = (await api.data(supplier, LIST))["cancellationRequests"]["nodes"]
    assert [node["id"] for node in listed] == [mine]
    assert (await api.data(supplier, NODE, {"id": theirs}))["node"] is None
    refused = await decide(api, supplier, theirs, "APPROVE")
    assert refused["cancellationRequest"] is None
    assert refused["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await api.data(tenant.supplier_tokens[1], NODE, {"id": theirs}))["node"]["status"] == "PENDING"

    body = await api.gql(
        supplier,
        "query($id: ID!) { node(id: $id) { ... on CancellationRequest { order { id } } } }",
        {"id": mine},
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_another_shop_sees_nothing(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    _, [so_id] = await import_order(api, tenant)
    request_id = (await create_request(api, tenant, so_id))["cancellationRequest"]["id"]
    stranger = other_tenant.merchant_token

    assert (await api.data(stranger, NODE, {"id": request_id}))["node"] is None
    assert (await api.data(stranger, LIST))["cancellationRequests"]["nodes"] == []
    assert (await api.data(other_tenant.supplier_tokens[0], LIST))["cancellationRequests"]["nodes"] == []
    for mutation, name, variables in [
        (REPLY, "cancellationRequestReply", {"id": request_id, "message": "hi"}),
        (WITHDRAW, "cancellationRequestWithdraw", {"id": request_id}),
        (CREATE, "cancellationRequestCreate", {"supplierOrderId": so_id, "reason": "DUPLICATE_ORDER"}),
    ]:
        payload = (await api.data(stranger, mutation, {"input": variables}))[name]
        assert payload["cancellationRequest"] is None
        assert payload["userErrors"][0]["code"] == "NOT_FOUND"
    refused = await decide(api, other_tenant.supplier_tokens[0], request_id, "APPROVE")
    assert refused["userErrors"][0]["code"] == "NOT_FOUND"


# --- no N+1 -----------------------------------------------------------------------------------------------

DEEP = """
query($first: Int!) {
  orders(first: $first) {
    nodes {
      cancellationRequests { status messages { author body } supplierOrder { status } }
      supplierOrders { cancellationRequests { status messages { body } } }
    }
  }
  cancellationRequests(first: $first) { nodes { status messages { body } supplierOrder { aliexpressOrderId } } }
}
"""


async def _statements(api: Api, token: str, first: int) -> int:
    counter = StatementCounter()
    reset = statement_counter.set(counter)
    try:
        await api.data(token, DEEP, {"first": first})
    finally:
        statement_counter.reset(reset)
    return counter.count


async def test_statements_do_not_grow_with_requests(api: Api, tenant: Tenant) -> None:
    for n in range(12):
        _, so_ids = await import_order(api, tenant, f"#20{n:02d}", split=True)
        for so_id in so_ids:
            await create_request(api, tenant, so_id)
    assert await _statements(api, tenant.merchant_token, 2) == await _statements(
        api, tenant.merchant_token, 12
    )
