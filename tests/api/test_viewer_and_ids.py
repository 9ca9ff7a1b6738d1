"""Every kind of token can ask who it is; ids that are not ids are refused with a message naming the argument;
an expired token is told so."""

from __future__ import annotations

from datetime import timedelta

import pytest

from db.engine import Database
from db.models import TokenKind
from db.types import utcnow
from domain.tokens import issue_token
from tests.factories import Api, Tenant, order_input

VIEWER = """{ viewer { kind name scopes expiresAt shop { name } supplier { id name } } }"""


async def test_viewer_answers_for_merchant_supplier_and_admin(api: Api, tenant: Tenant, db: Database) -> None:
    async with db.write() as session:
        admin = issue_token(session, kind=TokenKind.ADMIN, name="ops on call").raw

    merchant = (await api.data(tenant.merchant_token, VIEWER))["viewer"]
    supplier = (await api.data(tenant.supplier_tokens[1], VIEWER))["viewer"]
    platform = (await api.data(admin, VIEWER))["viewer"]

    assert merchant["kind"] == "MERCHANT" and merchant["name"] == "staff"
    assert "read_orders" in merchant["scopes"] and merchant["shop"]["name"].startswith("Shop ")
    assert merchant["supplier"] is None
    assert supplier["kind"] == "SUPPLIER" and supplier["shop"] is None and supplier["scopes"] == []
    assert supplier["supplier"]["id"] == tenant.supplier_gid(1)
    assert supplier["name"] == f"supplier {supplier['supplier']['name']}"
    assert platform == {
        "kind": "ADMIN",
        "name": "ops on call",
        "scopes": [],
        "expiresAt": None,
        "shop": None,
        "supplier": None,
    }


async def test_expired_token_gets_401_saying_so(api: Api, tenant: Tenant, db: Database) -> None:
    now = utcnow().replace(microsecond=0)
    async with db.write() as session:
        shop_id = tenant.shop_id
        expired = issue_token(
            session,
            kind=TokenKind.MERCHANT,
            name="old",
            shop_id=shop_id,
            expires_at=now - timedelta(seconds=1),
        ).raw
        fresh = issue_token(
            session, kind=TokenKind.MERCHANT, name="new", shop_id=shop_id, expires_at=now + timedelta(days=30)
        ).raw

    refused = await api.post(expired, "{ viewer { name } }")
    assert refused.status_code == 401
    [error] = refused.json()["errors"]
    assert error["message"].startswith("token expired at ")
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await api.post("ddm_" + "0" * 40, "{ viewer { name } }")).json()["errors"][0]["message"] == (
        "invalid or revoked token"
    )
    viewer = (await api.data(fresh, "{ viewer { name expiresAt } }"))["viewer"]
    assert viewer["name"] == "new"
    assert viewer["expiresAt"].startswith((now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S"))


MALFORMED = ["120", "gid://dropdesk/Order/abc", "gid://shopify/Order/1", "gid://dropdesk/Nope/1", ""]


@pytest.mark.parametrize("value", MALFORMED)
async def test_malformed_ids_in_queries_are_bad_user_input(api: Api, tenant: Tenant, value: str) -> None:
    for query, argument in (
        ("query($id: ID!) { order(id: $id) { id } }", "id"),
        ("query($id: ID!) { node(id: $id) { id } }", "id"),
        ("query($id: ID!) { nodes(ids: [$id]) { id } }", "ids[0]"),
    ):
        body = await api.gql(tenant.merchant_token, query, {"id": value})
        [error] = body["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}, query
        assert error["message"].startswith(f"argument {argument}: ")


async def test_ids_of_another_type_are_refused_and_unknown_ids_are_null(api: Api, tenant: Tenant) -> None:
    [created] = await api.import_orders(tenant, order_input(tenant, "#1001"))
    so_id = created["supplierOrders"][0]["id"]
    body = await api.gql(tenant.merchant_token, "query($id: ID!) { order(id: $id) { id } }", {"id": so_id})
    assert "is a SupplierOrder id: expected gid://dropdesk/Order/<number>" in body["errors"][0]["message"]
    unknown = await api.data(
        tenant.merchant_token,
        '{ order(id: "gid://dropdesk/Order/999999") { id } node(id: "gid://dropdesk/Shop/999999") { id } }',
    )
    assert unknown == {"order": None, "node": None}


@pytest.mark.parametrize("value", ["120", "gid://dropdesk/Order/1", "gid://shopify/SupplierOrder/1"])
async def test_malformed_ids_in_mutations_are_user_errors_naming_the_field(
    api: Api, tenant: Tenant, value: str
) -> None:
    decide = await api.data(
        tenant.supplier_tokens[0],
        "mutation($id: ID!) { cancellationRequestDecide(input: {id: $id, decision: APPROVE}) "
        "{ cancellationRequest { id } userErrors { field code message } } }",
        {"id": value},
    )
    [error] = decide["cancellationRequestDecide"]["userErrors"]
    assert error["field"] == ["id"] and error["code"] == "INVALID"
    assert "gid://dropdesk/CancellationRequest/<number>" in error["message"]
    update = await api.data(
        tenant.supplier_tokens[0],
        "mutation($id: ID!) { supplierOrderUpdate(input: {id: $id, status: WAIT_BUYER_ACCEPT_GOODS}) "
        "{ userErrors { field code } } }",
        {"id": value},
    )
    assert update["supplierOrderUpdate"]["userErrors"] == [{"field": ["id"], "code": "INVALID"}]


async def test_root_leads_to_graphiql(api: Api) -> None:
    response = await api.client.get("/", follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "/graphql"
