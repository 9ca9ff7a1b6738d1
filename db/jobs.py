"""The durable job table: enqueue in the caller's transaction, handler and schedule registries, operator queries.

Jobs are written in the same transaction as the business change that causes them (transactional outbox), so a
rollback leaves no job behind and a commit always leaves one. Workers (``api.worker``) claim and run them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    Index,
    Integer,
    String,
    Text,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from db.engine import Database
from db.models import PK, Base
from db.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("dropdesk.jobs")

NOTIFY_CHANNEL = "dropdesk_jobs"
DEFAULT_MAX_ATTEMPTS = 10
ERROR_TEXT_LIMIT = 8000
_WAKE_FLAG = "dropdesk.jobs.wake"


class JobStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    DEAD = "DEAD"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "status", "run_at", "id"),
        Index("ix_jobs_lease", "status", "lease_until"),
        Index("ix_jobs_finished", "status", "finished_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    # NULL for system jobs (cleanup, sweeps across shops).
    shop_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(100))
    # Idempotency key: a second enqueue with the same key is ignored.
    key: Mapped[str | None] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=20, validate_strings=True), default=JobStatus.QUEUED
    )
    # Counts claims, so it doubles as a fencing token: a worker only finishes the attempt it claimed.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobSchedule(Base):
    """The last time slot enqueued per recurring schedule; a compare-and-set on it makes each run unique."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(BigInteger)
    last_slot_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- waking workers ---------------------------------------------------------------------------------------

_local_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def add_wake_listener(wake: asyncio.Event) -> Callable[[], None]:
    """Set ``wake`` whenever a transaction of this process that enqueued work commits; returns the remover.

    This is how the in-server worker on SQLite learns about new jobs without polling.
    """
    entry = (asyncio.get_running_loop(), wake)
    _local_waiters.add(entry)
    return lambda: _local_waiters.discard(entry)


def _wake_local_workers() -> None:
    for loop, wake in list(_local_waiters):
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # the loop is closed: its worker is gone
            _local_waiters.discard((loop, wake))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WAKE_FLAG, False):
        _wake_local_workers()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_FLAG, None)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def _signal_workers(session: AsyncSession) -> None:
    """Arrange for workers to wake when the caller's transaction commits (and only then)."""
    if session.info.get(_WAKE_FLAG):
        return
    session.info[_WAKE_FLAG] = True
    if _dialect(session) == "postgresql":
        # NOTIFY is transactional: PostgreSQL delivers it at commit and drops it on rollback.
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert


# --- enqueueing and operator queries ----------------------------------------------------------------------


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    run_at: datetime | None = None,
    shop_id: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job | None:
    """Add a job in the caller's transaction; returns None when a job with the same ``key`` already exists.

    The insert uses ON CONFLICT DO NOTHING so that a duplicate key does not abort the caller's transaction.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    now = utcnow()
    statement = (
        _insert(session)(Job)
        .values(
            kind=kind,
            payload=payload or {},
            key=key,
            shop_id=shop_id,
            status=JobStatus.QUEUED,
            attempts=0,
            max_attempts=max_attempts,
            run_at=run_at or now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Job.key])
        .returning(Job)
    )
    job = (await session.scalars(statement)).one_or_none()
    if job is not None:
        await _signal_workers(session)
    return job


async def add_with_job(
    session: AsyncSession, row: Any, kind: str, payload_key: str, *, max_attempts: int
) -> Job:
    """Adds ``row`` (an export, a bulk action: anything with ``id``, ``shop_id`` and ``job_id``) and the one job
    that works on it, in the caller's transaction. The job's key names the row, so it is queued once."""
    session.add(row)
    await session.flush()
    job = await enqueue(
        session,
        kind,
        {payload_key: row.id},
        key=f"{kind}:{row.id}",
        shop_id=row.shop_id,
        max_attempts=max_attempts,
    )
    assert job is not None  # a row just inserted has a new id, hence a new key
    row.job_id = job.id
    return job


async def list_jobs(session: AsyncSession, status: JobStatus | None = None, limit: int = 50) -> list[Job]:
    """Newest jobs first, optionally of one status: what operators look at when something is stuck."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    return list((await session.scalars(query)).all())


async def requeue_job(session: AsyncSession, job_id: int, *, now: datetime | None = None) -> Job | None:
    """Give a dead job a fresh set of attempts, due now; None when there is no dead job with that id.

    The last error is kept so that the operator still sees why it died until it runs again.
    """
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.DEAD)
        .values(
            status=JobStatus.QUEUED,
            attempts=0,
            run_at=now or utcnow(),
            locked_by=None,
            lease_until=None,
            finished_at=None,
        )
        .returning(Job)
    )
    result = await session.scalars(statement, execution_options={"synchronize_session": False})
    job = result.one_or_none()
    if job is not None:
        await _signal_workers(session)
    return job


# --- handlers and schedules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobContext:
    """What a handler gets besides its job: the database (to open its own transactions) and the settings."""

    database: Database
    settings: Settings
    worker_name: str
    clock: Callable[[], datetime] = utcnow


Handler = Callable[[JobContext, Job], Awaitable[None]]


@dataclass(frozen=True)
class Schedule:
    name: str
    every: timedelta
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registry:
    """Handlers by job kind and recurring schedules by name.

    Modules register at import (``@handler("kind")``), so a worker runs whatever kinds its process imported.
    """

    handlers: dict[str, Handler] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)

    def register(self, kind: str, fn: Handler) -> Handler:
        if kind in self.handlers and self.handlers[kind] is not fn:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        self.handlers[kind] = fn
        return fn

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            return self.register(kind, fn)

        return decorate

    def register_schedule(
        self, name: str, every: timedelta, kind: str, payload: dict[str, Any] | None = None
    ) -> Schedule:
        """Enqueue ``kind`` once per ``every`` (slots aligned on the Unix epoch), however many workers run.

        This is also the hook for deadline sweeps: a module registers a handler for its sweep kind and a
        schedule that enqueues it.
        """
        if every <= timedelta(0):
            raise ValueError("a schedule needs a positive interval")
        schedule = Schedule(name=name, every=every, kind=kind, payload=dict(payload or {}))
        existing = self.schedules.get(name)
        if existing is not None and existing != schedule:
            raise ValueError(f"schedule {name!r} is already registered differently")
        self.schedules[name] = schedule
        return schedule


REGISTRY = Registry()
register = REGISTRY.register
handler = REGISTRY.handler
register_schedule = REGISTRY.register_schedule

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def slot_start(now: datetime, every: timedelta) -> datetime:
    """The start of the time slot that contains ``now``; every worker computes the same slot."""
    return _EPOCH + ((now - _EPOCH) // every) * every


async def enqueue_due_schedules(database: Database, schedules: list[Schedule], now: datetime) -> list[Job]:
    """Enqueue the current slot's run of each schedule unless some worker already did; returns new jobs.

    An upsert moves ``last_slot_at`` forward only when it is behind: on PostgreSQL the row lock makes
    concurrent workers queue up and all but the first see nothing to update; on SQLite the single writer does.
    """
    created: list[Job] = []
    if not schedules:
        return created
    async with database.write() as session:
        insert = _insert(session)
        for schedule in schedules:
            slot = slot_start(now, schedule.every)
            statement = insert(JobSchedule).values(name=schedule.name, last_slot_at=slot, updated_at=now)
            statement = statement.on_conflict_do_update(
                index_elements=[JobSchedule.name],
                set_={
                    "last_slot_at": statement.excluded.last_slot_at,
                    "updated_at": statement.excluded.updated_at,
                },
                where=JobSchedule.last_slot_at < statement.excluded.last_slot_at,
            ).returning(JobSchedule.name)
            if (await session.execute(statement)).first() is None:
                continue
            job = await enqueue(
                session,
                schedule.kind,
                schedule.payload,
                key=f"schedule:{schedule.name}:{slot.isoformat()}",
                run_at=slot,
            )
            if job is not None:
                created.append(job)
    return created


# --- built-in work ----------------------------------------------------------------------------------------

CLEANUP_KIND = "jobs.cleanup"
CLEANUP_BATCH = 1000


@handler(CLEANUP_KIND)
async def delete_finished_jobs(ctx: JobContext, job: Job) -> None:
    """Delete jobs that finished successfully more than ``keep_days`` ago; dead jobs stay for operators.

    Deletes in batches so that on SQLite the write lock is never held for long.
    """
    cutoff = ctx.clock() - timedelta(days=float(job.payload.get("keep_days", 7)))
    while True:
        async with ctx.database.write() as session:
            batch = (
                select(Job.id)
                .where(Job.status == JobStatus.DONE, Job.finished_at < cutoff)
                .limit(CLEANUP_BATCH)
            )
            result = await session.execute(
                delete(Job).where(Job.id.in_(batch)), execution_options={"synchronize_session": False}
            )
        deleted: int = getattr(result, "rowcount", 0)
        log.info("deleted %d finished jobs", deleted)
        if deleted < CLEANUP_BATCH:
            return


register_schedule("jobs.cleanup", timedelta(hours=1), CLEANUP_KIND, {"keep_days": 7})
