"""Outbound webhook rules without HTTP: the retry schedule, which addresses are public, URL checks, the outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.jobs import Job
from db.models import ActorKind, WebhookDelivery, WebhookEvent
from db.types import utcnow
from domain.actors import Actor, Scope
from domain.errors import DomainError
from domain.topics import Topic, announce
from domain.validation import Checker
from domain.webhooks import (
    RETRY_SCHEDULE,
    AttemptResult,
    check_url,
    create_subscription,
    non_global_address,
    retry_delay,
)
from tests.factories import Tenant


def merchant(tenant: Tenant) -> Actor:
    return Actor(
        kind=ActorKind.MERCHANT,
        name="staff",
        shop_id=tenant.shop_id,
        scopes=frozenset({Scope.WRITE_WEBHOOKS}),
    )


def test_retry_schedule_with_jitter_and_retry_after() -> None:
    assert [retry_delay(n, None, lambda: 0.5) for n in range(1, 8)] == list(RETRY_SCHEDULE)
    assert retry_delay(8, None, lambda: 0.5) is None  # seven retries, then give up
    assert retry_delay(1, None, lambda: 0.0) == timedelta(seconds=4.5)
    assert retry_delay(1, None, lambda: 1.0) == timedelta(seconds=5.5)
    assert retry_delay(2, timedelta(hours=2), lambda: 0.5) == timedelta(hours=2)
    assert retry_delay(2, timedelta(seconds=1), lambda: 0.5) == timedelta(minutes=5)
    assert retry_delay(2, timedelta(days=30), lambda: 0.5) == timedelta(hours=24)


def test_what_is_retried() -> None:
    assert AttemptResult(status_code=503, duration_ms=1).retriable
    assert AttemptResult(status_code=429, duration_ms=1).retriable
    assert AttemptResult(status_code=None, duration_ms=1, error="timeout").retriable
    assert not AttemptResult(status_code=404, duration_ms=1).retriable
    assert not AttemptResult(status_code=None, duration_ms=1, error="refused", refused=True).retriable
    assert AttemptResult(status_code=204, duration_ms=1).succeeded
    assert not AttemptResult(status_code=302, duration_ms=1, error="redirect not followed").succeeded


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("127.0.0.1", True),
        ("10.0.0.5", True),
        ("172.16.3.4", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::ffff:10.0.0.1", True),
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_non_global_addresses(address: str, private: bool) -> None:
    assert non_global_address(address) is private


def test_url_checks() -> None:
    def errors(url: str, allow_private: bool = False) -> list[str]:
        check = Checker()
        check_url(check, ("url",), url, allow_private=allow_private)
        return [error.message for error in check.errors]

    assert errors("https://hooks.example.com/x?y=1") == []
    assert errors("http://127.0.0.1:9000/", allow_private=True) == []
    assert errors("http://127.0.0.1:9000/") != []
    assert errors("gopher://hooks.example.com/") != []
    assert errors("https://hooks.example.com:99999/") != []
    assert errors("https:///nohost") != []
    assert errors("https://" + "a" * 2100 + ".com/") != []


async def test_announcements_become_deliveries_in_the_same_transaction(db: Database, tenant: Tenant) -> None:
    actor = merchant(tenant)
    async with db.write() as session:
        await create_subscription(
            session, actor, "https://hooks.example.com/a", ["orders/updated"], None, allow_private=False
        )
        await create_subscription(
            session,
            actor,
            "https://hooks.example.com/b",
            ["orders/updated", "orders/created"],
            None,
            allow_private=False,
        )
    async with db.write() as session:
        for _ in range(2):  # twice in one transaction: one event
            await announce(
                session,
                actor,
                Topic.ORDERS_UPDATED,
                shop_id=tenant.shop_id,
                node_type="Order",
                node_id=1,
                now=utcnow(),
            )
        await announce(
            session,
            actor,
            Topic.ORDERS_CREATED,
            shop_id=tenant.shop_id,
            node_type="Order",
            node_id=1,
            now=utcnow(),
        )
    with pytest.raises(RuntimeError):
        async with db.write() as session:
            await announce(
                session,
                actor,
                Topic.ORDERS_UPDATED,
                shop_id=tenant.shop_id,
                node_type="Order",
                node_id=2,
                now=utcnow(),
            )
            raise RuntimeError("the change fails")
    async with db.read() as session:
        events = await session.scalar(select(func.count()).select_from(WebhookEvent))
        deliveries = list(await session.scalars(select(WebhookDelivery.topic).order_by(WebhookDelivery.id)))
        jobs = await session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == "webhooks.deliver")
        )
    assert events == 2
    assert sorted(deliveries) == ["orders/created", "orders/updated", "orders/updated"]
    assert jobs == 3


async def test_subscribing_needs_the_scope(db: Database, tenant: Tenant) -> None:
    reader = Actor(
        kind=ActorKind.MERCHANT, name="r", shop_id=tenant.shop_id, scopes=frozenset({"read_orders"})
    )
    with pytest.raises(DomainError) as refused:
        async with db.write() as session:
            await create_subscription(
                session, reader, "https://hooks.example.com/", ["orders/created"], None, allow_private=False
            )
    assert refused.value.errors[0].code == "FORBIDDEN"
