"""Malformed requests at the edge: every one a 4xx with a JSON error and X-Request-Id, never a 500."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import strawberry
from sqlalchemy import func, select

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.models import Order
from schema.cost import CostBuckets
from schema.extensions import Guard, RequestGuard
from tests.api.live import served
from tests.factories import IMPORT, Api, Tenant, order_input


def _assert_json_error(response: httpx.Response, status: int, phrase: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    body: dict[str, Any] = response.json()
    error = body["errors"][0]
    assert error["extensions"]["code"]
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert phrase in error["message"]
    assert "Traceback" not in response.text
    return body


async def _raw(
    api: Api, token: str, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return await api.client.post(
        "/graphql",
        content=content,
        headers={"Authorization": f"Bearer {token}", "content-type": content_type},
    )


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"null", "must be a JSON object"),
        (b'"a string"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b"true", "must be a JSON object"),
        (b'{"query": "{ shop { name } }", "x": "\xff\xfe"}', "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b'{"variables": {}}', "needs a `query` string"),
        (b'{"query": 5}', "needs a `query` string"),
        (b'{"query": "{ shop { name } }", "variables": [1]}', "`variables` must be an object"),
        (b'{"query": "{ shop { name } }", "operationName": 3}', "`operationName` must be a string"),
        (b'{"query": "{ shop { name } }", "extensions": "x"}', "`extensions` must be an object"),
        (b'{"query": "query A { shop { name } }", "operationName": "\\ud800"}', "operationName must not"),
        (b'{"query": "query A { shop { name } }", "operationName": "A\\u0000"}', "operationName must not"),
        (b'{"query": "{ shop { name } }", "extensions": {"k": "\\ud800"}}', "extensions.k must not"),
        (b"[" * 1000 + b"]" * 1000, "nested"),
        (b'{"query": "{ shop { name } }", "variables": {"a": ' + b"[" * 1000 + b"]" * 1000 + b"}}", "nested"),
        (
            b'{"query": "{ shop { name } }", "variables": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
            "nested",
        ),
    ],
    ids=lambda value: value[:24] if isinstance(value, bytes) else value,
)
async def test_malformed_bodies_are_400_json(api: Api, tenant: Tenant, content: bytes, phrase: str) -> None:
    _assert_json_error(await _raw(api, tenant.merchant_token, content), 400, phrase)


async def test_unsupported_content_type_is_415(api: Api, tenant: Tenant) -> None:
    response = await _raw(api, tenant.merchant_token, b"{ shop { name } }", "text/plain")
    _assert_json_error(response, 415, "application/json")


async def test_oversized_body_is_413_before_parsing(api: Api, tenant: Tenant) -> None:
    query = "{ shop { name } }" + " " * 1_100_000
    response = await _raw(api, tenant.merchant_token, json.dumps({"query": query}).encode())
    _assert_json_error(response, 413, "larger than 1000000 bytes")


async def test_a_body_without_length_is_cut_off_at_the_limit(api: Api, tenant: Tenant) -> None:
    sent = 0

    async def chunks() -> Any:
        nonlocal sent
        for _ in range(200):  # 200 x 64 KiB = 12.5 MiB offered, but never a Content-Length
            sent += 1
            yield b" " * 65536

    response = await api.client.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {tenant.merchant_token}", "content-type": "application/json"},
    )
    _assert_json_error(response, 413, "larger than")
    assert sent < 20  # refused after about 1 MB, not after reading everything


async def test_a_declared_50_mb_body_is_refused_before_it_is_sent(db: Database, tenant: Tenant) -> None:
    app = create_app(replace(load_settings(), database_url=db.url), db)
    async with served(app) as base_url:
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(
            (
                "POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                f"Authorization: Bearer {tenant.merchant_token}\r\ncontent-length: 50000000\r\n\r\n"
            ).encode()
            + b'{"query": "'
        )
        await writer.drain()
        started = time.perf_counter()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 413")
        assert b"x-request-id" in head.lower()
        assert time.perf_counter() - started < 5
        writer.close()


async def test_a_document_of_comments_is_refused_before_parsing(api: Api, tenant: Tenant) -> None:
    # 20 MB of comments would stall the event loop while parsed; the body limit refuses it unread.
    comments = "# padding\n" * 2_000_000 + "{ shop { name } }"
    started = time.perf_counter()
    response = await _raw(api, tenant.merchant_token, json.dumps({"query": comments}).encode())
    _assert_json_error(response, 413, "larger than")
    assert time.perf_counter() - started < 2


async def test_comments_count_as_tokens(api: Api, tenant: Tenant) -> None:
    # Small enough for every size limit, but 2,500 comment lines are over the 2,000 tokens.
    query = "#c\n" * 2500 + "{ shop { name } }"
    body = await api.gql(tenant.merchant_token, query)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"
    assert "comments count" in body["errors"][0]["message"]
    assert body.get("data") is None


async def test_query_document_and_variables_limits_are_settings(db: Database, tenant: Tenant) -> None:
    settings = replace(load_settings(), database_url=db.url, max_query_bytes=200, max_variables_bytes=100)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, db)), base_url="http://dropdesk.test"
    ) as client:
        headers = {"Authorization": f"Bearer {tenant.merchant_token}"}
        long_query = "{ shop { name } " + "ordersCount " * 30 + "}"
        response = await client.post("/graphql", json={"query": long_query}, headers=headers)
        _assert_json_error(response, 413, "larger than 200 bytes")
        response = await client.post(
            "/graphql",
            json={"query": "query($q: String) { ordersCount(query: $q) }", "variables": {"q": "x" * 200}},
            headers=headers,
        )
        _assert_json_error(response, 413, "variables are larger than 100 bytes")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("DELETE", "/graphql", 405), ("GET", "/graphql", 404)],
)
async def test_routing_refusals_are_json_with_a_request_id(
    api: Api, tenant: Tenant, method: str, path: str, status: int
) -> None:
    response = await api.client.request(
        method, path, headers={"Authorization": f"Bearer {tenant.merchant_token}"}
    )
    _assert_json_error(response, status)


async def test_missing_and_bad_tokens_are_401_with_a_request_id(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = await api.client.post("/graphql", json={"query": "{ shop { name } }"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["x-request-id"]
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- text that cannot be stored, in every operation ---------------------------------------------------------


async def test_nul_in_a_variable_names_the_field_and_writes_nothing(
    api: Api, tenant: Tenant, db: Database
) -> None:
    order = order_input(tenant, "#7001")
    order["customer"]["name"] = "Ana\x00Lopez"
    body = await api.gql(tenant.merchant_token, IMPORT, {"input": {"orders": [order]}})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "$input.orders[0].customer.name must not contain NUL characters"
    assert error["extensions"]["field"] == ["input", "orders", "0", "customer", "name"]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_lone_surrogates_in_variables_are_refused(api: Api, tenant: Tenant) -> None:
    order = order_input(tenant, "#7002")
    order["lines"][0]["title"] = "Case \ud800"
    # Sent as JSON escapes, the way a client produces a lone surrogate.
    content = json.dumps({"query": IMPORT, "variables": {"input": {"orders": [order]}}}).encode()
    response = await _raw(api, tenant.merchant_token, content)
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == "$input.orders[0].lines[0].title must not contain lone UTF-16 surrogates"


async def test_nul_in_a_document_literal_names_the_argument(api: Api, tenant: Tenant) -> None:
    body = await api.gql(tenant.merchant_token, '{ ordersCount(query: "tag:a\\u0000b") }')
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": ["ordersCount", "query"]}
    assert error["message"] == "ordersCount.query must not contain NUL characters"
    surrogate = await _raw(
        api,
        tenant.merchant_token,
        b'{"query": "{ orders(first: 1, query: \\"\\ud800\\") { nodes { id } } }"}',
    )
    assert surrogate.status_code == 200
    assert surrogate.json()["errors"][0]["message"].startswith("Syntax Error")


INTROSPECT_ROOTS = """
{ __schema {
    queryType { fields { name args { name type { ...T } } type { ...T } } }
    mutationType { fields { name args { name type { ...T } } type { ...T } } }
} }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"""


def _type_ref(type_: dict[str, Any]) -> str:
    if type_["kind"] == "NON_NULL":
        return _type_ref(type_["ofType"]) + "!"
    if type_["kind"] == "LIST":
        return "[" + _type_ref(type_["ofType"]) + "]"
    return str(type_["name"])


def _is_composite(type_: dict[str, Any]) -> bool:
    while type_["kind"] in ("NON_NULL", "LIST"):
        type_ = type_["ofType"]
    return type_["kind"] in ("OBJECT", "INTERFACE", "UNION")


async def test_every_operation_refuses_nul_and_surrogates_in_its_arguments(api: Api, tenant: Tenant) -> None:
    """Walks the schema: whatever operations exist (now or added later), none lets such text through."""
    schema = (await api.data(tenant.merchant_token, INTROSPECT_ROOTS))["__schema"]
    checked = 0
    for kind, root in (("query", schema["queryType"]), ("mutation", schema["mutationType"])):
        for field in root["fields"]:
            if not field["args"]:
                continue
            arg = field["args"][0]
            selection = " { __typename }" if _is_composite(field["type"]) else ""
            document = (
                f"{kind}($v: {_type_ref(arg['type'])}) {{ {field['name']}({arg['name']}: $v){selection} }}"
            )
            for bad, reason in (("\x00", "NUL"), ("\ud800", "surrogates")):
                value: Any = {"text": f"a{bad}"} if arg["type"]["kind"] != "SCALAR" else f"a{bad}"
                if "LIST" in json.dumps(arg["type"]):
                    value = [value]
                content = json.dumps({"query": document, "variables": {"v": value}}).encode()
                response = await _raw(api, tenant.merchant_token, content)
                assert response.status_code == 200, (field["name"], response.text)
                [error] = response.json()["errors"]
                assert error["extensions"]["code"] == "BAD_USER_INPUT", (field["name"], error)
                assert error["message"].startswith("$v") and reason in error["message"], error
                checked += 1
    assert checked >= 10


# --- supplier webhooks: input that can never succeed is a 400, so that the sender stops retrying ------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"id": "x", "decision": "APPROVE", "message": "ok\x00"}, "body.data.message must not contain NUL"),
        (
            {"id": "x", "decision": "APPROVE", "message": "ok\ud800"},
            "body.data.message must not contain lone",
        ),
        (
            {
                "id": "x",
                "decision": "APPROVE",
                "extra": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            },
            "nested",
        ),
    ],
)
async def test_unstorable_webhook_bodies_are_400(
    api: Api, tenant: Tenant, data: dict[str, Any], message: str
) -> None:
    from tests.api.test_supplier_webhooks import send, signed

    body = json.dumps({"type": "cancellation_request.decided", "data": data})  # lone surrogates as escapes
    response = await send(api, tenant.supplier_ids[0], *signed(body))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "MALFORMED"
    assert message in response.json()["error"]["message"]
    assert response.headers["x-request-id"]


async def test_a_webhook_nested_past_the_parser_is_400(api: Api, tenant: Tenant) -> None:
    from tests.api.test_supplier_webhooks import send, signed

    raw = b'{"type": "cancellation_request.decided", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await send(api, tenant.supplier_ids[0], *signed(raw))
    assert response.status_code == 400


# --- subscriptions go through the same guard ---------------------------------------------------------------


@strawberry.type
class PingQuery:
    ping: str = "pong"


@strawberry.type
class EchoSubscription:
    @strawberry.subscription
    async def echo(self, text: str) -> AsyncGenerator[str, None]:
        yield text


async def test_subscriptions_are_guarded_too() -> None:
    settings = replace(load_settings(), max_query_cost=5)
    schema = strawberry.Schema(
        query=PingQuery,
        subscription=EchoSubscription,
        extensions=[lambda: RequestGuard(Guard(settings, CostBuckets(100, 1)))],
    )
    context = SimpleNamespace(actor=SimpleNamespace(token_id=1, name="t"), request=None)

    async def first(query: str, variables: dict[str, Any]) -> Any:
        stream = await schema.subscribe(query, variable_values=variables, context_value=context)
        async for result in stream:  # type: ignore[union-attr]
            return result
        return None

    refused = await first("subscription($t: String!) { echo(text: $t) }", {"t": "a\x00"})
    assert refused.errors[0].extensions["code"] == "BAD_USER_INPUT"
    assert refused.errors[0].message == "$t must not contain NUL characters"
    allowed = await first("subscription($t: String!) { echo(text: $t) }", {"t": "hello"})
    assert allowed.data == {"echo": "hello"}
