"""Disputes through GraphQL and HTTP: the mutations, uploads, evidence links, tenancy, webhooks, no N+1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.app import create_app
from config.settings import Settings, load_settings
from db.engine import Database, StatementCounter, statement_counter
from db.models import TokenKind
from domain.evidence import evidence_path
from domain.links import signed_url
from domain.tokens import issue_token
from schema.ids import parse_id
from tests.api.test_cancellations import import_order
from tests.api.test_supplier_webhooks import send, signed
from tests.factories import IMPORT, Api, Tenant, order_input

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
CAP = 2000

DISPUTE_FIELDS = """
  id status reason kind requestedAmount { amount currencyCode }
  proposal { action amount { amount } createdAt }
  respondBy
  resolution { outcome action amount { amount } decidedBy createdAt }
  returnShipment { trackingNumber carrier }
  messages { author body attachments { url contentType size } createdAt }
  supplierOrder { id status canOpenDispute }
  createdAt updatedAt
"""


def mutation(name: str, input_type: str) -> str:
    return f"""
mutation($input: {input_type}!) {{
  {name}(input: $input) {{
    dispute {{ {DISPUTE_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""


OPEN = mutation("disputeOpen", "DisputeOpenInput")
MESSAGE = mutation("disputeMessageAdd", "DisputeMessageAddInput")
RESPOND = mutation("disputeRespond", "DisputeRespondInput")
ACCEPT = mutation("disputeAcceptProposal", "DisputeAcceptProposalInput")
ESCALATE = mutation("disputeEscalate", "DisputeEscalateInput")
CANCEL = mutation("disputeCancel", "DisputeCancelInput")
RULE = mutation("disputeRule", "DisputeRuleInput")
RETURN_SHIPPED = mutation("disputeReturnShipped", "DisputeReturnShippedInput")

LIST = """
query($status: DisputeStatus) {
  disputes(first: 50, status: $status) { nodes { id status supplierOrder { id } } }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Dispute { status } } }"
ORDER = """
query($id: ID!) {
  order(id: $id) {
    status
    disputes { id status }
    supplierOrders { status canOpenDispute disputes { id status } }
    events { type }
  }
}
"""


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return replace(
        load_settings(),
        database_url=db.url,
        secret_key="dispute-test-secret",
        public_url="http://dropdesk.test",
        evidence_max_bytes=CAP,
        evidence_dir=tmp_path / "evidence",
    )


@pytest.fixture
async def api(db: Database, settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings, db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dropdesk.test") as client:
        yield Api(client)


@pytest.fixture
async def admin_token(db: Database) -> str:
    async with db.write() as session:
        return issue_token(session, kind=TokenKind.ADMIN, name="platform").raw


async def upload(
    api: Api, token: str, query: str, input: dict[str, Any], files: list[tuple[str, bytes, str]]
) -> dict[str, Any]:
    """A mutation sent per the GraphQL multipart request spec, ``files`` going to ``input.evidence``."""
    operations = {"query": query, "variables": {"input": {**input, "evidence": [None] * len(files)}}}
    mapping = {str(n): [f"variables.input.evidence.{n}"] for n in range(len(files))}
    response = await api.client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps(mapping)},
        files={str(n): file for n, file in enumerate(files)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


def open_input(so_id: str, amount: str = "5.00", **overrides: Any) -> dict[str, Any]:
    return {
        "supplierOrderId": so_id,
        "reason": "DAMAGED",
        "kind": "REFUND_ONLY",
        "requestedAmount": amount,
        "message": "the case arrived cracked",
        **overrides,
    }


async def shipped(api: Api, tenant: Tenant, number: str = "#1001") -> tuple[str, str]:
    return await _single(api, tenant, number)


async def _single(api: Api, tenant: Tenant, number: str) -> tuple[str, str]:
    order_id, [so_id] = await import_order(api, tenant, number, status="WAIT_BUYER_ACCEPT_GOODS")
    return order_id, so_id


async def opened(api: Api, tenant: Tenant, number: str = "#1001", **overrides: Any) -> tuple[str, str, str]:
    order_id, so_id = await shipped(api, tenant, number)
    payload = (await api.data(tenant.merchant_token, OPEN, {"input": open_input(so_id, **overrides)}))[
        "disputeOpen"
    ]
    assert payload["userErrors"] == [], payload
    return order_id, so_id, payload["dispute"]["id"]


async def run(api: Api, token: str, query: str, input: dict[str, Any]) -> dict[str, Any]:
    # Encoded here, ASCII-escaped, so that a lone surrogate travels as a client would send it ("\ud800").
    response = await api.client.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": {"input": input}}),
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    payload: dict[str, Any] = next(iter(body["data"].values()))
    return payload


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# --- the whole flow -------------------------------------------------------------------------------------


async def test_upload_respond_accept_refund(api: Api, tenant: Tenant, settings: Settings) -> None:
    order_id, so_id = await shipped(api, tenant)
    before = (await api.data(tenant.merchant_token, ORDER, {"id": order_id}))["order"]
    assert before["supplierOrders"][0]["canOpenDispute"] is True

    data = await upload(
        api,
        tenant.merchant_token,
        OPEN,
        open_input(so_id, evidenceUrls=["https://img.example/box.jpg"]),
        [("crack.png", PNG, "image/png")],
    )
    payload = data["disputeOpen"]
    assert payload["userErrors"] == []
    dispute = payload["dispute"]
    assert (dispute["status"], dispute["requestedAmount"]) == (
        "AWAITING_SUPPLIER",
        {"amount": "5.00", "currencyCode": "USD"},
    )
    assert dispute["supplierOrder"]["status"] == "IN_ISSUE"
    assert dispute["supplierOrder"]["canOpenDispute"] is False
    [first] = dispute["messages"]
    stored, linked = first["attachments"]
    assert (stored["contentType"], stored["size"]) == ("image/png", len(PNG))
    assert linked == {"url": "https://img.example/box.jpg", "contentType": "image/jpeg", "size": None}

    # The signed link serves the file, to the merchant's link as to the supplier's.
    evidence = await api.client.get(local(stored["url"]))
    assert evidence.status_code == 200
    assert evidence.content == PNG
    assert evidence.headers["content-type"] == "image/png"
    assert evidence.headers["x-content-type-options"] == "nosniff"

    supplier = tenant.supplier_tokens[0]
    seen = (await api.data(supplier, LIST))["disputes"]["nodes"]
    assert [node["id"] for node in seen] == [dispute["id"]]
    responded = await run(
        api, supplier, RESPOND, {"id": dispute["id"], "action": "PROPOSE_REFUND", "amount": "4.5"}
    )
    assert responded["userErrors"] == []
    assert responded["dispute"]["proposal"]["action"] == "PROPOSE_REFUND"
    assert responded["dispute"]["proposal"]["amount"] == {"amount": "4.50"}
    supplier_link = responded["dispute"]["messages"][0]["attachments"][0]["url"]
    assert "/supplier-" in supplier_link
    assert (await api.client.get(local(supplier_link))).content == PNG

    accepted = await run(api, tenant.merchant_token, ACCEPT, {"id": dispute["id"]})
    assert accepted["userErrors"] == []
    resolved = accepted["dispute"]
    assert resolved["status"] == "RESOLVED"
    assert {k: v for k, v in resolved["resolution"].items() if k != "createdAt"} == {
        "outcome": "AGREED",
        "action": "REFUND",
        "amount": {"amount": "4.50"},
        "decidedBy": "MERCHANT",
    }
    assert resolved["supplierOrder"]["status"] == "WAIT_BUYER_ACCEPT_GOODS"
    assert resolved["supplierOrder"]["canOpenDispute"] is True

    order = (await api.data(tenant.merchant_token, ORDER, {"id": order_id}))["order"]
    assert order["disputes"] == [{"id": dispute["id"], "status": "RESOLVED"}]
    assert order["supplierOrders"][0]["disputes"] == [{"id": dispute["id"], "status": "RESOLVED"}]
    types = [event["type"] for event in order["events"]]
    for step in (
        "dispute_opened",
        "dispute_supplier_responded",
        "dispute_proposal_accepted",
        "supplier_refund_recorded",
        "dispute_resolved",
    ):
        assert step in types
    node = (await api.data(tenant.merchant_token, NODE, {"id": dispute["id"]}))["node"]
    assert node == {"id": dispute["id"], "status": "RESOLVED"}


async def test_escalation_ruling_and_return(api: Api, tenant: Tenant, admin_token: str) -> None:
    _, _, dispute_id = await opened(api, tenant, kind="RETURN_AND_REFUND", requestedAmount="6.00")
    supplier = tenant.supplier_tokens[0]
    refused = await run(
        api, supplier, RESPOND, {"id": dispute_id, "action": "REFUSE", "message": "it was fine"}
    )
    assert refused["dispute"]["status"] == "SUPPLIER_RESPONDED"
    escalated = await run(
        api, tenant.merchant_token, ESCALATE, {"id": dispute_id, "message": "see the photos"}
    )
    assert escalated["dispute"]["status"] == "ESCALATED"
    ruled = await run(api, admin_token, RULE, {"id": dispute_id, "outcome": "MERCHANT", "message": "refund"})
    assert ruled["userErrors"] == []
    assert ruled["dispute"]["status"] == "AWAITING_RETURN"
    assert ruled["dispute"]["resolution"]["decidedBy"] == "ADMIN"
    missing = await run(api, tenant.merchant_token, RETURN_SHIPPED, {"id": dispute_id, "trackingNumber": " "})
    assert [(e["field"], e["code"]) for e in missing["userErrors"]] == [(["trackingNumber"], "REQUIRED")]
    returned = await run(
        api,
        tenant.merchant_token,
        RETURN_SHIPPED,
        {"id": dispute_id, "trackingNumber": "RR1CN", "carrier": "China Post"},
    )
    assert returned["dispute"]["status"] == "RESOLVED"
    assert returned["dispute"]["returnShipment"] == {"trackingNumber": "RR1CN", "carrier": "China Post"}
    authors = [m["author"] for m in returned["dispute"]["messages"]]
    assert authors == ["MERCHANT", "SUPPLIER", "MERCHANT", "PLATFORM", "SYSTEM"]


async def test_can_open_dispute_follows_refunds_received(api: Api, tenant: Tenant) -> None:
    _, so_id, dispute_id = await opened(api, tenant, requestedAmount="9.10")
    await run(
        api,
        tenant.supplier_tokens[0],
        RESPOND,
        {"id": dispute_id, "action": "PROPOSE_REFUND", "amount": "9.10"},
    )
    accepted = await run(api, tenant.merchant_token, ACCEPT, {"id": dispute_id})
    assert accepted["dispute"]["supplierOrder"] == {
        "id": so_id,
        "status": "WAIT_BUYER_ACCEPT_GOODS",
        "canOpenDispute": False,
    }
    again = await run(api, tenant.merchant_token, OPEN, open_input(so_id, "0.01"))
    assert [(e["field"], e["code"]) for e in again["userErrors"]] == [(["supplierOrderId"], "NOT_DISPUTABLE")]


async def test_reimport_cannot_take_an_open_dispute_out_of_in_issue(api: Api, tenant: Tenant) -> None:
    await opened(api, tenant, "#1001")
    for status, refused in (("FINISH", True), ("IN_ISSUE", False)):
        order = order_input(tenant, "#1001", supplier_status=status, split=False)
        payload = (await api.data(tenant.merchant_token, IMPORT, {"input": {"orders": [order]}}))[
            "ordersImport"
        ]
        codes = [(e["field"], e["code"]) for e in payload["userErrors"]]
        assert codes == (
            [(["orders", "0", "supplierOrders", "0", "status"], "INVALID_STATE")] if refused else []
        )


# --- refusals at the edge -------------------------------------------------------------------------------

EDGE_REFUSALS = [
    (
        "wrong type",
        {},
        [("notes.png", b"plain text, not a picture", "image/png")],
        ["evidence", "0"],
        "UNSUPPORTED_FILE_TYPE",
    ),
    ("oversized", {}, [("big.png", PNG + bytes(CAP), "image/png")], ["evidence", "0"], "FILE_TOO_LARGE"),
    ("three decimals", {"requestedAmount": "1.005"}, [], ["requestedAmount"], "INVALID"),
    ("above paid", {"requestedAmount": "9.11"}, [], ["requestedAmount"], "AMOUNT_TOO_LARGE"),
    ("negative", {"requestedAmount": "-1"}, [], ["requestedAmount"], "INVALID"),
    ("bad url", {"evidenceUrls": ["file:///etc/passwd"]}, [], ["evidenceUrls", "0"], "INVALID"),
    (
        "too many",
        {"evidenceUrls": [f"https://i.example/{n}.png" for n in range(11)]},
        [],
        ["evidence"],
        "TOO_MANY",
    ),
]


@pytest.mark.parametrize(
    ("name", "overrides", "files", "field", "code"), EDGE_REFUSALS, ids=[r[0] for r in EDGE_REFUSALS]
)
async def test_open_refused_at_the_edge(
    api: Api,
    tenant: Tenant,
    name: str,
    overrides: dict[str, Any],
    files: list[tuple[str, bytes, str]],
    field: list[str],
    code: str,
) -> None:
    _, so_id = await shipped(api, tenant)
    if files:
        payload = (await upload(api, tenant.merchant_token, OPEN, open_input(so_id, **overrides), files))[
            "disputeOpen"
        ]
    else:
        payload = await run(api, tenant.merchant_token, OPEN, open_input(so_id, **overrides))
    assert payload["dispute"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert (await api.data(tenant.merchant_token, LIST))["disputes"]["nodes"] == []


# --- access ---------------------------------------------------------------------------------------------


async def test_only_the_shop_and_its_supplier_see_and_act(
    api: Api, tenant: Tenant, other_tenant: Tenant, admin_token: str
) -> None:
    _, _, dispute_id = await opened(api, tenant)
    # Another shop, and the shop's other supplier: as if it did not exist.
    for token in (other_tenant.merchant_token, tenant.supplier_tokens[1], other_tenant.supplier_tokens[0]):
        assert (await api.data(token, NODE, {"id": dispute_id}))["node"] is None
        assert (await api.data(token, LIST))["disputes"]["nodes"] == []
    gone = await run(api, other_tenant.merchant_token, CANCEL, {"id": dispute_id})
    assert [e["code"] for e in gone["userErrors"]] == ["NOT_FOUND"]
    gone = await run(
        api, tenant.supplier_tokens[1], RESPOND, {"id": dispute_id, "action": "REFUSE", "message": "no"}
    )
    assert [e["code"] for e in gone["userErrors"]] == ["NOT_FOUND"]

    # Roles: a merchant cannot respond, a supplier cannot accept or rule, only an admin rules.
    async def forbidden(token: str, query: str, input: dict[str, Any]) -> None:
        body = await api.gql(token, query, {"input": input})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body

    await forbidden(tenant.merchant_token, RESPOND, {"id": dispute_id, "action": "PROPOSE_RESEND"})
    await run(api, tenant.supplier_tokens[0], RESPOND, {"id": dispute_id, "action": "PROPOSE_RESEND"})
    await forbidden(tenant.supplier_tokens[0], ACCEPT, {"id": dispute_id})
    await forbidden(tenant.supplier_tokens[0], CANCEL, {"id": dispute_id})
    await forbidden(tenant.supplier_tokens[0], RULE, {"id": dispute_id, "outcome": "SUPPLIER"})
    await forbidden(tenant.merchant_token, RULE, {"id": dispute_id, "outcome": "MERCHANT"})
    await forbidden(tenant.readonly_token, CANCEL, {"id": dispute_id})
    # The supplier reads the dispute but not the merchant's order behind it.
    body = await api.gql(
        tenant.supplier_tokens[0],
        "query($id: ID!) { node(id: $id) { ... on Dispute { order { id } } } }",
        {"id": dispute_id},
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The admin sees every dispute.
    assert [n["id"] for n in (await api.data(admin_token, LIST))["disputes"]["nodes"]] == [dispute_id]


async def test_evidence_links_are_checked(
    api: Api, tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    _, so_id = await shipped(api, tenant)
    data = await upload(api, tenant.merchant_token, OPEN, open_input(so_id), [("a.png", PNG, "image/png")])
    url = data["disputeOpen"]["dispute"]["messages"][0]["attachments"][0]["url"]
    path, query = local(url).split("?")
    assert (await api.client.get(f"{path}?{query}")).status_code == 200
    assert (await api.client.get(path)).status_code == 403
    tampered = query[:-1] + ("1" if query.endswith("0") else "0")
    assert (await api.client.get(f"{path}?{tampered}")).status_code == 403
    attachment_id = int(path.split("/")[3])
    # A link for another audience cannot be made from this one, and a genuine one for another shop is refused.
    other_shop = path.replace(f"shop-{tenant.shop_id}", f"shop-{other_tenant.shop_id}")
    assert (await api.client.get(f"{other_shop}?{query}")).status_code == 403
    foreign = signed_url(
        "",
        settings.secret_key,
        evidence_path(attachment_id, f"shop-{other_tenant.shop_id}"),
        datetime.now(UTC) + timedelta(minutes=5),
    )
    assert (await api.client.get(foreign)).status_code == 404
    other_supplier = signed_url(
        "",
        settings.secret_key,
        evidence_path(attachment_id, f"supplier-{tenant.supplier_ids[1]}"),
        datetime.now(UTC) + timedelta(minutes=5),
    )
    assert (await api.client.get(other_supplier)).status_code == 404
    expired = signed_url(
        "",
        settings.secret_key,
        evidence_path(attachment_id, f"shop-{tenant.shop_id}"),
        datetime.now(UTC) - timedelta(seconds=1),
    )
    assert (await api.client.get(expired)).status_code == 410


# --- webhooks -------------------------------------------------------------------------------------------


async def test_supplier_answers_by_webhook_idempotently(api: Api, tenant: Tenant) -> None:
    _, _, dispute_id = await opened(api, tenant)
    message = {
        "type": "dispute.message",
        "data": {
            "id": dispute_id,
            "body": "here is our packing video",
            "evidenceUrls": ["https://v.example/p.mp4"],
        },
    }
    raw, headers = signed(message)
    first = await send(api, tenant.supplier_ids[0], raw, headers)
    assert first.status_code == 200, first.text
    replay = await send(api, tenant.supplier_ids[0], raw, headers)
    assert (replay.status_code, replay.json()) == (200, first.json())
    assert replay.headers["dropdesk-webhook-replay"] == "true"

    responded = {
        "type": "dispute.responded",
        "data": {"id": dispute_id, "action": "PROPOSE_REFUND", "amount": "3.00"},
    }
    raw, headers = signed(responded)
    answer = await send(api, tenant.supplier_ids[0], raw, headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["dispute"] == {
        "id": dispute_id,
        "status": "SUPPLIER_RESPONDED",
        "proposal": {"action": "PROPOSE_REFUND", "amount": "3.00"},
    }
    again = await send(api, tenant.supplier_ids[0], *signed(responded))  # a new webhook id: the rules refuse
    assert again.status_code == 409
    assert [e["code"] for e in again.json()["userErrors"]] == ["INVALID_STATE"]

    node = (
        await api.data(
            tenant.merchant_token,
            "query($id: ID!) { node(id: $id) { ... on Dispute { messages { author body attachments { url contentType } } } } }",
            {"id": dispute_id},
        )
    )["node"]
    assert node["messages"][1] == {
        "author": "SUPPLIER",
        "body": "here is our packing video",
        "attachments": [{"url": "https://v.example/p.mp4", "contentType": "video/mp4"}],
    }


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"action": "PROPOSE_REFUND", "amount": 3.1}, 400),  # a JSON number would have gone through a float
        ({"action": "PROPOSE_REFUND", "amount": "abc"}, 400),
        ({"action": "MAYBE"}, 400),
        ({"action": "PROPOSE_REFUND", "amount": "3.001"}, 422),
        ({"action": "PROPOSE_REFUND", "amount": "99.00"}, 422),
    ],
)
async def test_bad_webhook_responses_are_refused(
    api: Api, tenant: Tenant, data: dict[str, Any], status: int
) -> None:
    _, _, dispute_id = await opened(api, tenant)
    response = await send(
        api,
        tenant.supplier_ids[0],
        *signed({"type": "dispute.responded", "data": {"id": dispute_id, **data}}),
    )
    assert response.status_code == status, response.text
    assert (await api.data(tenant.merchant_token, NODE, {"id": dispute_id}))["node"][
        "status"
    ] == "AWAITING_SUPPLIER"


# --- no N+1 ---------------------------------------------------------------------------------------------


async def test_listing_disputes_costs_the_same_for_one_or_many(api: Api, tenant: Tenant) -> None:
    query = f"{{ disputes(first: 50) {{ nodes {{ {DISPUTE_FIELDS} }} }} }}"

    async def count() -> int:
        counter = StatementCounter()
        token = statement_counter.set(counter)
        try:
            await api.data(tenant.merchant_token, query)
        finally:
            statement_counter.reset(token)
        return counter.count

    await opened(api, tenant, "#1001")
    one = await count()
    for number in ("#1002", "#1003", "#1004"):
        _, _, pk = await opened(api, tenant, number, evidenceUrls=["https://i.example/a.png"])
        await run(api, tenant.merchant_token, MESSAGE, {"id": pk, "body": "and another"})
    # One statement per level of the selection, however many disputes.
    assert await count() == one <= 5
    assert parse_id((await api.data(tenant.merchant_token, LIST))["disputes"]["nodes"][0]["id"], "Dispute")


async def test_a_multipart_body_larger_than_any_message_may_be_is_refused_unread(
    api: Api, tenant: Tenant
) -> None:
    too_large = CAP * 10 + 1024 * 1024 + 1
    response = await api.client.post(
        "/graphql",
        content=b"--x--",
        headers={
            "Authorization": f"Bearer {tenant.merchant_token}",
            "content-type": "multipart/form-data; boundary=x",
            "content-length": str(too_large),
        },
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "TOO_LARGE"
