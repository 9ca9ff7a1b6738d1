"""ordersImport refuses bad input with userErrors naming the field, and writes nothing at all."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import IMPORT, Api, Tenant, order_input


def _with(tenant: Tenant, change: Any) -> dict[str, Any]:
    order = order_input(tenant, "#2001")
    change(order, tenant)
    return order


def _set_line(key: str, value: Any) -> Any:
    def change(order: dict[str, Any], tenant: Tenant) -> None:
        order["lines"][1][key] = value

    return change


def _set(key: str, value: Any) -> Any:
    def change(order: dict[str, Any], tenant: Tenant) -> None:
        order[key] = value

    return change


def _many_lines(order: dict[str, Any], tenant: Tenant) -> None:
    line = {"title": "Sticker", "quantity": 1, "unitPrice": "1.00"}
    order["lines"] = [dict(line, sku=f"S{n}") for n in range(10_000)]
    order["supplierOrders"] = []


def _unknown_supplier(order: dict[str, Any], tenant: Tenant) -> None:
    order["lines"][1]["supplierId"] = "gid://dropdesk/Supplier/987654"


def _wrong_id_type(order: dict[str, Any], tenant: Tenant) -> None:
    order["lines"][1]["supplierId"] = "gid://dropdesk/Order/1"


def _bad_email(order: dict[str, Any], tenant: Tenant) -> None:
    order["customer"]["email"] = "not-an-email"


CASES = [
    ("negative quantity", _set_line("quantity", -2), ["orders", "0", "lines", "1", "quantity"], "INVALID"),
    ("zero quantity", _set_line("quantity", 0), ["orders", "0", "lines", "1", "quantity"], "INVALID"),
    (
        "negative price",
        _set_line("unitPrice", "-1.00"),
        ["orders", "0", "lines", "1", "unitPrice"],
        "INVALID",
    ),
    (
        "three decimals in USD",
        _set_line("unitPrice", "1.005"),
        ["orders", "0", "lines", "1", "unitPrice"],
        "INVALID",
    ),
    ("unknown currency", _set("currencyCode", "ZZZ"), ["orders", "0", "currencyCode"], "INVALID"),
    ("no lines", _set("lines", []), ["orders", "0", "lines"], "REQUIRED"),
    ("10,000 lines", _many_lines, ["orders", "0", "lines"], "TOO_MANY"),
    ("bad email", _bad_email, ["orders", "0", "customer", "email"], "INVALID"),
    ("unknown supplier", _unknown_supplier, ["orders", "0", "lines", "1", "supplierId"], "NOT_FOUND"),
    ("id of another type", _wrong_id_type, ["orders", "0", "lines", "1", "supplierId"], "INVALID"),
    ("empty title", _set_line("title", " "), ["orders", "0", "lines", "1", "title"], "REQUIRED"),
    (
        "image url not http",
        _set_line("imageUrl", "javascript:alert(1)"),
        ["orders", "0", "lines", "1", "imageUrl"],
        "INVALID",
    ),
    ("tag with comma", _set("tags", ["a,b"]), ["orders", "0", "tags", "0"], "INVALID"),
    ("long number", _set("number", "#" + "9" * 60), ["orders", "0", "number"], "TOO_LONG"),
]


@pytest.mark.parametrize(("case", "change", "field", "code"), CASES, ids=[case[0] for case in CASES])
async def test_bad_order_is_refused_and_nothing_is_written(
    api: Api, tenant: Tenant, case: str, change: Any, field: list[str], code: str
) -> None:
    good = order_input(tenant, "#2000")
    bad = _with(tenant, change)
    body = await api.data(tenant.merchant_token, IMPORT, {"input": {"orders": [bad, good]}})
    payload = body["ordersImport"]
    assert payload["orders"] == []
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in payload["userErrors"]
    ]
    assert all(error["message"] for error in payload["userErrors"])
    # All or nothing: the good order in the same call was not written either.
    assert (await api.data(tenant.merchant_token, "{ ordersCount }"))["ordersCount"] == 0


async def test_duplicate_number_in_one_call(api: Api, tenant: Tenant) -> None:
    order = order_input(tenant, "#2000")
    body = await api.data(tenant.merchant_token, IMPORT, {"input": {"orders": [order, order]}})
    assert body["ordersImport"]["userErrors"][0]["code"] == "ALREADY_EXISTS"


async def test_aliexpress_order_of_another_order_is_refused(api: Api, tenant: Tenant) -> None:
    first = order_input(tenant, "#2000")
    await api.import_orders(tenant, first)
    second = order_input(tenant, "#2001")
    second["lines"][0]["aliexpressOrderId"] = first["supplierOrders"][0]["aliexpressOrderId"]
    second["supplierOrders"][0]["aliexpressOrderId"] = first["supplierOrders"][0]["aliexpressOrderId"]
    body = await api.data(tenant.merchant_token, IMPORT, {"input": {"orders": [second]}})
    errors = body["ordersImport"]["userErrors"]
    assert errors[0]["code"] == "ALREADY_EXISTS"
    assert errors[0]["field"] == ["orders", "0", "supplierOrders", "0", "aliexpressOrderId"]


async def test_reimport_cannot_move_a_supplier_order_out_of_an_open_cancellation(
    api: Api, tenant: Tenant
) -> None:
    order = order_input(tenant, "#2000", split=False)
    [created] = await api.import_orders(tenant, order)
    requested = await api.data(
        tenant.merchant_token,
        """mutation($id: ID!) { cancellationRequestCreate(input: {supplierOrderId: $id, reason: DUPLICATE_ORDER}) {
             cancellationRequest { status } userErrors { code } } }""",
        {"id": created["supplierOrders"][0]["id"]},
    )
    assert requested["cancellationRequestCreate"]["cancellationRequest"]["status"] == "PENDING"
    body = await api.data(tenant.merchant_token, IMPORT, {"input": {"orders": [order]}})
    errors = body["ordersImport"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [
        (["orders", "0", "supplierOrders", "0", "status"], "INVALID_STATE")
    ]
    order["supplierOrders"][0]["status"] = "IN_CANCEL"
    assert await api.import_orders(tenant, order)


async def test_import_cannot_start_in_cancel(api: Api, tenant: Tenant) -> None:
    order = order_input(tenant, "#2000", supplier_status="IN_CANCEL", split=False)
    body = await api.data(tenant.merchant_token, IMPORT, {"input": {"orders": [order]}})
    assert body["ordersImport"]["userErrors"][0]["code"] == "INVALID_STATE"
