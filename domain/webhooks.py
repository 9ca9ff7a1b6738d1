"""Outbound webhooks: a shop's subscriptions, and the outbox that turns announced changes into deliveries.

Every ``TopicChanged`` writes, in the announcing transaction, one event row, one delivery per matching
subscription and one job per delivery: a commit is never without its deliveries, a rollback leaves none.
Sending (HTTP, signatures, rendering the body from the GraphQL schema) happens at the edge, in the job
handler of ``api.outbound_webhooks``; this module holds the rules it follows: which attempt may be sent by
whom, the retry schedule, when a subscription is disabled.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import db.live  # noqa: F401  (every process that runs use cases announces committed order events live)
from db.jobs import enqueue
from db.models import (
    DeliveryStatus,
    Shop,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from db.types import utcnow
from domain.access import lock_visible, require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.reactions import reacts_to
from domain.supplier_orders import SupplierOrderStatusChanged
from domain.topics import Topic, TopicChanged, announce
from domain.validation import Checker, unstorable

DELIVER_KIND = "webhooks.deliver"
DISABLED_EMAIL_KIND = "webhooks.disabled_email"
# Delays before the 2nd, 3rd, ... attempt: about a day and a half in all.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.1  # each delay varies by up to ±10%, so endpoints that failed together are not retried together
MAX_RETRY_AFTER = timedelta(hours=24)
DISABLE_AFTER = timedelta(days=5)
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
MAX_SUBSCRIPTIONS_PER_SHOP = 50
RESPONSE_KEEP_BYTES = 1024
FINAL = frozenset({DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED})
D = DeliveryStatus


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- validation -----------------------------------------------------------------------------------------


def non_global_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified: not a public Internet host."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(check: Checker, path: tuple[str, ...], url: str, *, allow_private: bool) -> None:
    """http(s) with a host and no credentials; an IP literal must be public unless private ones are allowed.

    Host names are resolved when each delivery is sent (``api.outbound_webhooks``), not here: a name may
    resolve differently later.
    """
    if unstorable(url):
        check.fail(path, "url contains characters that are not allowed (NUL or lone surrogates)")
        return
    if len(url) > MAX_URL_LENGTH:
        check.fail(path, f"url is longer than {MAX_URL_LENGTH} characters", ErrorCode.TOO_LONG)
        return
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        check.fail(path, f"{url!r} is not a valid URL")
        return
    if parts.scheme not in {"http", "https"} or not host:
        check.fail(path, "url must be an http:// or https:// URL with a host")
        return
    if parts.username is not None or parts.password is not None:
        check.fail(path, "url must not carry credentials")
        return
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    local_name = host == "localhost" or host.endswith(".localhost")
    if not allow_private and (local_name or (literal is not None and non_global_address(host))):
        check.fail(path, "url points to a private, loopback or link-local address", ErrorCode.FORBIDDEN)


def check_topics(check: Checker, path: tuple[str, ...], topics: Sequence[str]) -> list[str]:
    known = {topic.value for topic in Topic}
    if not topics:
        check.fail(path, "give at least one topic", ErrorCode.REQUIRED)
    for index, topic in enumerate(topics):
        if topic not in known:
            shown = topic if not unstorable(topic) else repr(topic.encode("utf-8", "backslashreplace"))
            check.fail(
                (*path, str(index)), f"unknown topic {shown[:100]!r}; one of {', '.join(sorted(known))}"
            )
    return list(dict.fromkeys(topics))


def check_description(check: Checker, path: tuple[str, ...], description: str | None) -> None:
    if description is None:
        return
    if unstorable(description):
        check.fail(path, "description contains characters that are not allowed (NUL or lone surrogates)")
    elif len(description) > MAX_DESCRIPTION_LENGTH:
        check.fail(
            path, f"description is longer than {MAX_DESCRIPTION_LENGTH} characters", ErrorCode.TOO_LONG
        )


# --- subscriptions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionChange:
    url: str | None = None
    topics: Sequence[str] | None = None
    description: str | None = None
    enabled: bool | None = None


async def create_subscription(
    session: AsyncSession,
    actor: Actor,
    url: str,
    topics: Sequence[str],
    description: str | None,
    *,
    allow_private: bool,
    now: datetime | None = None,
) -> WebhookSubscription:
    """Subscribe a URL to topics; the returned row carries the signing secret, to be shown once."""
    require_scope(actor, Scope.WRITE_WEBHOOKS)
    assert actor.shop_id is not None
    now = now or utcnow()
    check = Checker()
    check_url(check, ("url",), url, allow_private=allow_private)
    unique_topics = check_topics(check, ("topics",), topics)
    check_description(check, ("description",), description)
    check.raise_if_any()
    # The shop row lock makes concurrent creations count one after the other.
    await session.execute(select(Shop.id).where(Shop.id == actor.shop_id).with_for_update())
    count = len(
        (
            await session.scalars(select(WebhookSubscription.id).where(visible(WebhookSubscription, actor)))
        ).all()
    )
    if count >= MAX_SUBSCRIPTIONS_PER_SHOP:
        raise DomainError.single(
            ErrorCode.TOO_MANY,
            f"a shop has at most {MAX_SUBSCRIPTIONS_PER_SHOP} webhook subscriptions",
            "url",
        )
    subscription = WebhookSubscription(
        shop_id=actor.shop_id,
        url=url.strip(),
        topics=unique_topics,
        description=(description or "").strip() or None,
        secret=new_secret(),
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    return subscription


async def _load_subscription(
    session: AsyncSession, actor: Actor, subscription_id: int, *, field: str = "id"
) -> WebhookSubscription:
    return await lock_visible(
        session, WebhookSubscription, actor, subscription_id, "webhook subscription", field
    )


async def update_subscription(
    session: AsyncSession,
    actor: Actor,
    subscription_id: int,
    change: SubscriptionChange,
    *,
    allow_private: bool,
    now: datetime | None = None,
) -> WebhookSubscription:
    """Change URL, topics, description; enabling again starts a fresh failure count."""
    require_scope(actor, Scope.WRITE_WEBHOOKS)
    now = now or utcnow()
    check = Checker()
    if change.url is not None:
        check_url(check, ("url",), change.url, allow_private=allow_private)
    topics = check_topics(check, ("topics",), change.topics) if change.topics is not None else None
    check_description(check, ("description",), change.description)
    check.raise_if_any()
    subscription = await _load_subscription(session, actor, subscription_id)
    if change.url is not None:
        subscription.url = change.url.strip()
    if topics is not None:
        subscription.topics = topics
    if change.description is not None:
        subscription.description = change.description.strip() or None
    if change.enabled is not None and change.enabled != subscription.enabled:
        subscription.enabled = change.enabled
        subscription.disabled_reason = None if change.enabled else "disabled by the merchant"
        subscription.failing_since = None
    subscription.updated_at = now
    return subscription


async def delete_subscription(session: AsyncSession, actor: Actor, subscription_id: int) -> int:
    """Delete a subscription with its deliveries; returns its id."""
    require_scope(actor, Scope.WRITE_WEBHOOKS)
    subscription = await _load_subscription(session, actor, subscription_id)
    await session.delete(subscription)
    await session.flush()
    return subscription_id


async def retry_delivery(
    session: AsyncSession, actor: Actor, delivery_id: int, *, now: datetime | None = None
) -> WebhookDelivery:
    """Send a delivery again now, with the same webhook-id and body, whatever its status."""
    require_scope(actor, Scope.WRITE_WEBHOOKS)
    now = now or utcnow()
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, visible(WebhookDelivery, actor))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if delivery is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "webhook delivery not found", "id")
    subscription = await session.get(WebhookSubscription, delivery.subscription_id)
    if subscription is None or not subscription.enabled:
        raise DomainError.single(
            ErrorCode.INVALID_STATE, "the subscription is disabled: enable it before retrying", "id"
        )
    number = delivery.attempts + 1
    delivery.status = D.RETRYING if delivery.attempts else D.PENDING
    delivery.next_attempt_at = now
    delivery.updated_at = now
    await enqueue(
        session,
        DELIVER_KIND,
        {"deliveryId": delivery.id, "attempt": number},
        key=f"{DELIVER_KIND}:{delivery.id}:{number}:{uuid.uuid4().hex}",
        run_at=now,
        shop_id=delivery.shop_id,
    )
    return delivery


# --- the outbox -----------------------------------------------------------------------------------------


# (topic, node type, node id) already announced in the session's transaction: one delivery per object and
# topic per transaction, however many steps of one use case announce it.
_ANNOUNCED = "dropdesk.webhooks.announced"
# The shop's enabled subscriptions, read once per transaction (an import of 100 orders announces 100 times).
_SUBSCRIBED = "dropdesk.webhooks.subscribed"


@event.listens_for(Session, "after_commit")
def _forget_announced_on_commit(session: Session) -> None:
    session.info.pop(_ANNOUNCED, None)
    session.info.pop(_SUBSCRIBED, None)


@event.listens_for(Session, "after_rollback")
def _forget_announced_on_rollback(session: Session) -> None:
    session.info.pop(_ANNOUNCED, None)
    session.info.pop(_SUBSCRIBED, None)


async def _enabled_subscriptions(session: AsyncSession, shop_id: int) -> list[tuple[int, list[str]]]:
    cache: dict[int, list[tuple[int, list[str]]]] = session.info.setdefault(_SUBSCRIBED, {})
    if shop_id not in cache:
        rows = await session.execute(
            select(WebhookSubscription.id, WebhookSubscription.topics).where(
                WebhookSubscription.shop_id == shop_id, WebhookSubscription.enabled.is_(True)
            )
        )
        cache[shop_id] = [(subscription_id, list(topics)) for subscription_id, topics in rows.all()]
    return cache[shop_id]


@reacts_to(SupplierOrderStatusChanged)
async def announce_supplier_order_status(
    session: AsyncSession, actor: Actor, change: SupplierOrderStatusChanged
) -> None:
    """Every status change of a supplier order, whichever use case made it (a supplier, a cancellation)."""
    supplier_order = change.supplier_order
    await announce(
        session,
        actor,
        Topic.SUPPLIER_ORDERS_UPDATED,
        shop_id=supplier_order.shop_id,
        node_type="SupplierOrder",
        node_id=supplier_order.id,
        now=change.occurred_at,
    )


@reacts_to(TopicChanged)
async def create_deliveries(session: AsyncSession, actor: Actor, change: TopicChanged) -> None:
    """One event, and a delivery with its first job per enabled subscription to the topic, in this transaction."""
    announced: set[tuple[str, str, int]] = session.info.setdefault(_ANNOUNCED, set())
    key = (change.topic.value, change.node_type, change.node_id)
    if key in announced:
        return
    announced.add(key)
    subscriptions = [
        subscription_id
        for subscription_id, topics in await _enabled_subscriptions(session, change.shop_id)
        if change.topic.value in topics
    ]
    if not subscriptions:
        return
    now = utcnow()
    event = WebhookEvent(
        shop_id=change.shop_id,
        topic=change.topic.value,
        node_type=change.node_type,
        node_id=change.node_id,
        occurred_at=change.occurred_at,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    deliveries = [
        WebhookDelivery(
            shop_id=change.shop_id,
            subscription_id=subscription_id,
            event_id=event.id,
            message_id=f"msg_{uuid.uuid4().hex}",
            topic=change.topic.value,
            status=D.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for subscription_id in subscriptions
    ]
    session.add_all(deliveries)
    await session.flush()
    for delivery in deliveries:
        await enqueue(
            session,
            DELIVER_KIND,
            {"deliveryId": delivery.id, "attempt": 1},
            key=f"{DELIVER_KIND}:{delivery.id}:1",
            run_at=now,
            shop_id=change.shop_id,
        )


# --- attempts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedAttempt:
    """What the sender needs for one attempt."""

    delivery_id: int
    shop_id: int
    number: int
    message_id: str
    url: str
    secret: str
    event_id: int
    topic: str
    node_type: str
    node_id: int
    occurred_at: datetime
    body: str | None


async def event_to_render(session: AsyncSession, delivery_id: int) -> WebhookEvent | None:
    """The delivery's event when its body is still to be rendered; None when it has one (or is gone)."""
    event = await session.scalar(
        select(WebhookEvent)
        .join(WebhookDelivery, WebhookDelivery.event_id == WebhookEvent.id)
        .where(WebhookDelivery.id == delivery_id)
    )
    return event if event is not None and event.body is None else None


async def claim_attempt(
    session: AsyncSession,
    delivery_id: int,
    number: int,
    job_id: int,
    *,
    now: datetime,
    rendered: str | None = None,
) -> ClaimedAttempt | None:
    """Take attempt ``number`` of a delivery for the job ``job_id``; None when there is nothing to send.

    The delivery row is locked, so of two jobs for the same attempt only the first gets it; the same job run
    again after its worker died gets it again (the receiver dedupes by webhook-id). A ``rendered`` body is
    kept on the event unless it already has one, in the same transaction.
    """
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if delivery is None or delivery.status in FINAL:
        return None
    fresh = delivery.attempts == number - 1
    resumed = delivery.attempts == number and delivery.attempt_job_id == job_id
    if not (fresh or resumed):
        return None
    subscription = await session.get(WebhookSubscription, delivery.subscription_id)
    assert subscription is not None
    if not subscription.enabled:
        delivery.status = D.FAILED
        delivery.last_error = "not sent: the subscription is disabled"
        delivery.next_attempt_at = None
        delivery.updated_at = now
        return None
    event = await session.get(WebhookEvent, delivery.event_id)
    assert event is not None
    body = event.body
    if body is None and rendered is not None:
        body = await store_body(session, event.id, rendered)
    delivery.attempts = number
    delivery.attempt_job_id = job_id
    delivery.updated_at = now
    return ClaimedAttempt(
        delivery_id=delivery.id,
        shop_id=delivery.shop_id,
        number=number,
        message_id=delivery.message_id,
        url=subscription.url,
        secret=subscription.secret,
        event_id=event.id,
        topic=event.topic,
        node_type=event.node_type,
        node_id=event.node_id,
        occurred_at=event.occurred_at,
        body=body,
    )


async def store_body(session: AsyncSession, event_id: int, body: str) -> str:
    """Keep the first rendered body of an event; returns the one kept (another worker may have won)."""
    await session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.body.is_(None))
        .values(body=body),
        execution_options={"synchronize_session": False},
    )
    kept = await session.scalar(select(WebhookEvent.body).where(WebhookEvent.id == event_id))
    assert kept is not None
    return kept


@dataclass(frozen=True)
class AttemptResult:
    """What happened when an attempt was sent: a status code, or an error (network, timeout, refused)."""

    status_code: int | None
    duration_ms: int
    response_body: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None
    # Refused before sending (SSRF): retrying would not help.
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and self.error is None

    @property
    def retriable(self) -> bool:
        if self.refused:
            return False
        if self.status_code is None:
            return True  # network error or timeout
        return self.status_code >= 500 or self.status_code == 429


def retry_delay(
    failed_attempt: int, retry_after: timedelta | None, rand: Callable[[], float]
) -> timedelta | None:
    """The wait before the next attempt, or None when the schedule is over."""
    if failed_attempt > len(RETRY_SCHEDULE):
        return None
    base = RETRY_SCHEDULE[failed_attempt - 1]
    delay = base * (1 - JITTER + 2 * JITTER * rand())
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


@dataclass(frozen=True)
class Recorded:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    subscription_disabled: bool


async def record_attempt(
    session: AsyncSession,
    claimed: ClaimedAttempt,
    job_id: int,
    result: AttemptResult,
    *,
    now: datetime,
    rand: Callable[[], float],
) -> Recorded | None:
    """Record an attempt and decide what follows: done, another attempt, or give up (and maybe disable).

    None when the attempt is no longer this job's (a later attempt has started meanwhile).
    """
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == claimed.delivery_id,
            WebhookDelivery.attempts == claimed.number,
            WebhookDelivery.attempt_job_id == job_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if delivery is None:
        return None
    session.add(
        WebhookAttempt(
            shop_id=delivery.shop_id,
            delivery_id=delivery.id,
            number=claimed.number,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            response_body=result.response_body,
            error=result.error,
            succeeded=result.succeeded,
            created_at=now,
        )
    )
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    delivery.updated_at = now
    delivery.attempt_job_id = None
    disabled = False
    if result.succeeded:
        delivery.status = D.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        # Touches (and locks) the subscription row only when it was failing: successes to a healthy endpoint
        # never queue behind each other.
        await session.execute(
            update(WebhookSubscription)
            .where(
                WebhookSubscription.id == delivery.subscription_id,
                WebhookSubscription.failing_since.isnot(None),
            )
            .values(failing_since=None),
            execution_options={"synchronize_session": False},
        )
        return Recorded(D.SUCCEEDED, None, False)

    subscription = await session.scalar(
        select(WebhookSubscription)
        .where(WebhookSubscription.id == delivery.subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert subscription is not None
    if subscription.failing_since is None:
        subscription.failing_since = now
    if result.status_code == 410:
        disabled = await _disable(session, subscription, "the endpoint answered 410 Gone", now)
    elif now - subscription.failing_since >= DISABLE_AFTER:
        disabled = await _disable(
            session, subscription, f"deliveries failed for {DISABLE_AFTER.days} days", now
        )
    delay = retry_delay(claimed.number, result.retry_after, rand) if result.retriable else None
    if disabled or delay is None:
        delivery.status = D.FAILED
        delivery.next_attempt_at = None
        return Recorded(D.FAILED, None, disabled)
    delivery.status = D.RETRYING
    delivery.next_attempt_at = now + delay
    number = claimed.number + 1
    await enqueue(
        session,
        DELIVER_KIND,
        {"deliveryId": delivery.id, "attempt": number},
        key=f"{DELIVER_KIND}:{delivery.id}:{number}",
        run_at=delivery.next_attempt_at,
        shop_id=delivery.shop_id,
    )
    return Recorded(D.RETRYING, delivery.next_attempt_at, False)


async def _disable(
    session: AsyncSession, subscription: WebhookSubscription, reason: str, now: datetime
) -> bool:
    if not subscription.enabled:
        return False
    subscription.enabled = False
    subscription.disabled_reason = reason
    subscription.updated_at = now
    # The shop hears about it by email, sent by a job so that a crash cannot lose it.
    await enqueue(
        session,
        DISABLED_EMAIL_KIND,
        {"subscriptionId": subscription.id, "reason": reason},
        key=f"{DISABLED_EMAIL_KIND}:{subscription.id}:{now.isoformat()}",
        shop_id=subscription.shop_id,
    )
    return True
