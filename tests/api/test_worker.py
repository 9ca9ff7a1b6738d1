"""The worker: retries and dead letters, leases, graceful stop, several processes, a killed process, operators."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.worker import LEASE_EXPIRED, Worker, retry_delay
from config.settings import Settings
from db.engine import Database
from db.jobs import Job, JobContext, JobStatus, Registry, enqueue
from db.models import TokenKind
from db.types import utcnow
from domain.tokens import issue_token
from tests.factories import Api, Tenant
from tests.jobs_worker import results

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db.url,
        secret_key="test",
        public_url="http://test",
        smtp_url="smtp://test",
        data_dir=tmp_path,
    )


class Clock:
    """Injected time: tests move it forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Poll ``check`` until it holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def job_by_id(database: Database, job_id: int) -> Job:
    async with database.read() as session:
        job = await session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return job


async def enqueue_one(database: Database, kind: str, **kwargs: Any) -> Job:
    async with database.write() as session:
        job = await enqueue(session, kind, **kwargs)
    assert job is not None
    return job


# --- retries, dead letters and leases (one process, injected time) ------------------------------------------


def test_retry_delay_doubles_with_jitter_and_is_capped() -> None:
    base, cap = timedelta(seconds=5), timedelta(minutes=1)
    assert [retry_delay(n, base=base, cap=cap, rand=lambda: 1.0) for n in (1, 2, 3)] == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        timedelta(seconds=20),
    ]
    assert retry_delay(3, base=base, cap=cap, rand=lambda: 0.0) == timedelta(seconds=10)
    assert retry_delay(30, base=base, cap=cap, rand=lambda: 1.0) == cap


async def test_failing_handler_is_retried_with_backoff_then_dead_with_its_error(
    db: Database, settings: Settings
) -> None:
    registry = Registry()
    calls: list[int] = []

    @registry.handler("supplier.sync")
    async def fail(ctx: JobContext, job: Job) -> None:
        calls.append(job.attempts)
        raise ConnectionError(f"supplier API unreachable (attempt {job.attempts})")

    clock = Clock()
    worker = Worker(
        db, settings, registry=registry, clock=clock, rand=lambda: 1.0, backoff_base=timedelta(seconds=5)
    )
    job = await enqueue_one(db, "supplier.sync", max_attempts=3, run_at=clock.now)

    assert await worker.drain() == 1
    first = await job_by_id(db, job.id)
    assert (first.status, first.attempts, first.run_at) == (
        JobStatus.QUEUED,
        1,
        clock.now + timedelta(seconds=5),
    )
    assert first.last_error is not None and "attempt 1" in first.last_error

    clock.advance(timedelta(seconds=4))
    assert await worker.drain() == 0  # not due yet
    clock.advance(timedelta(seconds=1))
    assert await worker.drain() == 1
    second = await job_by_id(db, job.id)
    assert (second.status, second.run_at) == (JobStatus.QUEUED, clock.now + timedelta(seconds=10))

    clock.advance(timedelta(seconds=10))
    assert await worker.drain() == 1
    dead = await job_by_id(db, job.id)
    assert (dead.status, dead.attempts, dead.finished_at, dead.locked_by) == (
        JobStatus.DEAD,
        3,
        clock.now,
        None,
    )
    assert dead.last_error is not None
    assert "ConnectionError: supplier API unreachable (attempt 3)" in dead.last_error
    assert "Traceback" in dead.last_error
    clock.advance(timedelta(days=1))
    assert await worker.drain() == 0
    assert calls == [1, 2, 3]


async def test_unknown_kind_fails_and_is_retried(db: Database, settings: Settings) -> None:
    clock = Clock()
    job = await enqueue_one(db, "not.registered", run_at=clock.now)
    assert await Worker(db, settings, registry=Registry(), clock=clock).drain() == 1
    stored = await job_by_id(db, job.id)
    assert stored.status is JobStatus.QUEUED
    assert stored.last_error is not None and "no handler registered" in stored.last_error


async def test_expired_lease_makes_the_job_claimable_and_fences_the_old_worker(
    db: Database, settings: Settings
) -> None:
    clock = Clock()
    lease = timedelta(seconds=2)
    registry = Registry()
    ran: list[str] = []

    @registry.handler("export.build")
    async def build(ctx: JobContext, job: Job) -> None:
        ran.append(ctx.worker_name)

    # Expired leases are swept at most once per poll interval.
    options: dict[str, Any] = {"registry": registry, "clock": clock, "lease": lease, "poll_interval": 1.0}
    lost = Worker(db, settings, name="lost", **options)
    other = Worker(db, settings, name="other", **options)
    job = await enqueue_one(db, "export.build", run_at=clock.now)
    [claimed] = await lost.claim(1)
    assert await other.claim(1) == []  # leased

    clock.advance(timedelta(seconds=3))
    assert await other.drain() == 1
    stored = await job_by_id(db, job.id)
    assert (stored.status, stored.attempts, stored.last_error) == (JobStatus.DONE, 2, LEASE_EXPIRED)

    # The first worker comes back and reports its attempt: it no longer holds the job, nothing changes.
    await lost.execute(claimed)
    await lost.claim(0)
    assert (await job_by_id(db, job.id)).finished_at == stored.finished_at
    assert ran == ["other", "lost"]


async def test_lease_expiring_on_the_last_attempt_buries_the_job(db: Database, settings: Settings) -> None:
    clock = Clock()
    job = await enqueue_one(db, "export.build", run_at=clock.now, max_attempts=1)
    assert len(await Worker(db, settings, registry=Registry(), clock=clock).claim(1)) == 1
    clock.advance(timedelta(minutes=1))
    assert await Worker(db, settings, registry=Registry(), clock=clock).claim(1) == []
    stored = await job_by_id(db, job.id)
    assert (stored.status, stored.last_error) == (JobStatus.DEAD, LEASE_EXPIRED)


# --- the loop: wake-ups, heartbeat, graceful stop -----------------------------------------------------------


@dataclass
class Running:
    worker: Worker
    task: asyncio.Task[None]
    stop: asyncio.Event


@pytest.fixture
async def start(db: Database, settings: Settings) -> AsyncIterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(registry: Registry, **kwargs: Any) -> Running:
        stop = asyncio.Event()
        worker = Worker(db, settings, registry=registry, **kwargs)
        running = Running(worker, asyncio.create_task(worker.run(stop)), stop)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop.set()
    await asyncio.gather(*(running.task for running in started))


async def test_commit_wakes_an_idle_worker_without_polling(
    db: Database, start: Callable[..., Running]
) -> None:
    registry = Registry()
    sent: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]

    @registry.handler("mail.send")
    async def send(ctx: JobContext, job: Job) -> None:
        sent[job.payload["n"]].set()

    start(registry, poll_interval=60.0)  # a poll would come far too late for the timeouts below
    for n in (0, 1):  # the second job arrives while the worker is idle after the first
        await enqueue_one(db, "mail.send", payload={"n": n})
        await asyncio.wait_for(sent[n].wait(), timeout=5)


async def test_heartbeat_keeps_a_long_job_leased(db: Database, start: Callable[..., Running]) -> None:
    registry = Registry()
    runs: list[str] = []

    @registry.handler("export.build")
    async def build(ctx: JobContext, job: Job) -> None:
        runs.append(ctx.worker_name)
        await asyncio.sleep(3.0)  # three times the lease

    job = await enqueue_one(db, "export.build")
    lease = timedelta(seconds=1)
    start(registry, lease=lease, poll_interval=0.05, name="first")
    await eventually(lambda: _has_runs(runs))
    start(registry, lease=lease, poll_interval=0.05, name="second")

    async def done() -> bool:
        return (await job_by_id(db, job.id)).status is JobStatus.DONE

    await eventually(done)
    assert runs == ["first"]
    assert (await job_by_id(db, job.id)).attempts == 1


async def _has_runs(runs: list[str]) -> bool:
    return bool(runs)


async def test_stop_lets_running_jobs_finish_within_the_grace_period(
    db: Database, start: Callable[..., Running]
) -> None:
    registry = Registry()
    started, release = asyncio.Event(), asyncio.Event()

    @registry.handler("export.build")
    async def build(ctx: JobContext, job: Job) -> None:
        started.set()
        await release.wait()

    job = await enqueue_one(db, "export.build")
    running = start(registry, grace=10.0, poll_interval=0.05)
    await asyncio.wait_for(started.wait(), timeout=5)
    running.stop.set()
    await asyncio.sleep(0.1)
    assert not running.task.done()  # still waiting for the job
    release.set()
    await asyncio.wait_for(running.task, timeout=5)
    assert (await job_by_id(db, job.id)).status is JobStatus.DONE


async def test_stop_releases_jobs_that_overrun_the_grace_period(
    db: Database, start: Callable[..., Running]
) -> None:
    registry = Registry()
    started = asyncio.Event()

    @registry.handler("export.build")
    async def build(ctx: JobContext, job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    job = await enqueue_one(db, "export.build")
    running = start(registry, grace=0.1, poll_interval=0.05)
    await asyncio.wait_for(started.wait(), timeout=5)
    running.stop.set()
    await asyncio.wait_for(running.task, timeout=5)
    released = await job_by_id(db, job.id)
    assert (released.status, released.attempts, released.locked_by) == (JobStatus.QUEUED, 0, None)


# --- worker processes ---------------------------------------------------------------------------------------


@pytest.fixture
async def results_table(db: Database) -> AsyncIterator[None]:
    async with db.engine.begin() as connection:
        await connection.run_sync(results.create, checkfirst=True)
    yield
    async with db.engine.begin() as connection:
        await connection.run_sync(results.drop)


@pytest.fixture
def spawn(db: Database, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "DROPDESK_DATABASE_URL": db.url,
        "DROPDESK_SECRET_KEY": "test",
        "DROPDESK_DATA_DIR": str(tmp_path),
    }

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "tests.jobs_worker", *args], cwd=ROOT, env=env)
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def count_results(db: Database) -> tuple[int, int, int]:
    """Runs recorded, distinct jobs among them, distinct processes."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(
                    func.count(),
                    func.count(results.c.job_id.distinct()),
                    func.count(results.c.pid.distinct()),
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def wait_exit(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    async def exited() -> bool:
        return process.poll() is not None

    await eventually(exited, timeout=timeout)
    return process.returncode


async def test_three_worker_processes_run_each_of_1000_jobs_exactly_once(
    db: Database, results_table: None, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    if db.is_sqlite:
        pytest.skip(
            "SKIP LOCKED across worker processes is PostgreSQL's; SQLite serialises claims in-process"
        )
    workers = [spawn("--concurrency", "4", "--poll-interval", "0.5") for _ in range(3)]
    async with db.write() as session:
        for n in range(1000):
            await enqueue(session, "test.record", {"n": n})

    async def all_done() -> bool:
        async with db.read() as session:
            done = await session.scalar(select(func.count()).where(Job.status == JobStatus.DONE))
        return done == 1000

    await eventually(all_done, timeout=40, interval=0.2)
    runs, jobs, pids = await count_results(db)
    assert (runs, jobs) == (1000, 1000)
    assert pids >= 2
    for process in workers:
        process.send_signal(signal.SIGTERM)
    assert [await wait_exit(process) for process in workers] == [0, 0, 0]


async def test_job_of_a_killed_worker_runs_again_after_its_lease_expires(
    db: Database, results_table: None, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    job = await enqueue_one(db, "test.hang_first")
    doomed = spawn("--concurrency", "1", "--lease", "1.5", "--poll-interval", "0.1")

    async def started() -> bool:
        return (await count_results(db))[0] == 1

    await eventually(started, timeout=15)
    doomed.kill()  # SIGKILL: no chance to release the job
    assert await wait_exit(doomed) == -signal.SIGKILL
    assert (await job_by_id(db, job.id)).status is JobStatus.RUNNING

    survivor = spawn("--concurrency", "1", "--lease", "1.5", "--poll-interval", "0.1")

    async def done() -> bool:
        return (await job_by_id(db, job.id)).status is JobStatus.DONE

    await eventually(done, timeout=20)
    stored = await job_by_id(db, job.id)
    assert (stored.attempts, stored.last_error) == (2, LEASE_EXPIRED)
    async with db.read() as session:
        runs = (
            await session.execute(select(results.c.attempt, results.c.pid).order_by(results.c.attempt))
        ).all()
    assert [(attempt, pid) for attempt, pid in runs] == [(1, doomed.pid), (2, survivor.pid)]
    survivor.send_signal(signal.SIGTERM)
    assert await wait_exit(survivor) == 0


# --- operators: CLI and GraphQL -----------------------------------------------------------------------------


async def make_dead_job(db: Database) -> Job:
    async with db.write() as session:
        job = await enqueue(session, "mail.send", {"to": "a@example.com"})
        assert job is not None
        job.status, job.attempts, job.last_error = (
            JobStatus.DEAD,
            10,
            "Traceback ...\nSMTPError: 550 mailbox full",
        )
    return job


def run_cli(db: Database, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import argparse, sys\n"
        "from api.cli_jobs import add_worker_commands\n"
        "parser = argparse.ArgumentParser(prog='dropdesk')\n"
        "add_worker_commands(parser.add_subparsers(required=True))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args))\n"
    )
    env = {
        **os.environ,
        "DROPDESK_DATABASE_URL": db.url,
        "DROPDESK_SECRET_KEY": "t",
        "DROPDESK_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )


async def test_cli_lists_dead_jobs_with_their_error_and_requeues_them(db: Database, tmp_path: Path) -> None:
    job = await make_dead_job(db)
    listed = await asyncio.to_thread(run_cli, db, tmp_path, "jobs", "list", "--status", "dead")
    assert listed.returncode == 0, listed.stderr
    [header, line] = listed.stdout.splitlines()
    assert header.startswith("id\tstatus\tkind")
    assert line.startswith(f"{job.id}\tdead\tmail.send\t10/10\t")
    assert line.endswith("SMTPError: 550 mailbox full")

    requeued = await asyncio.to_thread(run_cli, db, tmp_path, "jobs", "requeue", str(job.id))
    assert requeued.returncode == 0, requeued.stderr
    assert (await job_by_id(db, job.id)).status is JobStatus.QUEUED
    again = await asyncio.to_thread(run_cli, db, tmp_path, "jobs", "requeue", str(job.id))
    assert again.returncode == 1
    assert "no dead job" in again.stdout


async def _admin_token(db: Database) -> str:
    async with db.write() as session:
        return issue_token(session, kind=TokenKind.ADMIN, name="ops").raw


async def test_graphql_admins_see_dead_jobs_and_requeue_them(api: Api, db: Database) -> None:
    job = await make_dead_job(db)
    admin = await _admin_token(db)
    listed = await api.data(
        admin, "{ jobs(status: DEAD) { id kind status attempts maxAttempts lastError payload } }"
    )
    gid = f"gid://dropdesk/Job/{job.id}"
    assert listed == {
        "jobs": [
            {
                "id": gid,
                "kind": "mail.send",
                "status": "DEAD",
                "attempts": 10,
                "maxAttempts": 10,
                "lastError": "Traceback ...\nSMTPError: 550 mailbox full",
                "payload": {"to": "a@example.com"},
            }
        ]
    }
    mutation = (
        "mutation($id: ID!) { jobRequeue(id: $id) { job { id status attempts } userErrors { field code } } }"
    )
    requeued = await api.data(admin, mutation, {"id": gid})
    assert requeued["jobRequeue"] == {"job": {"id": gid, "status": "QUEUED", "attempts": 0}, "userErrors": []}
    again = await api.data(admin, mutation, {"id": gid})
    assert again["jobRequeue"] == {"job": None, "userErrors": [{"field": ["id"], "code": "NOT_FOUND"}]}


async def test_graphql_refuses_non_admins(api: Api, db: Database, tenant: Tenant) -> None:
    job = await make_dead_job(db)
    listed = await api.gql(tenant.merchant_token, "{ jobs(status: DEAD) { id } }")
    assert listed["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    requeued = await api.gql(
        tenant.merchant_token,
        f'mutation {{ jobRequeue(id: "gid://dropdesk/Job/{job.id}") {{ job {{ id }} }} }}',
    )
    assert requeued["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await job_by_id(db, job.id)).status is JobStatus.DEAD
