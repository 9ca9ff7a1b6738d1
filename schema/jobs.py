"""Admin-only view of background jobs: what is queued, running or dead, and requeueing dead ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from db import jobs as job_store
from db.jobs import JobStatus
from domain.actors import Actor
from domain.errors import ErrorCode
from schema.context import context_of, forbidden
from schema.errors import UserError, input_id, user_error
from schema.ids import to_global_id

MAX_PAGE = 250

strawberry.enum(JobStatus, name="JobStatus", description="Where a job is in its life.")


@strawberry.type(name="Job", description="A unit of background work and its latest outcome.")
class JobNode:
    id: strawberry.ID
    kind: str
    status: JobStatus
    payload: JSON
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None = strawberry.field(description="Traceback of the last failed attempt.")

    @classmethod
    def of(cls, job: job_store.Job) -> JobNode:
        return cls(
            id=strawberry.ID(to_global_id("Job", job.id)),
            kind=job.kind,
            status=job.status,
            payload=job.payload,  # type: ignore[arg-type]
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            run_at=job.run_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_error=job.last_error,
        )


@strawberry.type
class JobRequeuePayload:
    job: JobNode | None
    user_errors: list[UserError]


def _require_admin(info: Info[Any, Any]) -> Actor:
    actor = context_of(info).actor
    if not actor.is_admin:
        raise forbidden("only platform admins see and requeue background jobs")
    return actor


@strawberry.type
class JobsQuery:
    @strawberry.field(description="Jobs of one status, newest first (admins only; at most 250).")
    async def jobs(
        self,
        info: Info,
        status: Annotated[JobStatus, strawberry.argument(description="Only jobs in this status.")],
        first: Annotated[int, strawberry.argument(description="At most this many jobs (up to 250).")] = 50,
    ) -> list[JobNode]:
        _require_admin(info)
        async with context_of(info).reading() as session:
            found = await job_store.list_jobs(session, status, max(0, min(first, MAX_PAGE)))
        return [JobNode.of(job) for job in found]


@strawberry.type
class JobsMutation:
    @strawberry.mutation(description="Give a dead job a fresh set of attempts, due now (admins only).")
    async def job_requeue(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The dead job's id (gid://dropdesk/Job/…).")
        ],
    ) -> JobRequeuePayload:
        _require_admin(info)
        job_id, id_errors = input_id(id, "Job", "id")
        if job_id is None:
            return JobRequeuePayload(job=None, user_errors=id_errors)
        job = None
        if job_id is not None:
            async with context_of(info).database.write() as session:
                job = await job_store.requeue_job(session, job_id)
        if job is None:
            return JobRequeuePayload(
                job=None, user_errors=user_error(ErrorCode.NOT_FOUND, "no dead job with that id", "id")
            )
        return JobRequeuePayload(job=JobNode.of(job), user_errors=[])
