"""Sending outbound webhooks: the job handlers that render, sign and POST deliveries, and the disabled email.

Each attempt: claim it (``domain.webhooks.claim_attempt``), render the body once per event from the GraphQL
schema, resolve the host and refuse non-public addresses (SSRF) unless allowed, POST to the resolved address
with Standard Webhooks headers, no redirects, a connect timeout and a total deadline, keep the first 1 KiB of
the answer, and record the outcome, which schedules the next attempt or gives up.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import random
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from config.metrics import WEBHOOK_DELIVERY_FAILURES
from config.settings import Settings
from db.engine import Database
from db.jobs import Job, JobContext, handler
from db.models import Shop, WebhookEvent, WebhookSubscription
from domain.mail import send_mail
from domain.webhooks import (
    DELIVER_KIND,
    DISABLED_EMAIL_KIND,
    RESPONSE_KEEP_BYTES,
    AttemptResult,
    claim_attempt,
    event_to_render,
    non_global_address,
    record_attempt,
)
from schema.root import build_schema
from schema.webhooks import render_body

log = logging.getLogger("dropdesk.webhooks")

CONNECT_TIMEOUT = 5.0
USER_AGENT = "Dropdesk-Webhooks/1.0"

_schemas: dict[int, strawberry.Schema] = {}
_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _schema(settings: Settings) -> strawberry.Schema:
    schema = _schemas.get(id(settings))
    if schema is None:
        schema = _schemas[id(settings)] = build_schema(settings)
    return schema


def _client() -> httpx.AsyncClient:
    """One client per event loop, so that connections to the same endpoint are reused."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the address checked is the address used
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        _clients[loop] = client
    return client


class Refused(Exception):
    """The target may not be contacted (SSRF protection); retrying would not help."""


@dataclass(frozen=True)
class Target:
    """Where to connect (a checked address) and what to say the host is."""

    url: str
    host_header: str
    sni_hostname: str | None


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host now and refuse it unless every address it has is public (or private is allowed).

    The request then goes to the checked address itself, so a second DNS answer cannot point elsewhere.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in {"http", "https"} or not host:
        raise Refused("only http and https URLs with a host are delivered")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConnectionError(f"cannot resolve {host}: {error.strerror or error}") from error
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ConnectionError(f"{host} has no address")
    if not allow_private:
        blocked = [address for address in addresses if non_global_address(address)]
        if blocked:
            raise Refused(f"refused: {host} resolves to a non-public address ({blocked[0]})")
    address = addresses[0]
    shown = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = f"{shown}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    return Target(
        url=target,
        host_header=host_header,
        sni_hostname=unquote(host) if parts.scheme == "https" else None,
    )


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def _storable(raw: bytes) -> str:
    # The database refuses NUL; decoding with "replace" never yields lone surrogates.
    return raw[:RESPONSE_KEEP_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd")


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, now, body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


async def send(
    url: str, headers: dict[str, str], body: str, *, allow_private: bool, timeout: float
) -> AttemptResult:
    """POST once; every outcome, failures included, comes back as an ``AttemptResult``."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with asyncio.timeout(timeout):
            target = await resolve_target(url, allow_private=allow_private)
            extensions: dict[str, Any] = {}
            if target.sni_hostname:
                extensions["sni_hostname"] = target.sni_hostname
            request = _client().build_request(
                "POST",
                target.url,
                content=body.encode(),
                headers={**headers, "host": target.host_header},
                timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
                extensions=extensions,
            )
            response = await _client().send(request, stream=True)
            try:
                kept = bytearray()
                async for chunk in response.aiter_raw():
                    kept.extend(chunk)
                    if len(kept) >= RESPONSE_KEEP_BYTES:
                        break
            finally:
                await response.aclose()
    except Refused as error:
        return AttemptResult(status_code=None, duration_ms=elapsed(), error=str(error), refused=True)
    except TimeoutError:
        return AttemptResult(
            status_code=None, duration_ms=elapsed(), error=f"no answer within {timeout:g} seconds"
        )
    except (httpx.HTTPError, OSError) as error:
        return AttemptResult(
            status_code=None, duration_ms=elapsed(), error=f"{type(error).__name__}: {error}"[:1000]
        )
    status = response.status_code
    redirect = None
    if 300 <= status < 400:
        redirect = f"redirect to {response.headers.get('location', '?')[:500]} not followed"
    return AttemptResult(
        status_code=status,
        duration_ms=elapsed(),
        response_body=_storable(bytes(kept)),
        error=redirect,
        retry_after=retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
    )


async def _render(ctx: JobContext, event: WebhookEvent) -> str:
    return await render_body(
        _schema(ctx.settings),
        ctx.database,
        ctx.settings,
        shop_id=event.shop_id,
        topic=event.topic,
        node_type=event.node_type,
        node_id=event.node_id,
        occurred_at=event.occurred_at,
    )


_sqlite_writes: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


@asynccontextmanager
async def _writing(database: Database) -> AsyncIterator[AsyncSession]:
    """A write transaction; on SQLite, this process's deliveries take turns rather than wait in SQLite's
    busy handler, whose sleeps grow to 100 ms under contention."""
    if not database.is_sqlite:
        async with database.write() as session:
            yield session
        return
    lock = _sqlite_writes.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock, database.write() as session:
        yield session


@handler(DELIVER_KIND)
async def deliver(ctx: JobContext, job: Job) -> None:
    """One attempt of one delivery; a failure is an outcome to record, not a failed job.

    The body is rendered (a read) before the attempt is claimed, so that claiming and keeping the body take one
    short write transaction, and recording the outcome another.
    """
    delivery_id, number = int(job.payload["deliveryId"]), int(job.payload["attempt"])
    async with ctx.database.read() as session:
        event = await event_to_render(session, delivery_id)
    rendered = await _render(ctx, event) if event is not None else None
    async with _writing(ctx.database) as session:
        claimed = await claim_attempt(
            session, delivery_id, number, job.id, now=ctx.clock(), rendered=rendered
        )
    if claimed is None:
        return
    assert claimed.body is not None
    headers = signed_headers(claimed.secret, claimed.message_id, claimed.body, datetime.now(UTC))
    result = await send(
        claimed.url,
        headers,
        claimed.body,
        allow_private=ctx.settings.webhook_allow_private_urls,
        timeout=ctx.settings.webhook_timeout_seconds,
    )
    async with _writing(ctx.database) as session:
        recorded = await record_attempt(session, claimed, job.id, result, now=ctx.clock(), rand=random.random)
    if not result.succeeded:
        WEBHOOK_DELIVERY_FAILURES.labels(topic=claimed.topic).inc()
    log.info(
        "webhook %s attempt %d to %s: %s",
        claimed.message_id,
        number,
        claimed.url,
        result.status_code or result.error,
        extra={"outcome": recorded.status.value if recorded else "superseded"},
    )


# --- the email that says a subscription was disabled ------------------------------------------------------


async def send_email(settings: Settings, to: str, subject: str, text: str) -> None:
    """One plain-text message through the configured mail server; without one, it is logged and dropped."""
    smtp = settings.smtp
    if smtp is None:
        log.warning("no DROPDESK_SMTP_URL: %r to %s not sent", subject, to)
        return
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    await send_mail(smtp, message)


@handler(DISABLED_EMAIL_KIND)
async def email_disabled_subscription(ctx: JobContext, job: Job) -> None:
    """Tell the shop that a subscription stopped receiving deliveries, and why."""
    async with ctx.database.read() as session:
        subscription = await session.get(WebhookSubscription, int(job.payload["subscriptionId"]))
        shop = await session.get(Shop, subscription.shop_id) if subscription else None
    if subscription is None or shop is None or not shop.email:
        log.info("no email for disabled subscription %s: no shop address", job.payload["subscriptionId"])
        return
    reason = str(job.payload.get("reason") or subscription.disabled_reason or "")
    text = (
        f"Hello {shop.name},\n\n"
        f"Dropdesk stopped sending webhooks to {subscription.url} because {reason}.\n"
        f"Topics: {', '.join(subscription.topics)}.\n\n"
        "Fix the endpoint, then enable the subscription again (webhookSubscriptionUpdate with enabled: true).\n"
        "Failed deliveries stay listed in webhookDeliveries and can be sent again with webhookDeliveryRetry.\n"
    )
    await send_email(ctx.settings, shop.email, "Webhook subscription disabled", text)
