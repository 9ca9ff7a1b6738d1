"""Outbound webhooks end to end: subscriptions over GraphQL, deliveries written with the change, a real local
receiver, signatures, the retry schedule, disabling with an email (real SMTP on loopback), SSRF refusals."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from email import message_from_bytes
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from api.outbound_webhooks import Refused, resolve_target, retry_after
from api.worker import Worker
from config.metrics import REGISTRY
from config.settings import Settings, load_settings
from db.engine import Database
from db.jobs import Job
from db.models import ActorKind, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from db.types import utcnow
from domain.actors import Actor
from domain.errors import DomainError
from domain.webhooks import DISABLE_AFTER, RETRY_SCHEDULE, create_subscription
from schema.ids import parse_id
from tests.api.test_cancellations import CREATE, DECIDE, import_order
from tests.factories import Api, Tenant, order_input
from tests.webhook_receiver import Answer, Receiver, running_receiver

FAILURES = "dropdesk_webhook_delivery_failures_total"

SUBSCRIBE = """
mutation($input: WebhookSubscriptionCreateInput!) {
  webhookSubscriptionCreate(input: $input) {
    webhookSubscription { id url topics enabled description }
    secret
    userErrors { field message code }
  }
}
"""

DELIVERIES = """
query($status: WebhookDeliveryStatus, $subscriptionId: ID, $after: String) {
  webhookDeliveries(first: 50, status: $status, subscriptionId: $subscriptionId, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id webhookId topic status attemptCount lastStatusCode lastError payload
      subscription { id }
      attempts { number statusCode durationMs responseBody error succeeded }
    }
  }
}
"""

RETRY = """
mutation($id: ID!) {
  webhookDeliveryRetry(input: {id: $id}) {
    webhookDelivery { id status webhookId }
    userErrors { field message code }
  }
}
"""


class Clock:
    """Real time moved forward by the test, so that jobs enqueued now are due and later ones wait."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def settings(db: Database, mailbox: tuple[Mailbox, int]) -> Settings:
    return replace(
        load_settings(),
        database_url=db.url,
        webhook_allow_private_urls=True,
        webhook_timeout_seconds=2.0,
        smtp_url=f"smtp://127.0.0.1:{mailbox[1]}",
    )


@pytest.fixture
async def hooks(db: Database, settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings, db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dropdesk.test"
    ) as c:
        yield Api(c)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(db: Database, settings: Settings, clock: Clock) -> Worker:
    return Worker(db, settings, concurrency=4, clock=clock, rand=lambda: 0.5, name="test-worker")


async def subscribe(api: Api, tenant: Tenant, url: str, topics: list[str]) -> tuple[str, str]:
    payload = (await api.data(tenant.merchant_token, SUBSCRIBE, {"input": {"url": url, "topics": topics}}))[
        "webhookSubscriptionCreate"
    ]
    assert payload["userErrors"] == [], payload
    return payload["webhookSubscription"]["id"], payload["secret"]


async def deliveries(api: Api, tenant: Tenant, **variables: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = (await api.data(tenant.merchant_token, DELIVERIES, variables))[
        "webhookDeliveries"
    ]["nodes"]
    return nodes


async def count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def verified(secret: str, received: Any) -> dict[str, Any]:
    """The body, once its Standard Webhooks signature checks out (raises otherwise)."""
    data: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return data


async def test_subscription_management_needs_the_scope_and_valid_input(hooks: Api, tenant: Tenant) -> None:
    variables = {"input": {"url": "https://hooks.example.com/dd", "topics": ["orders/created"]}}
    forbidden = await hooks.gql(tenant.readonly_token, SUBSCRIBE, variables)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    listing = await hooks.gql(tenant.readonly_token, "{ webhookSubscriptions { nodes { id } } }")
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    sub_id, secret = await subscribe(
        hooks, tenant, "https://hooks.example.com/dd", ["orders/created", "orders/created", "orders/updated"]
    )
    assert secret.startswith("whsec_") and len(secret) > 30
    listed = await hooks.data(
        tenant.merchant_token, "{ webhookSubscriptions { nodes { id url topics enabled } } }"
    )
    assert listed["webhookSubscriptions"]["nodes"] == [
        {
            "id": sub_id,
            "url": "https://hooks.example.com/dd",
            "topics": ["orders/created", "orders/updated"],
            "enabled": True,
        }
    ]
    # The secret is shown once: no field reads it back.
    assert "secret" not in json.dumps(listed)

    bad = [
        ({"url": "ftp://hooks.example.com/x", "topics": ["orders/created"]}, ["url"]),
        ({"url": "https://hooks.example.com/\x00", "topics": ["orders/created"]}, ["url"]),
        ({"url": "https://hooks.example.com/\ud800", "topics": ["orders/created"]}, ["url"]),
        ({"url": "https://user:pw@hooks.example.com/", "topics": ["orders/created"]}, ["url"]),
        ({"url": "https://hooks.example.com/", "topics": ["orders/deleted"]}, ["topics", "0"]),
        ({"url": "https://hooks.example.com/", "topics": []}, ["topics"]),
        (
            {"url": "https://hooks.example.com/", "topics": ["orders/created"], "description": "a\x00"},
            ["description"],
        ),
    ]
    for data, field in bad:
        # Sent as ASCII JSON so that a lone surrogate travels as its escape, as a client would send it.
        response = await hooks.client.post(
            "/graphql",
            content=json.dumps({"query": SUBSCRIBE, "variables": {"input": data}}),
            headers={"Authorization": f"Bearer {tenant.merchant_token}", "content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        if any(isinstance(v, str) and ("\x00" in v or "\ud800" in v) for v in data.values()):
            # Unstorable text is refused at the edge for every operation, naming the field.
            [error] = answer["errors"]
            assert error["extensions"]["code"] == "BAD_USER_INPUT" and field[-1] in error["message"]
            continue
        payload = answer["data"]["webhookSubscriptionCreate"]
        assert payload["webhookSubscription"] is None and payload["secret"] is None
        assert [error["field"] for error in payload["userErrors"]] == [field], (data, payload)


async def test_private_addresses_are_refused_unless_allowed(db: Database, tenant: Tenant) -> None:
    merchant = Actor(
        kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset({"write_webhooks"})
    )
    for url in (
        "http://127.0.0.1:8000/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
        "http://10.1.2.3/",
        "http://localhost:9000/",
        "http://[::ffff:192.168.0.1]/",
    ):
        with pytest.raises(DomainError) as refused:
            async with db.write() as session:
                await create_subscription(
                    session, merchant, url, ["orders/created"], None, allow_private=False
                )
        assert refused.value.errors[0].field == ("url",)
        assert refused.value.errors[0].code == "FORBIDDEN"

    # Host names are resolved when sending, and refused if any address is not public.
    for url in ("http://localhost:1/", "http://127.0.0.1:1/", "https://[::1]/", "http://169.254.169.254/"):
        with pytest.raises(Refused):
            await resolve_target(url, allow_private=False)
    public = await resolve_target("https://93.184.216.34:8443/hook?x=1", allow_private=False)
    assert public.url == "https://93.184.216.34:8443/hook?x=1" and public.sni_hostname == "93.184.216.34"
    allowed = await resolve_target("http://localhost:9/x", allow_private=True)
    assert (
        allowed.url in ("http://127.0.0.1:9/x", "http://[::1]:9/x") and allowed.host_header == "localhost:9"
    )


async def test_a_change_is_delivered_signed_with_the_object_as_the_api_shows_it(
    hooks: Api, db: Database, tenant: Tenant, receiver: Receiver, worker: Worker
) -> None:
    sub_id, secret = await subscribe(hooks, tenant, f"{receiver.url}/orders", ["orders/created"])
    [created] = await hooks.import_orders(tenant, order_input(tenant, "#7001"))
    # Written in the transaction of the import: the delivery exists before anything is sent.
    assert await count(db, WebhookDelivery) == 1
    assert receiver.received == []

    await worker.drain()
    [got] = await receiver.wait_for(1)
    body = verified(secret, got)
    assert got.path == "/orders" and got.headers["content-type"] == "application/json"
    assert body["type"] == "orders/created"
    data = body["data"]
    assert data["id"] == created["id"] and data["number"] == "#7001"
    assert data["total"] == {"amount": "49.99", "currencyCode": "USD"}
    assert data["customer"]["email"] == "ana@example.com" and data["financialStatus"] == "PAID"
    # The same object read through the API, field by field.
    api_view = await hooks.data(
        tenant.merchant_token,
        "query($id: ID!) { order(id: $id) { number status total { amount } margin { amount } tags } }",
        {"id": created["id"]},
    )
    assert {key: data[key] for key in ("number", "status", "tags")} == {
        key: api_view["order"][key] for key in ("number", "status", "tags")
    }
    assert data["margin"]["amount"] == api_view["order"]["margin"]["amount"]

    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "SUCCEEDED" and delivery["webhookId"] == got.headers["webhook-id"]
    assert delivery["subscription"]["id"] == sub_id and delivery["payload"] == body
    [attempt] = delivery["attempts"]
    assert attempt["statusCode"] == 200 and attempt["succeeded"] and attempt["responseBody"] == '{"ok":true}'
    assert attempt["durationMs"] >= 0 and attempt["error"] is None

    # Another topic the subscription does not have: nothing is written.
    await hooks.import_orders(tenant, order_input(tenant, "#7001", note="changed"))
    assert await count(db, WebhookDelivery) == 1


async def test_retries_follow_the_schedule_honour_retry_after_and_send_the_same_bytes(
    hooks: Api, db: Database, tenant: Tenant, receiver: Receiver, worker: Worker, clock: Clock
) -> None:
    _, secret = await subscribe(hooks, tenant, receiver.url, ["orders/created"])
    receiver.answers = [
        Answer(status=503, body=b"down" * 600),
        Answer(status=429, headers={"Retry-After": "3600"}),
        Answer(status=200),
    ]
    failures_before = REGISTRY.get_sample_value(FAILURES, {"topic": "orders/created"}) or 0
    await hooks.import_orders(tenant, order_input(tenant, "#7002"))
    await worker.drain()
    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "RETRYING" and delivery["lastStatusCode"] == 503
    assert REGISTRY.get_sample_value(FAILURES, {"topic": "orders/created"}) == failures_before + 1
    assert len(delivery["attempts"][0]["responseBody"]) == 1024  # the first KiB only

    async with db.read() as session:
        row = await session.scalar(select(WebhookDelivery))
    assert row is not None and row.next_attempt_at is not None
    # 5 s later, give or take the jitter of 10%.
    assert RETRY_SCHEDULE[0] * 0.9 <= row.next_attempt_at - row.updated_at <= RETRY_SCHEDULE[0] * 1.1
    assert await worker.drain() == 0  # not due yet

    clock.advance(RETRY_SCHEDULE[0] * 1.2)
    await worker.drain()
    async with db.read() as session:
        row = await session.get(WebhookDelivery, row.id, populate_existing=True)
    assert row is not None and row.status is DeliveryStatus.RETRYING and row.next_attempt_at is not None
    # The schedule says 5 minutes; Retry-After asked for an hour, and is honoured.
    assert row.next_attempt_at - row.updated_at == timedelta(hours=1)

    clock.advance(timedelta(hours=1))
    await worker.drain()
    received = await receiver.wait_for(3)
    assert len({r.headers["webhook-id"] for r in received}) == 1
    assert len({r.body for r in received}) == 1
    for each in received:
        verified(secret, each)
    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "SUCCEEDED"
    assert [(a["number"], a["statusCode"], a["succeeded"]) for a in delivery["attempts"]] == [
        (1, 503, False),
        (2, 429, False),
        (3, 200, True),
    ]


async def test_the_schedule_ends_and_other_answers_are_not_retried(
    hooks: Api, db: Database, tenant: Tenant, receiver: Receiver, worker: Worker, clock: Clock
) -> None:
    await subscribe(hooks, tenant, receiver.url, ["orders/created", "orders/updated"])
    receiver.default = Answer(status=500)
    await hooks.import_orders(tenant, order_input(tenant, "#7003"))
    for delay in (timedelta(0), *RETRY_SCHEDULE):
        clock.advance(delay * 1.2)  # past the jitter
        assert await worker.drain() >= 1
    clock.advance(timedelta(days=1))
    assert await worker.drain() == 0
    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "FAILED" and delivery["attemptCount"] == 1 + len(RETRY_SCHEDULE)
    assert len(receiver.received) == 1 + len(RETRY_SCHEDULE)

    # A 400 or a redirect is not retried (and the redirect is not followed).
    receiver.answers = [Answer(status=400), Answer(status=302, headers={"Location": f"{receiver.url}/x"})]
    await hooks.import_orders(tenant, order_input(tenant, "#7003", note="a"))
    await hooks.import_orders(tenant, order_input(tenant, "#7003", note="b"))
    await worker.drain()
    clock.advance(timedelta(days=1))
    await worker.drain()
    newest = await deliveries(hooks, tenant, status="FAILED")
    assert len(newest) == 3
    assert {d["lastStatusCode"] for d in newest[:2]} == {400, 302}
    assert any("redirect" in (d["lastError"] or "") for d in newest[:2])
    assert not any(r.path == "/x" for r in receiver.received)
    assert len(receiver.received) == 3 + len(RETRY_SCHEDULE)


async def test_a_slow_endpoint_times_out_and_is_retried(
    hooks: Api, tenant: Tenant, receiver: Receiver, worker: Worker
) -> None:
    await subscribe(hooks, tenant, receiver.url, ["orders/created"])
    receiver.answers = [Answer(delay=3.0)]
    await hooks.import_orders(tenant, order_input(tenant, "#7004"))
    await worker.drain()
    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "RETRYING"
    assert delivery["attempts"][0]["statusCode"] is None
    assert "no answer within 2 seconds" in delivery["attempts"][0]["error"]


async def test_410_disables_the_subscription_and_emails_the_shop(
    hooks: Api,
    db: Database,
    tenant: Tenant,
    receiver: Receiver,
    worker: Worker,
    mailbox: tuple[Mailbox, int],
) -> None:
    sub_id, _ = await subscribe(hooks, tenant, receiver.url, ["orders/created", "orders/updated"])
    receiver.answers = [Answer(status=410)]
    await hooks.import_orders(tenant, order_input(tenant, "#7005"))
    await worker.drain()
    await worker.drain()  # the email job
    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "FAILED"
    subs = await hooks.data(
        tenant.merchant_token, "{ webhookSubscriptions { nodes { enabled disabledReason } } }"
    )
    assert subs["webhookSubscriptions"]["nodes"] == [
        {"enabled": False, "disabledReason": "the endpoint answered 410 Gone"}
    ]
    [mail] = mailbox[0].messages
    assert mail["To"].endswith("@shop.test") and mail["Subject"] == "Webhook subscription disabled"
    assert receiver.url in mail.get_payload() and "410" in mail.get_payload()

    # Disabled: no new deliveries, and a retry by hand is refused until it is enabled again.
    await hooks.import_orders(tenant, order_input(tenant, "#7005", note="x"))
    assert await count(db, WebhookDelivery) == 1
    refused = (await hooks.data(tenant.merchant_token, RETRY, {"id": delivery["id"]}))["webhookDeliveryRetry"]
    assert refused["userErrors"][0]["code"] == "INVALID_STATE"
    enable = """mutation($id: ID!) { webhookSubscriptionUpdate(input: {id: $id, enabled: true}) {
        webhookSubscription { enabled disabledReason } userErrors { code } } }"""
    enabled = (await hooks.data(tenant.merchant_token, enable, {"id": sub_id}))["webhookSubscriptionUpdate"]
    assert enabled == {"webhookSubscription": {"enabled": True, "disabledReason": None}, "userErrors": []}
    retried = (await hooks.data(tenant.merchant_token, RETRY, {"id": delivery["id"]}))["webhookDeliveryRetry"]
    assert retried["userErrors"] == [] and retried["webhookDelivery"]["webhookId"] == delivery["webhookId"]
    await worker.drain()
    [again] = await deliveries(hooks, tenant)
    assert again["status"] == "SUCCEEDED" and [a["statusCode"] for a in again["attempts"]] == [410, 200]
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]


async def test_five_days_of_failures_disable_the_subscription(
    hooks: Api,
    db: Database,
    tenant: Tenant,
    receiver: Receiver,
    worker: Worker,
    clock: Clock,
    mailbox: tuple[Mailbox, int],
) -> None:
    await subscribe(hooks, tenant, receiver.url, ["orders/created", "orders/updated"])
    receiver.default = Answer(status=500)
    await hooks.import_orders(tenant, order_input(tenant, "#7006"))
    await worker.drain()
    clock.advance(DISABLE_AFTER - timedelta(minutes=1))
    await hooks.import_orders(tenant, order_input(tenant, "#7006", note="later"))
    await worker.drain()
    async with db.read() as session:
        subscription = await session.scalar(select(WebhookSubscription))
    assert subscription is not None and subscription.enabled  # four days and 23 hours: still on

    clock.advance(timedelta(minutes=2))
    await worker.drain()
    await worker.drain()
    async with db.read() as session:
        subscription = await session.scalar(
            select(WebhookSubscription).execution_options(populate_existing=True)
        )
        pending = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.RETRYING)
        )
    assert subscription is not None and not subscription.enabled
    assert subscription.disabled_reason == "deliveries failed for 5 days"
    assert len(mailbox[0].messages) == 1
    # What was still scheduled is given up when its turn comes, without being sent.
    sent = len(receiver.received)
    clock.advance(timedelta(days=2))
    await worker.drain()
    assert len(receiver.received) == sent
    assert pending is not None
    assert await deliveries(hooks, tenant, status="RETRYING") == []


async def test_duplicate_jobs_for_one_attempt_send_once(
    hooks: Api, db: Database, tenant: Tenant, receiver: Receiver, worker: Worker, clock: Clock
) -> None:
    await subscribe(hooks, tenant, receiver.url, ["orders/created"])
    receiver.answers = [Answer(status=500)]
    await hooks.import_orders(tenant, order_input(tenant, "#7007"))
    await worker.drain()
    [delivery] = await deliveries(hooks, tenant)
    # A retry by hand while attempt 2 is already scheduled: two jobs now want attempt 2.
    retried = (await hooks.data(tenant.merchant_token, RETRY, {"id": delivery["id"]}))["webhookDeliveryRetry"]
    assert retried["userErrors"] == []
    clock.advance(timedelta(minutes=1))
    await worker.drain()
    async with db.read() as session:
        jobs = await session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == "webhooks.deliver")
        )
    assert jobs == 3
    assert len(receiver.received) == 2
    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "SUCCEEDED" and delivery["attemptCount"] == 2


async def test_each_topic_is_announced_once_per_change(
    hooks: Api, db: Database, tenant: Tenant, receiver: Receiver, worker: Worker
) -> None:
    topics = [
        "orders/created",
        "orders/updated",
        "supplier_orders/updated",
        "cancellation_requests/created",
        "cancellation_requests/decided",
    ]
    _, secret = await subscribe(hooks, tenant, receiver.url, topics)
    order_id, [so_id] = await import_order(hooks, tenant, "#7008")
    created = (
        await hooks.data(
            tenant.merchant_token, CREATE, {"input": {"supplierOrderId": so_id, "reason": "DUPLICATE_ORDER"}}
        )
    )["cancellationRequestCreate"]
    request_id = created["cancellationRequest"]["id"]
    decided = (
        await hooks.data(
            tenant.supplier_tokens[0], DECIDE, {"input": {"id": request_id, "decision": "APPROVE"}}
        )
    )["cancellationRequestDecide"]
    assert decided["userErrors"] == []
    await worker.drain()
    bodies = [verified(secret, r) for r in await receiver.wait_for(5)]
    await worker.drain()
    seen = sorted((body["type"], body["data"]["id"]) for body in bodies)
    assert [t for t, _ in seen] == [
        "cancellation_requests/created",
        "cancellation_requests/decided",
        "orders/created",
        "orders/updated",  # the store order was cancelled with its only supplier order
        "supplier_orders/updated",  # FINISH, once, though two steps of the decision announced it
    ], seen
    by_type = {body["type"]: body["data"] for body in bodies}
    assert by_type["cancellation_requests/decided"]["status"] == "APPROVED"
    assert by_type["supplier_orders/updated"]["id"] == so_id
    assert by_type["supplier_orders/updated"]["status"] == "FINISH"
    assert by_type["orders/updated"]["status"] == "CANCELLED"
    assert by_type["orders/updated"]["id"] == order_id


async def test_tenancy_of_subscriptions_and_deliveries(
    hooks: Api, db: Database, tenant: Tenant, other_tenant: Tenant, receiver: Receiver, worker: Worker
) -> None:
    sub_id, _ = await subscribe(hooks, tenant, receiver.url, ["orders/created"])
    await hooks.import_orders(tenant, order_input(tenant, "#7009"))
    await hooks.import_orders(other_tenant, order_input(other_tenant, "#7009"))
    assert await count(db, WebhookDelivery) == 1  # the other shop has no subscription
    [delivery] = await deliveries(hooks, tenant)
    assert await deliveries(hooks, other_tenant) == []
    other = other_tenant.merchant_token
    assert (await hooks.data(other, RETRY, {"id": delivery["id"]}))["webhookDeliveryRetry"]["userErrors"][0][
        "code"
    ] == "NOT_FOUND"
    delete = """mutation($id: ID!) { webhookSubscriptionDelete(input: {id: $id}) {
        deletedWebhookSubscriptionId userErrors { code } } }"""
    assert (await hooks.data(other, delete, {"id": sub_id}))["webhookSubscriptionDelete"]["userErrors"][0][
        "code"
    ] == "NOT_FOUND"
    assert (await hooks.data(tenant.merchant_token, DELIVERIES, {"subscriptionId": sub_id}))[
        "webhookDeliveries"
    ]["nodes"][0]["id"] == delivery["id"]
    deleted = (await hooks.data(tenant.merchant_token, delete, {"id": sub_id}))["webhookSubscriptionDelete"]
    assert deleted == {"deletedWebhookSubscriptionId": sub_id, "userErrors": []}
    assert await count(db, WebhookDelivery) == 0
    # Its pending job finds nothing to send.
    await worker.drain()
    assert receiver.received == []
    assert parse_id(sub_id, "WebhookSubscription") is not None


def test_retry_after_reads_seconds_and_dates() -> None:
    now = utcnow().replace(microsecond=0)
    assert retry_after("120", now) == timedelta(seconds=120)
    date = (now + timedelta(minutes=10)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after(date, now) == timedelta(minutes=10)
    assert retry_after("soon", now) is None and retry_after(None, now) is None


@pytest.fixture
async def served(db: Database, settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn on loopback: each request its own connection and transaction."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, db), lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_concurrent_retries_over_http_send_one_attempt(
    hooks: Api, db: Database, tenant: Tenant, receiver: Receiver, worker: Worker, served: str
) -> None:
    await subscribe(hooks, tenant, receiver.url, ["orders/created"])
    await hooks.import_orders(tenant, order_input(tenant, "#7010"))
    await worker.drain()
    [delivery] = await deliveries(hooks, tenant)
    assert delivery["status"] == "SUCCEEDED"

    async with httpx.AsyncClient(base_url=served, timeout=60) as client:

        async def retry() -> dict[str, Any]:
            response = await client.post(
                "/graphql",
                json={"query": RETRY, "variables": {"id": delivery["id"]}},
                headers={"Authorization": f"Bearer {tenant.merchant_token}"},
            )
            assert response.status_code == 200, response.text
            payload: dict[str, Any] = response.json()["data"]["webhookDeliveryRetry"]
            return payload

        results = await asyncio.gather(*(retry() for _ in range(10)))
    assert all(result["userErrors"] == [] for result in results)
    await worker.drain()
    # Ten jobs asked for attempt 2; one sent it, the others found it taken.
    assert len(receiver.received) == 2
    async with db.read() as session:
        attempts = await session.scalar(select(func.count()).select_from(WebhookAttempt))
    assert attempts == 2
    [after] = await deliveries(hooks, tenant)
    assert after["status"] == "SUCCEEDED" and after["attemptCount"] == 2


async def test_a_supplier_order_update_carries_its_notes(
    hooks: Api, tenant: Tenant, receiver: Receiver, worker: Worker
) -> None:
    _, secret = await subscribe(hooks, tenant, receiver.url, ["supplier_orders/updated"])
    [created] = await hooks.import_orders(tenant, order_input(tenant, "#7101"))
    supplier_order_id = created["supplierOrders"][0]["id"]
    added = await hooks.data(
        tenant.merchant_token,
        "mutation($input: OrderNoteAddInput!) { orderNoteAdd(input: $input) { userErrors { code } } }",
        {
            "input": {
                "orderId": created["id"],
                "body": "Plain packaging, please",
                "visibility": "SUPPLIER",
                "supplierOrderId": supplier_order_id,
            }
        },
    )
    assert added["orderNoteAdd"]["userErrors"] == []
    await worker.drain()
    [got] = await receiver.wait_for(1)
    body = verified(secret, got)
    assert body["type"] == "supplier_orders/updated" and body["data"]["id"] == supplier_order_id
    [note] = body["data"]["notes"]
    assert (note["body"], note["visibility"], note["authorName"]) == (
        "Plain packaging, please",
        "SUPPLIER",
        "staff",
    )
