"""Job queue benchmark: commit-to-start latency and throughput, 1 and 3 worker processes, SQLite and PostgreSQL.

Run from the repository root: ``.venv/bin/python -m bench.jobs``. PostgreSQL is measured when
BENCH_POSTGRES_URL (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/dropdesk_bench``) is reachable; its
schema is migrated to head and only ``bench.*`` jobs are deleted. Ratios are against one SQLite worker
process measured in the same run. Handlers do nothing, so the figures are the queue's own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import BigInteger, Column, MetaData, Table, delete, event, func, insert, select
from sqlalchemy.orm import Session

from api.worker import Worker, install_signal_handlers
from config.settings import Settings, load_settings
from db.engine import Database
from db.jobs import Job, JobContext, JobStatus, Registry, enqueue
from db.migrate import upgrade
from db.types import UTCDateTime, utcnow

ROOT = Path(__file__).resolve().parent.parent
KIND = "bench.noop"
STAMP_KIND = "bench.stamp"
CONCURRENCY = 4

# When each latency job's handler started, as seen by the handler itself.
starts = Table(
    "bench_job_starts",
    MetaData(),
    Column("job_id", BigInteger, primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
)

registry = Registry()


@registry.handler(KIND)
async def noop(ctx: JobContext, job: Job) -> None:
    return None


@registry.handler(STAMP_KIND)
async def stamp(ctx: JobContext, job: Job) -> None:
    started = utcnow()
    async with ctx.database.write() as session:
        await session.execute(insert(starts).values(job_id=job.id, started_at=started))


@dataclass
class Result:
    database: str
    workers: str
    latency_median_ms: float
    latency_p99_ms: float
    jobs_per_second: float


# --- worker processes ---------------------------------------------------------------------------------------


async def worker_process(concurrency: int) -> None:
    settings = load_settings()
    database = Database(settings.database_url)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    worker = Worker(database, settings, concurrency=concurrency, registry=registry)
    print("ready", flush=True)
    try:
        await worker.run(stop)
    finally:
        await database.dispose()


def spawn_workers(url: str, count: int, data_dir: Path) -> list[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "DROPDESK_DATABASE_URL": url,
        "DROPDESK_SECRET_KEY": "bench",
        "DROPDESK_DATA_DIR": str(data_dir),
    }
    command = [sys.executable, "-m", "bench.jobs", "--worker", "--concurrency", str(CONCURRENCY)]
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker process failed to start")
    return processes


def stop_workers(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


# --- measurements -------------------------------------------------------------------------------------------


async def wait_done(database: Database, kind: str, ids: list[int], timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with database.read() as session:
            done = await session.scalar(
                select(func.count()).where(Job.kind == kind, Job.status == JobStatus.DONE, Job.id.in_(ids))
            )
        if done == len(ids):
            return
        if loop.time() > deadline:
            raise RuntimeError(f"only {done} of {len(ids)} jobs finished within {timeout}s")
        await asyncio.sleep(0.05)


async def measure_latency(database: Database, samples: int, spacing: float) -> tuple[float, float]:
    """Commit jobs one at a time into an idle queue; latency runs from the commit to the handler's start."""
    committed: dict[int, datetime] = {}
    for _ in range(samples):
        async with database.write() as session:
            job = await enqueue(session, STAMP_KIND)
            assert job is not None
            job_id = job.id

            def at_commit(_: Session, job_id: int = job_id) -> None:
                committed[job_id] = utcnow()

            event.listen(session.sync_session, "after_commit", at_commit, once=True)
        await asyncio.sleep(spacing)
    await wait_done(database, STAMP_KIND, list(committed))
    async with database.read() as session:
        rows = (await session.execute(select(starts.c.job_id, starts.c.started_at))).all()
    latencies = sorted((started - committed[job_id]).total_seconds() * 1000 for job_id, started in rows)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return statistics.median(latencies), p99


async def measure_throughput(database: Database, count: int) -> float:
    """Commit ``count`` jobs at once and time until the last one finishes."""
    async with database.write() as session:
        ids = [job.id for job in [await enqueue(session, KIND) for _ in range(count)] if job is not None]
    start = utcnow()
    await wait_done(database, KIND, ids)
    async with database.read() as session:
        last = await session.scalar(select(func.max(Job.finished_at)).where(Job.id.in_(ids)))
    assert last is not None
    return count / (last - start).total_seconds()


async def run_config(
    database: Database, label: str, workers: int, in_server: bool, args: argparse.Namespace, data_dir: Path
) -> Result:
    async with database.write() as session:
        await session.execute(delete(Job).where(Job.kind.like("bench.%")))
        await session.execute(delete(starts))
    processes: list[subprocess.Popen[str]] = []
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    if in_server:
        settings = Settings(
            database_url=database.url, secret_key="bench", public_url="", smtp_url="", data_dir=data_dir
        )
        worker = Worker(database, settings, concurrency=CONCURRENCY, registry=registry)
        task = asyncio.create_task(worker.run(stop))
    else:
        processes = await asyncio.to_thread(spawn_workers, database.url, workers, data_dir)
    try:
        await asyncio.sleep(0.5)  # let the workers finish their first claim and go idle
        median, p99 = await measure_latency(database, args.latency_jobs, args.spacing)
        rate = await measure_throughput(database, args.throughput_jobs)
    finally:
        stop.set()
        if task is not None:
            await task
        await asyncio.to_thread(stop_workers, processes)
    kind = "in-server task" if in_server else ("process" if workers == 1 else "processes")
    return Result(label, f"{workers} {kind}", median, p99, rate)


async def prepare(database: Database) -> None:
    await upgrade(database.engine)
    async with database.engine.begin() as connection:
        await connection.run_sync(starts.create, checkfirst=True)


async def reachable(database: Database) -> bool:
    try:
        async with asyncio.timeout(3):
            async with database.engine.connect():
                return True
    except Exception:
        return False


def print_table(results: list[Result]) -> None:
    baseline = next(r for r in results if r.database == "sqlite" and r.workers == "1 process")
    header = f"{'database':<11}{'workers':<17}{'latency p50':>12}{'p99':>10}{'x p50':>8}{'jobs/s':>10}{'x jobs/s':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.database:<11}{r.workers:<17}{r.latency_median_ms:>10.1f}ms{r.latency_p99_ms:>8.1f}ms"
            f"{r.latency_median_ms / baseline.latency_median_ms:>8.3f}{r.jobs_per_second:>10.0f}"
            f"{r.jobs_per_second / baseline.jobs_per_second:>10.2f}"
        )
    print(
        f"baseline: sqlite, 1 worker process; each worker runs {CONCURRENCY} jobs at once; handlers do nothing"
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (the figures move with whatever else runs)")


async def bench(args: argparse.Namespace) -> None:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        sqlite = Database(f"sqlite+aiosqlite:///{data_dir / 'bench.sqlite3'}")
        await prepare(sqlite)
        for workers, in_server in [(1, True), (1, False), (3, False)]:
            results.append(await run_config(sqlite, "sqlite", workers, in_server, args, data_dir))
        await sqlite.dispose()

        postgres = Database(args.postgres_url)
        if await reachable(postgres):
            await prepare(postgres)
            for workers in (1, 3):
                results.append(await run_config(postgres, "postgresql", workers, False, args, data_dir))
        else:
            print(f"PostgreSQL not reachable at {args.postgres_url}: skipped", file=sys.stderr)
        await postgres.dispose()
    print_table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/dropdesk_bench"
        ),
    )
    parser.add_argument("--latency-jobs", type=int, default=150)
    parser.add_argument("--spacing", type=float, default=0.01, help="seconds between latency samples")
    parser.add_argument("--throughput-jobs", type=int, default=1000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_process(args.concurrency))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
