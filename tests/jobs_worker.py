"""A worker process for the job tests (``python -m tests.jobs_worker``).

Its handlers write one ``job_results`` row per run, so that a test can count runs per job across processes.
It reads the database URL from DROPDESK_DATABASE_URL like the real worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import timedelta

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, insert

from api.worker import install_signal_handlers, run_worker
from config.settings import load_settings
from db.engine import Database
from db.jobs import Job, JobContext, Registry

results = Table(
    "job_results",
    MetaData(),
    Column("job_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("pid", Integer, nullable=False),
)

registry = Registry()


@registry.handler("test.record")
async def record(ctx: JobContext, job: Job) -> None:
    async with ctx.database.write() as session:
        await session.execute(insert(results).values(job_id=job.id, attempt=job.attempts, pid=os.getpid()))


@registry.handler("test.hang_first")
async def hang_first(ctx: JobContext, job: Job) -> None:
    """Records its start, then hangs on the first attempt so that the test can kill the process mid-job."""
    await record(ctx, job)
    if job.attempts == 1:
        await asyncio.sleep(3600)


async def main(args: argparse.Namespace) -> None:
    settings = load_settings()
    database = Database(settings.database_url)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await run_worker(
            database,
            settings,
            stop=stop,
            concurrency=args.concurrency,
            lease=timedelta(seconds=args.lease),
            poll_interval=args.poll_interval,
            grace=args.grace,
            registry=registry,
        )
    finally:
        await database.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument("--grace", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
