"""The job table: enqueueing in the caller's transaction, idempotency keys, operator queries, schedules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from db.engine import Database
from db.jobs import (
    CLEANUP_KIND,
    REGISTRY,
    Job,
    JobContext,
    JobStatus,
    Schedule,
    add_wake_listener,
    delete_finished_jobs,
    enqueue,
    enqueue_due_schedules,
    list_jobs,
    requeue_job,
    slot_start,
)
from db.types import utcnow


class Rollback(Exception):
    pass


async def count_jobs(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


async def test_rollback_enqueues_nothing(db: Database) -> None:
    with pytest.raises(Rollback):
        async with db.write() as session:
            assert await enqueue(session, "mail.send", {"to": "a@example.com"}, key="mail-1") is not None
            raise Rollback
    assert await count_jobs(db) == 0


async def test_commit_enqueues_once(db: Database) -> None:
    async with db.write() as session:
        job = await enqueue(session, "mail.send", {"to": "a@example.com"}, shop_id=7, max_attempts=3)
    assert job is not None
    async with db.read() as session:
        stored = (await session.scalars(select(Job))).one()
    assert (stored.id, stored.kind, stored.payload, stored.shop_id) == (
        job.id,
        "mail.send",
        {"to": "a@example.com"},
        7,
    )
    assert (stored.status, stored.attempts, stored.max_attempts) == (JobStatus.QUEUED, 0, 3)


async def test_duplicate_key_is_ignored_without_failing_the_transaction(db: Database) -> None:
    async with db.write() as session:
        first = await enqueue(session, "export.build", {"n": 1}, key="export-42")
        assert await enqueue(session, "export.build", {"n": 2}, key="export-42") is None
        # The caller's transaction is still usable after the ignored duplicate.
        assert await enqueue(session, "export.build", {"n": 3}, key="export-43") is not None
    async with db.write() as session:
        assert await enqueue(session, "export.build", {"n": 4}, key="export-42") is None
    async with db.read() as session:
        payloads = {job.key: job.payload for job in await session.scalars(select(Job))}
    assert first is not None
    assert payloads == {"export-42": {"n": 1}, "export-43": {"n": 3}}


async def test_jobs_without_key_are_never_deduplicated(db: Database) -> None:
    async with db.write() as session:
        for _ in range(3):
            assert await enqueue(session, "mail.send") is not None
    assert await count_jobs(db) == 3


async def test_commit_wakes_local_workers_and_rollback_does_not(db: Database) -> None:
    wake = asyncio.Event()
    remove = add_wake_listener(wake)
    try:
        with pytest.raises(Rollback):
            async with db.write() as session:
                await enqueue(session, "mail.send")
                raise Rollback
        await asyncio.sleep(0)  # the wake-up is scheduled on the loop, not set inline
        assert not wake.is_set()
        async with db.write() as session:
            await enqueue(session, "mail.send")
        await asyncio.wait_for(wake.wait(), timeout=1)
    finally:
        remove()


async def test_list_jobs_by_status_and_requeue_dead(db: Database) -> None:
    async with db.write() as session:
        dead = await enqueue(session, "mail.send")
        queued = await enqueue(session, "mail.send")
        assert dead is not None and queued is not None
        dead.status, dead.attempts, dead.last_error = JobStatus.DEAD, 10, "SMTPError: 550"
    async with db.read() as session:
        assert [job.id for job in await list_jobs(session, JobStatus.DEAD)] == [dead.id]
        assert [job.id for job in await list_jobs(session, None, limit=10)] == [queued.id, dead.id]
        assert await list_jobs(session, JobStatus.RUNNING) == []
    async with db.write() as session:
        assert await requeue_job(session, queued.id) is None  # only dead jobs are requeued
        again = await requeue_job(session, dead.id)
    assert again is not None
    assert (again.status, again.attempts, again.last_error) == (JobStatus.QUEUED, 0, "SMTPError: 550")
    async with db.write() as session:
        assert await requeue_job(session, 10**9) is None


def test_slot_start_is_aligned_and_shared() -> None:
    every = timedelta(minutes=15)
    assert slot_start(datetime(2026, 11, 21, 10, 14, 59, tzinfo=UTC), every) == datetime(
        2026, 11, 21, 10, 0, tzinfo=UTC
    )
    assert slot_start(datetime(2026, 11, 21, 10, 15, tzinfo=UTC), every) == datetime(
        2026, 11, 21, 10, 15, tzinfo=UTC
    )


async def test_each_schedule_slot_is_enqueued_once_however_many_workers(db: Database) -> None:
    schedules = [
        Schedule("orders.sweep", timedelta(minutes=5), "orders.sweep_deadlines", {"limit": 100}),
        Schedule("daily.report", timedelta(days=1), "reports.daily"),
    ]
    now = datetime(2026, 11, 21, 10, 2, tzinfo=UTC)
    # Five workers tick at the same moment.
    created = await asyncio.gather(*(enqueue_due_schedules(db, schedules, now) for _ in range(5)))
    assert sorted(job.kind for jobs in created for job in jobs) == ["orders.sweep_deadlines", "reports.daily"]
    # Later in the same slot: nothing new.
    assert await enqueue_due_schedules(db, schedules, now + timedelta(minutes=2)) == []
    # The next five-minute slot: only the sweep runs again.
    later = await enqueue_due_schedules(db, schedules, now + timedelta(minutes=3))
    assert [(job.kind, job.run_at, job.payload) for job in later] == [
        ("orders.sweep_deadlines", datetime(2026, 11, 21, 10, 5, tzinfo=UTC), {"limit": 100})
    ]
    assert await count_jobs(db) == 3


async def test_cleanup_deletes_old_finished_jobs_only(db: Database, tmp_path: Path) -> None:
    now = utcnow()
    async with db.write() as session:
        for status, age_days in [
            (JobStatus.DONE, 8),
            (JobStatus.DONE, 6),
            (JobStatus.DEAD, 30),
            (JobStatus.QUEUED, 30),
        ]:
            job = await enqueue(session, "mail.send", {"status": status.value, "age": age_days})
            assert job is not None
            job.status = status
            job.finished_at = now - timedelta(days=age_days)
    settings = Settings(
        database_url=db.url,
        secret_key="test",
        public_url="http://test",
        smtp_url="smtp://test",
        data_dir=tmp_path,
    )
    ctx = JobContext(database=db, settings=settings, worker_name="test", clock=lambda: now)
    cleanup = Job(kind=CLEANUP_KIND, payload={"keep_days": 7})
    await delete_finished_jobs(ctx, cleanup)
    async with db.read() as session:
        left = sorted(
            (job.payload["status"], job.payload["age"]) for job in await session.scalars(select(Job))
        )
    assert left == [("DEAD", 30), ("DONE", 6), ("QUEUED", 30)]
    assert REGISTRY.handlers[CLEANUP_KIND] is delete_finished_jobs
    assert REGISTRY.schedules["jobs.cleanup"].kind == CLEANUP_KIND
