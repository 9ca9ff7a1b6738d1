"""Notes on orders (staff-only and supplier-facing) and single-order tag mutations over GraphQL."""

from __future__ import annotations

from typing import Any

import pytest

from db.engine import StatementCounter, statement_counter
from tests.factories import Api, Tenant, order_input

ADD = """mutation($input: OrderNoteAddInput!) { orderNoteAdd(input: $input) {
  note { id body visibility authorName supplierOrderId } userErrors { field message code } } }"""
DELETE = """mutation($input: OrderNoteDeleteInput!) { orderNoteDelete(input: $input) {
  deletedNoteId userErrors { field message code } } }"""
ORDER = """query($id: ID!) { order(id: $id) { tags notes { body visibility authorName }
  events { type actorName message } supplierOrders { id notes { body visibility } } } }"""
SUPPLIER_VIEW = "{ supplierOrders(first: 10) { nodes { id notes { body visibility authorName } } } }"
TAGS_ADD = """mutation($input: OrderTagsInput!) { orderTagsAdd(input: $input) {
  order { tags } userErrors { field message code } } }"""
TAGS_REMOVE = """mutation($input: OrderTagsInput!) { orderTagsRemove(input: $input) {
  order { tags } userErrors { field message code } } }"""


async def add(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    return dict((await api.data(token, ADD, {"input": fields}))["orderNoteAdd"])


async def test_supplier_notes_reach_only_their_supplier_and_staff_notes_nobody(
    api: Api, tenant: Tenant
) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#7001"))
    first_so, second_so = (so["id"] for so in order["supplierOrders"])
    staff = await add(api, tenant.merchant_token, orderId=order["id"], body="Customer is a reseller")
    assert staff["userErrors"] == [] and staff["note"]["visibility"] == "STAFF"
    assert staff["note"]["authorName"] == "staff"
    on_first = await add(
        api,
        tenant.merchant_token,
        orderId=order["id"],
        body="Please use plain packaging",
        visibility="SUPPLIER",
        supplierOrderId=first_so,
    )
    assert on_first["userErrors"] == [] and on_first["note"]["supplierOrderId"] == first_so
    staff_on_second = await add(
        api,
        tenant.merchant_token,
        orderId=order["id"],
        body="Supplier was slow last time",
        visibility="STAFF",
        supplierOrderId=second_so,
    )
    assert staff_on_second["userErrors"] == []

    seen = (await api.data(tenant.merchant_token, ORDER, {"id": order["id"]}))["order"]
    assert [(n["body"], n["visibility"]) for n in seen["notes"]] == [
        ("Customer is a reseller", "STAFF"),
        ("Please use plain packaging", "SUPPLIER"),
        ("Supplier was slow last time", "STAFF"),
    ]
    assert [e["actorName"] for e in seen["events"] if e["type"] == "note_added"] == ["staff"] * 3
    assert "Please use plain packaging" in " ".join(e["message"] for e in seen["events"])

    first_view = (await api.data(tenant.supplier_tokens[0], SUPPLIER_VIEW))["supplierOrders"]["nodes"]
    assert first_view == [
        {
            "id": first_so,
            "notes": [
                {"body": "Please use plain packaging", "visibility": "SUPPLIER", "authorName": "staff"}
            ],
        }
    ]
    second_view = (await api.data(tenant.supplier_tokens[1], SUPPLIER_VIEW))["supplierOrders"]["nodes"]
    assert second_view == [{"id": second_so, "notes": []}]  # its STAFF note never reaches it
    node = await api.gql(
        tenant.supplier_tokens[1],
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": staff_on_second["note"]["id"]},
    )
    assert node["data"]["node"] is None

    deleted = await api.data(tenant.merchant_token, DELETE, {"input": {"id": on_first["note"]["id"]}})
    assert deleted["orderNoteDelete"] == {"deletedNoteId": on_first["note"]["id"], "userErrors": []}
    assert (await api.data(tenant.supplier_tokens[0], SUPPLIER_VIEW))["supplierOrders"]["nodes"][0][
        "notes"
    ] == []
    seen = (await api.data(tenant.merchant_token, ORDER, {"id": order["id"]}))["order"]
    assert [e["type"] for e in seen["events"]][-1] == "note_deleted"


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"body": ""}, ["body"], "REQUIRED"),
        ({"body": "x" * 5001}, ["body"], "TOO_LONG"),
        ({"body": "for the supplier", "visibility": "SUPPLIER"}, ["supplierOrderId"], "REQUIRED"),
        (
            {"body": "b", "supplierOrderId": "gid://dropdesk/SupplierOrder/999999"},
            ["supplierOrderId"],
            "NOT_FOUND",
        ),
        ({"body": "b", "supplierOrderId": "not-an-id"}, ["supplierOrderId"], "INVALID"),
        ({"body": "b", "orderId": "gid://dropdesk/Order/999999"}, ["orderId"], "NOT_FOUND"),
    ],
)
async def test_note_refusals(
    api: Api, tenant: Tenant, fields: dict[str, Any], field: list[str], code: str
) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#7101"))
    payload = await add(api, tenant.merchant_token, **{"orderId": order["id"], **fields})
    assert payload["note"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert (await api.data(tenant.merchant_token, ORDER, {"id": order["id"]}))["order"]["notes"] == []


async def test_notes_and_tags_keep_to_their_shop(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#7201"))
    [theirs] = await api.import_orders(other_tenant, order_input(other_tenant, "#7201"))
    note = (await add(api, tenant.merchant_token, orderId=order["id"], body="mine"))["note"]
    # Another shop: the order, the supplier order and the note are unknown ids to it.
    refused = await add(api, other_tenant.merchant_token, orderId=order["id"], body="x")
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["orderId"], "NOT_FOUND")]
    foreign_so = theirs["supplierOrders"][0]["id"]
    refused = await add(
        api,
        tenant.merchant_token,
        orderId=order["id"],
        body="x",
        visibility="SUPPLIER",
        supplierOrderId=foreign_so,
    )
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["supplierOrderId"], "NOT_FOUND")]
    gone = (await api.data(other_tenant.merchant_token, DELETE, {"input": {"id": note["id"]}}))[
        "orderNoteDelete"
    ]
    assert [(e["field"], e["code"]) for e in gone["userErrors"]] == [(["id"], "NOT_FOUND")]
    tags = await api.data(
        other_tenant.merchant_token, TAGS_ADD, {"input": {"id": order["id"], "tags": ["x"]}}
    )
    assert [(e["field"], e["code"]) for e in tags["orderTagsAdd"]["userErrors"]] == [(["id"], "NOT_FOUND")]
    for token in (tenant.readonly_token, tenant.supplier_tokens[0]):
        for query, variables in (
            (ADD, {"input": {"orderId": order["id"], "body": "x"}}),
            (DELETE, {"input": {"id": note["id"]}}),
            (TAGS_ADD, {"input": {"id": order["id"], "tags": ["x"]}}),
        ):
            body = await api.gql(token, query, variables)
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    seen = (await api.data(tenant.merchant_token, ORDER, {"id": order["id"]}))["order"]
    assert [n["body"] for n in seen["notes"]] == ["mine"] and seen["tags"] == ["vip"]


async def test_tag_mutations_add_once_remove_case_insensitively_and_refuse_bad_tags(
    api: Api, tenant: Tenant
) -> None:
    [order] = await api.import_orders(tenant, order_input(tenant, "#7301"))
    added = await api.data(
        tenant.merchant_token, TAGS_ADD, {"input": {"id": order["id"], "tags": ["VIP", " rush "]}}
    )
    assert added["orderTagsAdd"] == {"order": {"tags": ["vip", "rush"]}, "userErrors": []}
    removed = await api.data(
        tenant.merchant_token, TAGS_REMOVE, {"input": {"id": order["id"], "tags": ["RUSH"]}}
    )
    assert removed["orderTagsRemove"] == {"order": {"tags": ["vip"]}, "userErrors": []}
    for tags, field, code in (
        ([], ["tags"], "REQUIRED"),
        (["a,b"], ["tags", "0"], "INVALID"),
        ([f"t{i}" for i in range(41)], ["tags"], "TOO_MANY"),
    ):
        refused = await api.data(
            tenant.merchant_token, TAGS_ADD, {"input": {"id": order["id"], "tags": tags}}
        )
        assert [(e["field"], e["code"]) for e in refused["orderTagsAdd"]["userErrors"]] == [(field, code)]
    events = (await api.data(tenant.merchant_token, ORDER, {"id": order["id"]}))["order"]["events"]
    assert [e["type"] for e in events if e["type"].startswith("tags")] == ["tags_added", "tags_removed"]


NOTES_PAGE = """query($first: Int!) { orders(first: $first) { nodes { number notes { body }
  supplierOrders { notes { body } } } } }"""


async def test_notes_do_not_add_statements_per_order(api: Api, tenant: Tenant) -> None:
    orders = await api.import_orders(tenant, *(order_input(tenant, f"#74{n:02d}") for n in range(30)))
    for order in orders:
        so = order["supplierOrders"][0]["id"]
        for fields in (
            {"body": "staff"},
            {"body": "supplier", "visibility": "SUPPLIER", "supplierOrderId": so},
        ):
            assert (await add(api, tenant.merchant_token, orderId=order["id"], **fields))["userErrors"] == []
    counts = []
    for first in (3, 30):
        counter = StatementCounter()
        reset = statement_counter.set(counter)
        try:
            data = await api.data(tenant.merchant_token, NOTES_PAGE, {"first": first})
        finally:
            statement_counter.reset(reset)
        assert all(len(order["notes"]) == 2 for order in data["orders"]["nodes"])
        counts.append(counter.count)
    assert counts[0] == counts[1]
