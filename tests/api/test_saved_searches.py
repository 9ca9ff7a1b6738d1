"""Saved order views over GraphQL: create, list, apply to orders and ordersCount, refusals, tenancy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from db.engine import Database
from db.models import SavedSearch
from demo.generator import seed_demo
from schema.ids import parse_id
from tests.factories import Api, Tenant, order_input

FIELDS = "savedSearch { id name query sortKey reverse queryError } userErrors { field message code }"
CREATE = f"mutation($input: SavedSearchCreateInput!) {{ savedSearchCreate(input: $input) {{ {FIELDS} }} }}"
UPDATE = f"mutation($input: SavedSearchUpdateInput!) {{ savedSearchUpdate(input: $input) {{ {FIELDS} }} }}"
DELETE = """mutation($input: SavedSearchDeleteInput!) {
  savedSearchDelete(input: $input) { deletedSavedSearchId userErrors { field message code } } }"""
LIST = "{ savedSearches(first: 50) { nodes { id name query sortKey reverse queryError createdBy } } }"
ORDERS = """query($saved: ID, $query: String) {
  orders(first: 50, savedSearchId: $saved, query: $query) { nodes { number } }
  ordersCount(savedSearchId: $saved, query: $query) }"""


async def create(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    return dict((await api.data(token, CREATE, {"input": fields}))["savedSearchCreate"])


async def seed_orders(api: Api, tenant: Tenant) -> None:
    await api.import_orders(
        tenant,
        order_input(tenant, "#1001", tags=["vip"]),
        order_input(tenant, "#1002", tags=["vip", "wholesale"]),
        order_input(tenant, "#1003", tags=["wholesale"], supplier_status="WAIT_BUYER_ACCEPT_GOODS"),
    )


async def test_a_saved_view_lists_and_applies_its_query_and_sort_anded_with_query(
    api: Api, tenant: Tenant
) -> None:
    await seed_orders(api, tenant)
    payload = await create(
        api, tenant.merchant_token, name="Wholesale", query="tag:wholesale", sortKey="NUMBER", reverse=True
    )
    assert payload["userErrors"] == []
    saved = payload["savedSearch"]
    assert saved["name"] == "Wholesale" and saved["sortKey"] == "NUMBER" and saved["reverse"] is True
    assert saved["queryError"] is None

    # Shared by every merchant token of the shop, read-only ones included.
    listed = (await api.data(tenant.readonly_token, LIST))["savedSearches"]["nodes"]
    assert [(row["name"], row["createdBy"]) for row in listed] == [("Wholesale", "staff")]

    data = await api.data(tenant.readonly_token, ORDERS, {"saved": saved["id"]})
    assert [row["number"] for row in data["orders"]["nodes"]] == ["#1003", "#1002"]  # the view's sort
    assert data["ordersCount"] == 2
    data = await api.data(tenant.readonly_token, ORDERS, {"saved": saved["id"], "query": "tag:vip"})
    assert [row["number"] for row in data["orders"]["nodes"]] == ["#1002"]
    assert data["ordersCount"] == 1

    changed = (
        await api.data(
            tenant.merchant_token,
            UPDATE,
            {"input": {"id": saved["id"], "query": "tag:vip", "reverse": False}},
        )
    )["savedSearchUpdate"]
    assert changed["userErrors"] == []
    assert changed["savedSearch"]["name"] == "Wholesale" and changed["savedSearch"]["sortKey"] == "NUMBER"
    data = await api.data(tenant.readonly_token, ORDERS, {"saved": saved["id"]})
    assert [row["number"] for row in data["orders"]["nodes"]] == ["#1001", "#1002"]

    deleted = (await api.data(tenant.merchant_token, DELETE, {"input": {"id": saved["id"]}}))[
        "savedSearchDelete"
    ]
    assert deleted == {"deletedSavedSearchId": saved["id"], "userErrors": []}
    assert (await api.data(tenant.merchant_token, LIST))["savedSearches"]["nodes"] == []


async def test_a_view_whose_query_no_longer_parses_reports_the_parse_error(
    api: Api, tenant: Tenant, db: Database
) -> None:
    await seed_orders(api, tenant)
    saved = (await create(api, tenant.merchant_token, name="Old", query="tag:vip"))["savedSearch"]
    # As if the search syntax had dropped a value since the view was saved.
    async with db.write() as session:
        pk = parse_id(saved["id"], "SavedSearch")
        await session.execute(update(SavedSearch).where(SavedSearch.id == pk).values(query="has:gift_card"))
    body = await api.gql(tenant.merchant_token, ORDERS, {"saved": saved["id"]})
    assert body["data"] is None
    error = body["errors"][0]
    assert (
        error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["argument"] == "savedSearchId"
    )
    assert "'Old'" in error["message"] and "gift_card" in error["message"]
    listed = (await api.data(tenant.merchant_token, LIST))["savedSearches"]["nodes"]
    assert "unknown value 'gift_card'" in listed[0]["queryError"]


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"name": ""}, ["name"], "REQUIRED"),
        ({"name": "x" * 101}, ["name"], "TOO_LONG"),
        ({"name": "Broken", "query": "tag:vip OR"}, ["query"], "INVALID_QUERY"),
        ({"name": "Broken", "query": "has:nothing"}, ["query"], "INVALID_QUERY"),
        ({"name": "Taken"}, ["name"], "ALREADY_EXISTS"),
    ],
)
async def test_create_refusals(
    api: Api, tenant: Tenant, fields: dict[str, Any], field: list[str], code: str
) -> None:
    assert (await create(api, tenant.merchant_token, name="Taken"))["userErrors"] == []
    payload = await create(api, tenant.merchant_token, **fields)
    assert payload["savedSearch"] is None
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(field, code)]
    assert len((await api.data(tenant.merchant_token, LIST))["savedSearches"]["nodes"]) == 1


async def test_tenancy_and_scopes(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    saved = (await create(api, tenant.merchant_token, name="Mine", query="tag:vip"))["savedSearch"]
    # Another shop: not listed, not applicable, not changeable, exactly as an unknown id.
    assert (await api.data(other_tenant.merchant_token, LIST))["savedSearches"]["nodes"] == []
    body = await api.gql(other_tenant.merchant_token, ORDERS, {"saved": saved["id"]})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    unknown = await api.gql(
        other_tenant.merchant_token, ORDERS, {"saved": "gid://dropdesk/SavedSearch/999999"}
    )
    assert unknown["errors"][0]["message"] == body["errors"][0]["message"]
    for query, name in ((UPDATE, "savedSearchUpdate"), (DELETE, "savedSearchDelete")):
        variables = {
            "input": {"id": saved["id"], "name": "Theirs"}
            if name == "savedSearchUpdate"
            else {"id": saved["id"]}
        }
        payload = (await api.data(other_tenant.merchant_token, query, variables))[name]
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "NOT_FOUND")]
    # A read-only token and suppliers may not write; suppliers do not even read the views.
    for token in (tenant.readonly_token, tenant.supplier_tokens[0]):
        body = await api.gql(token, CREATE, {"input": {"name": "Nope"}})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api.gql(tenant.supplier_tokens[0], LIST)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    listed = (await api.data(tenant.merchant_token, LIST))["savedSearches"]["nodes"]
    assert [(row["name"], row["query"]) for row in listed] == [("Mine", "tag:vip")]


async def test_demo_shops_start_with_views_that_parse_and_find_orders(api: Api, db: Database) -> None:
    demo = await seed_demo(db, orders=200, seed=1, secret_key="demo-secret")
    for token in demo.merchant_tokens.values():
        listed = (await api.data(token, LIST))["savedSearches"]["nodes"]
        names = {row["name"]: row for row in listed}
        assert {"Awaiting shipment over 7 days", "Open disputes", "Refund due"} <= set(names)
        assert all(row["queryError"] is None for row in listed)
    token = next(iter(demo.merchant_tokens.values()))
    views = {row["name"]: row["id"] for row in (await api.data(token, LIST))["savedSearches"]["nodes"]}
    counts = {
        name: (await api.data(token, ORDERS, {"saved": gid}))["ordersCount"] for name, gid in views.items()
    }
    assert counts["Open disputes"] > 0 and counts["Refund due"] >= counts["Open disputes"]
    assert counts["Awaiting shipment over 7 days"] > 0


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"name": "Other"}, ["name"], "ALREADY_EXISTS"),
        ({"name": " "}, ["name"], "REQUIRED"),
        ({"query": "total:>abc"}, ["query"], "INVALID_QUERY"),
        ({"id": "gid://dropdesk/SavedSearch/999999"}, ["id"], "NOT_FOUND"),
        ({"id": "gid://dropdesk/Order/1"}, ["id"], "INVALID"),
    ],
)
async def test_update_refusals_change_nothing(
    api: Api, tenant: Tenant, fields: dict[str, Any], field: list[str], code: str
) -> None:
    saved = (await create(api, tenant.merchant_token, name="Mine", query="tag:vip"))["savedSearch"]
    assert (await create(api, tenant.merchant_token, name="Other"))["userErrors"] == []
    payload = (await api.data(tenant.merchant_token, UPDATE, {"input": {"id": saved["id"], **fields}}))[
        "savedSearchUpdate"
    ]
    assert payload["savedSearch"] is None
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(field, code)]
    listed = (await api.data(tenant.merchant_token, LIST))["savedSearches"]["nodes"]
    assert [(row["name"], row["query"]) for row in listed] == [("Mine", "tag:vip"), ("Other", "")]
