"""Live change notices for GraphQL subscriptions: sent at commit, heard by every process.

A transaction that writes order events (or calls ``notify_at_commit``) leaves a notice on a topic such as
``order_events:<shop id>`` with the ids of the new rows. On PostgreSQL the notice is a NOTIFY issued inside
the transaction, so PostgreSQL delivers it at commit and drops it on rollback, to every process that
LISTENs. On SQLite (one process serves everything) the notice is handed to this process's listeners right
after the commit. Either way only committed rows are announced, and a listener reads them back from the
database with its own tenancy rules; a notice is a wake-up, never the data.

Notices are best-effort (a listener that reconnects may miss some); the durable path for other systems is
outbound webhooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from db.models import OrderEvent

log = logging.getLogger("dropdesk.live")

CHANNEL = "dropdesk_live"
_PENDING = "dropdesk.live.pending"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
_MAX_PAYLOAD = 7000


def order_events_topic(shop_id: int) -> str:
    return f"order_events:{shop_id}"


def _payloads(topic: str, ids: list[int]) -> list[str]:
    """The notices for ``ids`` on ``topic``, split so that each fits in a NOTIFY."""
    if not ids:
        return [json.dumps({"topic": topic, "ids": []})]
    chunks, chunk = [], []
    for row_id in ids:
        chunk.append(row_id)
        if len(chunk) * 20 > _MAX_PAYLOAD - 200:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)
    return [json.dumps({"topic": topic, "ids": part}, separators=(",", ":")) for part in chunks]


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _remember(session: Session, topic: str, ids: Iterable[int]) -> None:
    pending: dict[str, list[int]] = session.info.setdefault(_PENDING, defaultdict(list))
    pending[topic].extend(ids)


@event.listens_for(Session, "after_flush")
def _order_events_flushed(session: Session, flush_context: Any) -> None:
    by_shop: dict[int, list[int]] = defaultdict(list)
    for instance in session.new:
        if isinstance(instance, OrderEvent):
            by_shop[instance.shop_id].append(instance.id)
    for shop_id, ids in by_shop.items():
        topic = order_events_topic(shop_id)
        if _is_postgresql(session):
            connection = session.connection()
            for payload in _payloads(topic, sorted(ids)):
                connection.execute(select(func.pg_notify(CHANNEL, payload)))
        else:
            _remember(session, topic, ids)


async def notify_at_commit(session: AsyncSession, topic: str, ids: Iterable[int] = ()) -> None:
    """Tell live listeners of ``topic`` about ``ids`` (or just that something changed) once this commits."""
    ids = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        for payload in _payloads(topic, ids):
            await session.execute(select(func.pg_notify(CHANNEL, payload)))
    else:
        _remember(session.sync_session, topic, ids)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        for topic, ids in pending.items():
            _dispatch_local(topic, list(ids))


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- listening --------------------------------------------------------------------------------------------


class _Hub:
    """This event loop's listeners, by topic; on PostgreSQL, one LISTEN connection shared by all of them."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.loop = asyncio.get_running_loop()
        self.queues: dict[str, set[asyncio.Queue[list[int]]]] = defaultdict(set)
        # Kept referenced on purpose: an unreferenced asyncpg connection is collected and goes quiet.
        self.connection: Any = None
        self.keeper: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def dispatch(self, topic: str, ids: list[int]) -> None:
        for queue in self.queues.get(topic, ()):
            queue.put_nowait(ids)

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            notice = json.loads(payload)
            self.dispatch(str(notice["topic"]), [int(row_id) for row_id in notice["ids"]])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed live notice: %r", payload[:200])

    async def _keep_listening(self) -> None:
        """Hold a LISTEN connection while anyone listens; reconnect when it drops."""
        url = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        while self.queues:
            if self.connection is None or self.connection.is_closed():
                self.listening.clear()
                try:
                    connection = await asyncpg.connect(url, timeout=10)
                    await connection.add_listener(CHANNEL, self._on_notify)
                except Exception:
                    log.exception("LISTEN %s failed; trying again", CHANNEL)
                    await asyncio.sleep(1.0)
                    continue
                self.connection = connection
                self.listening.set()
            await asyncio.sleep(1.0)
        await self._close()

    async def _close(self) -> None:
        connection, self.connection = self.connection, None
        self.listening.clear()
        if connection is not None:
            with suppress(Exception):
                await connection.close()

    async def ensure_listening(self) -> None:
        if not self.url.startswith("postgresql"):
            return
        if self.keeper is None or self.keeper.done():
            self.keeper = asyncio.create_task(self._keep_listening(), name="dropdesk-live-listen")
        await asyncio.wait_for(self.listening.wait(), timeout=15)


_hubs: dict[tuple[asyncio.AbstractEventLoop, str], _Hub] = {}


def _dispatch_local(topic: str, ids: list[int]) -> None:
    """Hand a committed notice to this process's listeners (SQLite), whatever loop they run on."""
    for (loop, url), hub in list(_hubs.items()):
        if url.startswith("postgresql"):
            continue  # PostgreSQL listeners hear the NOTIFY itself
        try:
            loop.call_soon_threadsafe(hub.dispatch, topic, ids)
        except RuntimeError:  # that loop is closed
            _hubs.pop((loop, url), None)


@asynccontextmanager
async def listen(database_url: str, topic: str) -> AsyncIterator[asyncio.Queue[list[int]]]:
    """A queue that receives the ids of every notice on ``topic`` committed from now on, until exit.

    It is registered before it is returned, so a caller that reads the current state after entering misses
    nothing committed in between.
    """
    loop = asyncio.get_running_loop()
    hub = _hubs.get((loop, database_url))
    if hub is None:
        hub = _hubs[(loop, database_url)] = _Hub(database_url)
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    hub.queues[topic].add(queue)
    try:
        await hub.ensure_listening()
        yield queue
    finally:
        hub.queues[topic].discard(queue)
        if not hub.queues[topic]:
            del hub.queues[topic]
