"""The ``worker`` and ``jobs`` subcommands: run a worker process, and let operators inspect and requeue jobs."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import timedelta

from api.cli_support import run_with_database
from api.runtime import tune_gc
from api.worker import install_signal_handlers, run_worker
from config.settings import Settings
from db.engine import Database
from db.jobs import Job, JobStatus, list_jobs, requeue_job


def add_worker_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``worker`` and ``jobs list|requeue`` on the main command's subparsers."""
    worker = subparsers.add_parser("worker", help="run a background worker process until SIGTERM or SIGINT")
    worker.add_argument("--concurrency", type=int, default=4, help="jobs run at once (default 4)")
    worker.add_argument(
        "--lease", type=float, default=30.0, help="lease in seconds, renewed while a job runs"
    )
    worker.add_argument("--poll-interval", type=float, default=None, help="seconds between polls")
    worker.add_argument(
        "--grace", type=float, default=30.0, help="seconds running jobs get to finish on stop"
    )
    worker.set_defaults(func=_worker)

    jobs = subparsers.add_parser("jobs", help="inspect and requeue background jobs")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = actions.add_parser("list", help="list jobs, newest first, with their last error")
    listing.add_argument("--status", type=_status, default=None, help="queued, running, done or dead")
    listing.add_argument("--limit", type=int, default=50, help="most jobs shown (default 50)")
    listing.set_defaults(func=_list)
    requeue = actions.add_parser("requeue", help="give a dead job a fresh set of attempts")
    requeue.add_argument("id", type=int, help="the job's number, as `jobs list` shows it")
    requeue.set_defaults(func=_requeue)


def _status(value: str) -> JobStatus:
    try:
        return JobStatus(value.upper())
    except ValueError:
        choices = ", ".join(status.value.lower() for status in JobStatus)
        raise argparse.ArgumentTypeError(f"invalid status {value!r} (choose from {choices})") from None


def _worker(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        stop = asyncio.Event()
        install_signal_handlers(stop)
        tune_gc()
        await run_worker(
            database,
            settings,
            stop=stop,
            concurrency=args.concurrency,
            lease=timedelta(seconds=args.lease),
            poll_interval=args.poll_interval,
            grace=args.grace,
        )
        return 0

    return run_with_database(main)


def _format(job: Job) -> str:
    error = (job.last_error or "").strip().splitlines()
    return "\t".join(
        [
            str(job.id),
            job.status.value.lower(),
            job.kind,
            f"{job.attempts}/{job.max_attempts}",
            job.run_at.isoformat(timespec="seconds"),
            "-" if job.shop_id is None else str(job.shop_id),
            error[-1] if error else "",
        ]
    )


def _list(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        async with database.read() as session:
            jobs = await list_jobs(session, args.status, args.limit)
        print("id\tstatus\tkind\tattempts\trun_at\tshop\tlast_error")
        for job in jobs:
            print(_format(job))
        return 0

    return run_with_database(main)


def _requeue(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        async with database.write() as session:
            job = await requeue_job(session, args.id)
        if job is None:
            print(f"no dead job with id {args.id}")
            return 1
        print(f"job {job.id} ({job.kind}) queued again")
        return 0

    return run_with_database(main)
