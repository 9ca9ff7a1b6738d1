"""Idempotency keys: a mutation retried with the same ``Idempotency-Key`` gets the first answer and changes
nothing; the same key with another request is refused.

The database decides who runs: the key's row is inserted (``ON CONFLICT DO NOTHING``) and committed before the
request runs, so of two requests sent at once exactly one inserts it; the other finds the row, waits for its
answer and replays it. A row whose request never finished (the process died) is taken over after a while.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from db.engine import Database
from db.jobs import Job, JobContext, handler, register_schedule
from db.models import IdempotencyKey
from db.types import utcnow

log = logging.getLogger("dropdesk.idempotency")

MAX_KEY_LENGTH = 255
# A request that has not answered after this long is taken to have died with its process.
ABANDONED_AFTER = timedelta(minutes=5)
CLEANUP_KIND = "idempotency.cleanup"
CLEANUP_BATCH = 1000


def request_hash(canonical_request: bytes) -> str:
    return hashlib.sha256(canonical_request).hexdigest()


@dataclass(frozen=True)
class Claimed:
    """This request holds the key: run it, then ``finish``."""

    row_id: int


@dataclass(frozen=True)
class Answered:
    """The key was used before with the same request: here is its first answer."""

    status_code: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class Mismatch:
    """The key was used before with another request."""


@dataclass(frozen=True)
class InProgress:
    """A twin holds the key and has not answered yet."""


ClaimResult = Claimed | Answered | Mismatch | InProgress


async def claim(
    database: Database,
    *,
    token_id: int,
    shop_id: int | None,
    key: str,
    request_digest: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> ClaimResult:
    now = now or utcnow()
    insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert
    async with database.write() as session:
        # An expired key starts afresh.
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.token_id == token_id,
                IdempotencyKey.key == key,
                IdempotencyKey.expires_at <= now,
            )
        )
        row_id = await session.scalar(
            insert(IdempotencyKey)
            .values(
                token_id=token_id,
                shop_id=shop_id,
                key=key,
                request_hash=request_digest,
                created_at=now,
                expires_at=now + ttl,
            )
            .on_conflict_do_nothing(index_elements=[IdempotencyKey.token_id, IdempotencyKey.key])
            .returning(IdempotencyKey.id)
        )
    if row_id is not None:
        return Claimed(row_id)
    async with database.read() as session:
        row = (
            await session.scalars(
                select(IdempotencyKey).where(IdempotencyKey.token_id == token_id, IdempotencyKey.key == key)
            )
        ).one_or_none()
    if row is None:  # deleted as expired between our insert and this read: the caller tries again
        return InProgress()
    if row.request_hash != request_digest:
        return Mismatch()
    if row.status_code is not None:
        return Answered(row.status_code, row.content_type, row.response or b"")
    if row.created_at < now - ABANDONED_AFTER:
        async with database.write() as session:
            taken = await session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.id == row.id,
                    IdempotencyKey.status_code.is_(None),
                    IdempotencyKey.created_at == row.created_at,
                )
                .values(created_at=now)
            )
        if getattr(taken, "rowcount", 0) == 1:
            return Claimed(row.id)
    return InProgress()


async def finish(
    database: Database, row_id: int, *, status_code: int, content_type: str | None, body: bytes
) -> None:
    async with database.write() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row_id)
            .values(status_code=status_code, content_type=content_type, response=body)
        )


@handler(CLEANUP_KIND)
async def delete_expired_keys(ctx: JobContext, job: Job) -> None:
    """Delete expired keys in batches, so that SQLite's write lock is never held for long."""
    now = ctx.clock()
    while True:
        async with ctx.database.write() as session:
            batch = select(IdempotencyKey.id).where(IdempotencyKey.expires_at <= now).limit(CLEANUP_BATCH)
            result = await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.id.in_(batch)),
                execution_options={"synchronize_session": False},
            )
        deleted: int = getattr(result, "rowcount", 0)
        if deleted:
            log.info("deleted %d expired idempotency keys", deleted)
        if deleted < CLEANUP_BATCH:
            return


register_schedule("idempotency.cleanup", timedelta(hours=1), CLEANUP_KIND)
