"""The worker: claims due jobs, runs their handlers, retries with backoff, and keeps leases alive.

It runs inside the server by default (``start_worker_task``) and as separate ``dropdesk worker`` processes at
scale. Delivery is at least once: a job whose worker dies runs again after its lease expires, so handlers
must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import traceback
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

# Subdomains register their job handlers and reactions when imported.
import api.outbound_webhooks  # noqa: F401  (sends webhook deliveries: needs the schema to render them)
import domain.subdomains  # noqa: F401
from config.settings import Settings
from db.engine import Database
from db.jobs import (
    ERROR_TEXT_LIMIT,
    NOTIFY_CHANNEL,
    REGISTRY,
    Job,
    JobContext,
    JobStatus,
    Registry,
    add_wake_listener,
    enqueue_due_schedules,
    slot_start,
)
from db.types import utcnow

log = logging.getLogger("dropdesk.worker")

LEASE_EXPIRED = "lease expired: the worker running this job stopped without finishing it"


def retry_delay(
    attempts: int, *, base: timedelta, cap: timedelta, rand: Callable[[], float] = random.random
) -> timedelta:
    """Exponential backoff with jitter: spreads retries of jobs that failed together (an outage) apart."""
    exponential = min(cap, base * (2 ** max(attempts - 1, 0)))
    return exponential * (0.5 + rand() / 2)


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    # The end of a traceback (the exception and the innermost frames) is the part worth keeping.
    return text[-ERROR_TEXT_LIMIT:]


class Worker:
    """One worker process's job loop with ``concurrency`` jobs in flight at most.

    Wake-ups come from LISTEN/NOTIFY on PostgreSQL, from in-process commits on both databases, from finished
    jobs, and from polling every ``poll_interval`` seconds as the fallback (and for jobs due later).
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        concurrency: int = 4,
        lease: timedelta = timedelta(seconds=30),
        poll_interval: float | None = None,
        grace: float = 30.0,
        backoff_base: timedelta = timedelta(seconds=5),
        backoff_cap: timedelta = timedelta(hours=1),
        registry: Registry = REGISTRY,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.database = database
        self.settings = settings
        self.concurrency = concurrency
        self.lease = lease
        # Without NOTIFY, a worker in another process only learns of new jobs by polling.
        self.poll_interval = (
            poll_interval if poll_interval is not None else (1.0 if database.is_sqlite else 5.0)
        )
        self.grace = grace
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.registry = registry
        self.clock = clock
        self.rand = rand
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.context = JobContext(database=database, settings=settings, worker_name=self.name, clock=clock)
        self._running: dict[int, tuple[Job, asyncio.Task[None]]] = {}
        # Finished attempts waiting to be written by the next claim.
        self._outcomes: list[tuple[Job, dict[str, Any]]] = []
        # Kept referenced on purpose: an unreferenced asyncpg connection is garbage-collected and its
        # notifications stop without an error.
        self._listener: Any = None
        self._next_reap: datetime | None = None
        self._next_schedules: datetime | None = None

    # --- the loop -----------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until ``stop`` is set, then shut down gracefully (see ``_shutdown``)."""
        nudge = asyncio.Event()
        remove_wake_listener = add_wake_listener(nudge)
        relay = asyncio.create_task(self._relay_stop(stop, nudge))
        heartbeat = asyncio.create_task(self._heartbeat())
        log.info("worker %s started (concurrency %d)", self.name, self.concurrency)
        try:
            while not stop.is_set():
                nudge.clear()
                await self._ensure_listener(nudge)
                await self._run_schedules()
                free = self.concurrency - len(self._running)
                if free > 0 or self._outcomes:
                    for job in await self._sync_safely(max(free, 0)):
                        self._start(job, nudge)
                with suppress(TimeoutError):
                    await asyncio.wait_for(nudge.wait(), timeout=self.poll_interval)
        finally:
            await self._shutdown()
            heartbeat.cancel()
            relay.cancel()
            await asyncio.gather(heartbeat, relay, return_exceptions=True)
            remove_wake_listener()
            await self._close_listener()
            log.info("worker %s stopped", self.name)

    async def drain(self) -> int:
        """Run due jobs until none is left, without waiting for more; returns how many attempts ran.

        For one-shot runs (tests, maintenance) where a loop with leases and polling is not wanted.
        """
        ran = 0
        while jobs := await self.claim(self.concurrency):
            await asyncio.gather(*(self.execute(job) for job in jobs))
            ran += len(jobs)
        return ran

    @staticmethod
    async def _relay_stop(stop: asyncio.Event, nudge: asyncio.Event) -> None:
        await stop.wait()
        nudge.set()

    def _start(self, job: Job, nudge: asyncio.Event) -> None:
        task = asyncio.create_task(self.execute(job), name=f"job-{job.id}")
        self._running[job.id] = (job, task)

        def finished(_: asyncio.Task[None]) -> None:
            self._running.pop(job.id, None)
            nudge.set()  # record the outcome and claim the next job now rather than at the next poll

        task.add_done_callback(finished)

    async def _shutdown(self) -> None:
        """Let running jobs finish within the grace period, then cancel the rest and put them back in the queue."""
        running = dict(self._running)
        pending: set[asyncio.Task[None]] = set()
        if running:
            log.info("waiting up to %.1fs for %d running jobs", self.grace, len(running))
            _, pending = await asyncio.wait([task for _, task in running.values()], timeout=self.grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        unfinished = [job for job, task in running.values() if task in pending]
        try:
            await self.claim(0)  # records the outcomes of the jobs that did finish
            if unfinished:
                await self._release(unfinished)
        except Exception:
            log.exception("recording outcomes on shutdown failed; the leases will expire and the jobs rerun")

    # --- claiming and recording ---------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Job]:
        """In one write transaction: record finished attempts, sweep expired leases, claim up to ``limit`` jobs.

        Recording and claiming together halves the transactions per job. PostgreSQL: ``FOR UPDATE SKIP
        LOCKED`` lets concurrent workers take disjoint rows without waiting. SQLite: the write transaction
        (BEGIN IMMEDIATE) serialises claims. Expired leases are swept at most once per poll interval.
        """
        now = self.clock()
        outcomes, self._outcomes = self._outcomes, []
        try:
            async with self.database.write() as session:
                for job, values in outcomes:
                    result = await session.execute(
                        update(Job).where(*self._mine(job)).values(**values),
                        execution_options={"synchronize_session": False},
                    )
                    if getattr(result, "rowcount", 1) == 0:
                        log.warning("job %d was no longer leased to %s when it finished", job.id, self.name)
                if self._next_reap is None or now >= self._next_reap:
                    await self._reap_expired(session, now)
                    self._next_reap = now + timedelta(seconds=self.poll_interval)
                jobs = await self._claim_due(session, now, limit) if limit > 0 else []
        except BaseException:
            self._outcomes[:0] = outcomes  # not recorded: try again with the next claim
            raise
        return jobs

    async def _claim_due(self, session: Any, now: datetime, limit: int) -> list[Job]:
        due = (
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED, Job.run_at <= now)
            .order_by(Job.run_at, Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(Job)
            .where(Job.id.in_(due))
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                locked_by=self.name,
                lease_until=now + self.lease,
                started_at=now,
            )
            .returning(Job)
        )
        result = await session.scalars(statement, execution_options={"synchronize_session": False})
        return sorted(result.all(), key=lambda job: (job.run_at, job.id))

    async def _sync_safely(self, limit: int) -> list[Job]:
        try:
            return await self.claim(limit)
        except Exception:
            # The database may be restarting: keep the worker alive and try again at the next poll.
            log.exception("claiming jobs failed")
            return []

    async def _reap_expired(self, session: Any, now: datetime) -> None:
        """Jobs whose lease ran out lost their worker: retry them, or bury them if that was the last attempt."""
        expired = (Job.status == JobStatus.RUNNING, Job.lease_until < now)
        gone = dict(locked_by=None, lease_until=None, last_error=LEASE_EXPIRED)
        await session.execute(
            update(Job)
            .where(*expired, Job.attempts >= Job.max_attempts)
            .values(status=JobStatus.DEAD, finished_at=now, **gone),
            execution_options={"synchronize_session": False},
        )
        await session.execute(
            update(Job).where(*expired).values(status=JobStatus.QUEUED, run_at=now, **gone),
            execution_options={"synchronize_session": False},
        )

    # --- running one job ----------------------------------------------------------------------------------

    async def execute(self, job: Job) -> None:
        """Run a claimed job's handler; its outcome is written by the next ``claim`` of this worker."""
        fn = self.registry.handlers.get(job.kind)
        try:
            if fn is None:
                # Retried rather than buried: during a rolling deploy, a newer worker may know the kind.
                raise LookupError(f"no handler registered for job kind {job.kind!r}")
            await fn(self.context, job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("job %d (%s) attempt %d failed: %s", job.id, job.kind, job.attempts, exc)
            self._outcomes.append((job, self._outcome(job, _error_text(exc))))
        else:
            self._outcomes.append((job, self._outcome(job, None)))

    def _mine(self, job: Job) -> tuple[Any, ...]:
        """The attempt this worker claimed: no other worker's (or later) attempt is touched."""
        return (
            Job.id == job.id,
            Job.status == JobStatus.RUNNING,
            Job.locked_by == self.name,
            Job.attempts == job.attempts,
        )

    def _outcome(self, job: Job, failure: str | None) -> dict[str, Any]:
        now = self.clock()
        released: dict[str, Any] = {"locked_by": None, "lease_until": None}
        if failure is None:
            return {"status": JobStatus.DONE, "finished_at": now, **released}
        if job.attempts >= job.max_attempts:
            return {"status": JobStatus.DEAD, "finished_at": now, "last_error": failure, **released}
        delay = retry_delay(job.attempts, base=self.backoff_base, cap=self.backoff_cap, rand=self.rand)
        return {"status": JobStatus.QUEUED, "run_at": now + delay, "last_error": failure, **released}

    async def _release(self, jobs: list[Job]) -> None:
        """Put interrupted jobs back in the queue; the interrupted attempt does not count against them."""
        async with self.database.write() as session:
            for job in jobs:
                await session.execute(
                    update(Job)
                    .where(*self._mine(job))
                    .values(
                        status=JobStatus.QUEUED,
                        attempts=Job.attempts - 1,
                        run_at=self.clock(),
                        locked_by=None,
                        lease_until=None,
                    ),
                    execution_options={"synchronize_session": False},
                )
        log.info("released %d unfinished jobs back to the queue", len(jobs))

    # --- leases, schedules, notifications -----------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Extend the lease of running jobs well before it ends, so that a long job is not taken from us."""
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            ids = [*self._running, *(job.id for job, _ in self._outcomes)]
            if not ids:
                continue
            try:
                async with self.database.write() as session:
                    await session.execute(
                        update(Job)
                        .where(Job.id.in_(ids), Job.status == JobStatus.RUNNING, Job.locked_by == self.name)
                        .values(lease_until=self.clock() + self.lease),
                        execution_options={"synchronize_session": False},
                    )
            except Exception:
                log.exception("renewing leases failed")

    async def _run_schedules(self) -> None:
        schedules = list(self.registry.schedules.values())
        now = self.clock()
        if not schedules or (self._next_schedules is not None and now < self._next_schedules):
            return
        try:
            for job in await enqueue_due_schedules(self.database, schedules, now):
                log.info("scheduled job %d (%s)", job.id, job.kind)
        except Exception:
            log.exception("enqueueing scheduled jobs failed")
            return
        self._next_schedules = min(slot_start(now, s.every) + s.every for s in schedules)

    async def _ensure_listener(self, nudge: asyncio.Event) -> None:
        """LISTEN on PostgreSQL on a dedicated connection; reconnect at the next loop if it was lost."""
        if self.database.dialect != "postgresql":
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        url = make_url(self.database.url).set(drivername="postgresql")
        try:
            connection = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=10)
            await connection.add_listener(NOTIFY_CHANNEL, lambda *_: nudge.set())
        except Exception:
            log.exception("LISTEN failed; polling every %.1fs until it works", self.poll_interval)
            return
        self._listener = connection
        nudge.set()  # jobs may have been committed while we were not listening

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with suppress(Exception):
                await self._listener.close()
            self._listener = None


async def run_worker(
    database: Database,
    settings: Settings,
    *,
    stop: asyncio.Event,
    concurrency: int = 4,
    lease: timedelta = timedelta(seconds=30),
    poll_interval: float | None = None,
    grace: float = 30.0,
    registry: Registry = REGISTRY,
) -> None:
    """Run a worker until ``stop`` is set; running jobs get ``grace`` seconds to finish, then go back."""
    worker = Worker(
        database,
        settings,
        concurrency=concurrency,
        lease=lease,
        poll_interval=poll_interval,
        grace=grace,
        registry=registry,
    )
    await worker.run(stop)


def start_worker_task(
    database: Database, settings: Settings, *, concurrency: int = 2, grace: float = 10.0
) -> tuple[asyncio.Task[None], asyncio.Event]:
    """Start a worker in the current event loop (the server's lifespan); set the event, then await the task."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(database, settings, stop=stop, concurrency=concurrency, grace=grace),
        name="dropdesk-worker",
    )
    return task, stop


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask the worker to stop claiming and finish what it runs."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
