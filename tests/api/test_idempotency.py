"""Idempotency-Key on mutations: the first answer is replayed, other bodies refused, twins run once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text, update

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.jobs import Job, JobContext
from db.models import AccessToken, IdempotencyKey, Order
from db.types import utcnow
from domain.idempotency import ABANDONED_AFTER, CLEANUP_KIND, Claimed, InProgress, claim, delete_expired_keys
from schema.ids import parse_id
from tests.api.live import served
from tests.factories import IMPORT, Api, Tenant, order_input


async def _orders(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Order)) or 0)


async def _post(
    client: httpx.AsyncClient, token: str, key: str | None, variables: dict[str, Any]
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/graphql", json={"query": IMPORT, "variables": variables}, headers=headers)


async def test_a_retry_gets_the_first_answer_and_changes_nothing(
    api: Api, tenant: Tenant, db: Database
) -> None:
    variables = {"input": {"orders": [order_input(tenant, "#3001")]}}
    first = await _post(api.client, tenant.merchant_token, "key-1", variables)
    assert first.status_code == 200 and "errors" not in first.json()
    assert "idempotent-replayed" not in first.headers

    # The order changes in between: a real re-run would report (and write) the change.
    async with db.write() as session:
        await session.execute(update(Order).values(note="edited meanwhile"))
    again = await _post(api.client, tenant.merchant_token, "key-1", variables)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert await _orders(db) == 1
    async with db.read() as session:
        assert await session.scalar(select(Order.note)) == "edited meanwhile"

    # The same key with another body is refused; without a key, or with another, it runs.
    other = {"input": {"orders": [order_input(tenant, "#3002")]}}
    refused = await _post(api.client, tenant.merchant_token, "key-1", other)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await _orders(db) == 1
    assert (await _post(api.client, tenant.merchant_token, "key-2", other)).status_code == 200
    assert await _orders(db) == 2


async def test_keys_belong_to_one_token_and_queries_ignore_them(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    variables = {"input": {"orders": [order_input(tenant, "#3101")]}}
    assert (await _post(api.client, tenant.merchant_token, "shared", variables)).status_code == 200
    elsewhere = {"input": {"orders": [order_input(other_tenant, "#3101")]}}
    response = await _post(api.client, other_tenant.merchant_token, "shared", elsewhere)
    assert response.status_code == 200 and "idempotent-replayed" not in response.headers
    query = await api.client.post(
        "/graphql",
        json={"query": "{ ordersCount }"},
        headers={"Authorization": f"Bearer {tenant.merchant_token}", "Idempotency-Key": "shared"},
    )
    assert query.json()["data"] == {"ordersCount": 1}


async def test_an_error_answer_is_replayed_too(api: Api, tenant: Tenant, db: Database) -> None:
    order = order_input(tenant, "#3201")
    [imported] = await api.import_orders(tenant, order)
    async with db.write() as session:
        # A timeline entry the code cannot read makes the payload fail the way a bug would.
        await session.execute(
            text(
                "INSERT INTO order_events (shop_id, order_id, type, actor_kind, actor_name, message, data, "
                "created_at) VALUES (:shop, :order, 'x', 'BOGUS', 'x', '', '{}', :now)"
            ),
            {"shop": tenant.shop_id, "order": parse_id(imported["id"], "Order"), "now": utcnow()},
        )
    query = IMPORT.replace("orders { id number", "orders { id number events { actorKind }")
    headers = {"Authorization": f"Bearer {tenant.merchant_token}", "Idempotency-Key": "crash"}
    payload = {"query": query, "variables": {"input": {"orders": [order]}}}
    first = await api.client.post("/graphql", json=payload, headers=headers)
    assert first.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    again = await api.client.post("/graphql", json=payload, headers=headers)
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_bad_keys_are_400(api: Api, tenant: Tenant) -> None:
    response = await _post(api.client, tenant.merchant_token, "k" * 256, {"input": {"orders": []}})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"][0]["message"]


async def test_concurrent_twins_run_once_over_http(db: Database, tenant: Tenant) -> None:
    app = create_app(replace(load_settings(), database_url=db.url), db)
    variables = {"input": {"orders": [order_input(tenant, "#3301")]}}
    async with served(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        answers = await asyncio.gather(
            *(_post(client, tenant.merchant_token, "twin", variables) for _ in range(8))
        )
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.content for answer in answers}) == 1
    assert sum("idempotent-replayed" not in answer.headers for answer in answers) == 1
    assert await _orders(db) == 1
    async with db.read() as session:
        rows = (await session.scalars(select(IdempotencyKey))).all()
    assert [(row.key, row.status_code) for row in rows] == [("twin", 200)]


async def test_keys_expire(api: Api, tenant: Tenant, db: Database) -> None:
    variables = {"input": {"orders": [order_input(tenant, "#3401")]}}
    await _post(api.client, tenant.merchant_token, "old", variables)
    async with db.write() as session:
        await session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    # An expired key starts afresh: the import runs again (and updates the same order number).
    again = await _post(api.client, tenant.merchant_token, "old", variables)
    assert "idempotent-replayed" not in again.headers
    async with db.write() as session:
        await session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    await delete_expired_keys(JobContext(db, load_settings(), "test"), Job(kind=CLEANUP_KIND, payload={}))
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def _multipart(boundary: str, content: bytes) -> tuple[bytes, str]:
    operations = b'{"query": "mutation($f: Upload) { upload(file: $f) }", "variables": {"f": null}}'
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'.encode()
        + operations
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n'.encode()
        + b'{"0": ["variables.f"]}'
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def test_uploads_are_idempotent_whatever_boundary_the_retry_picks(api: Api, tenant: Tenant) -> None:
    async def send(boundary: str, content: bytes) -> httpx.Response:
        body, content_type = _multipart(boundary, content)
        headers = {
            "Authorization": f"Bearer {tenant.merchant_token}",
            "Idempotency-Key": "upload-1",
            "content-type": content_type,
        }
        return await api.client.post("/graphql", content=body, headers=headers)

    first = await send("aaaa1111", b"\x89PNG" + b"x" * 2_000_000)  # past the 1 MB JSON limit, under uploads'
    assert first.status_code != 413
    assert first.headers["content-type"].startswith("application/json")
    retry = await send("bbbb2222", b"\x89PNG" + b"x" * 2_000_000)
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    other = await send("cccc3333", b"\x89PNG" + b"y" * 10)
    assert other.status_code == 422


async def test_uploads_have_their_own_size_limit(db: Database, tenant: Tenant) -> None:
    settings = replace(load_settings(), database_url=db.url, max_upload_body_bytes=100_000)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, db)), base_url="http://t"
    ) as client:
        body, content_type = _multipart("zz", b"x" * 200_000)
        response = await client.post(
            "/graphql",
            content=body,
            headers={"Authorization": f"Bearer {tenant.merchant_token}", "content-type": content_type},
        )
    assert response.status_code == 413
    assert "larger than 100000 bytes" in response.json()["errors"][0]["message"]


async def test_a_claim_whose_process_died_is_taken_over(db: Database, tenant: Tenant) -> None:
    async with db.read() as session:
        token_id = await session.scalar(select(AccessToken.id).where(AccessToken.name == "staff"))
    assert token_id is not None
    ttl = timedelta(hours=24)
    first = await claim(db, token_id=token_id, shop_id=tenant.shop_id, key="k", request_digest="d", ttl=ttl)
    assert isinstance(first, Claimed)
    twin = await claim(db, token_id=token_id, shop_id=tenant.shop_id, key="k", request_digest="d", ttl=ttl)
    assert isinstance(twin, InProgress)
    later = utcnow() + ABANDONED_AFTER + timedelta(seconds=1)
    taken = await claim(
        db, token_id=token_id, shop_id=tenant.shop_id, key="k", request_digest="d", ttl=ttl, now=later
    )
    assert taken == Claimed(first.row_id)
    # Only one of two late twins takes it over.
    again = await claim(
        db, token_id=token_id, shop_id=tenant.shop_id, key="k", request_digest="d", ttl=ttl, now=later
    )
    assert isinstance(again, InProgress)
