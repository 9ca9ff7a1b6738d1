"""Admin-only GraphQL view of background jobs: what is queued, running or dead, and requeueing dead ones.

Expects ``info.context.actor`` (a ``domain.actors.Actor``) and ``info.context.database`` (a ``db.engine.Database``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from db import jobs as job_store
from db.jobs import JobStatus
from domain.actors import Actor

MAX_PAGE = 250

# Exposes the stored enum as is, so that the API and the table cannot drift apart.
strawberry.enum(JobStatus, name="JobStatus", description="Where a job is in its life.")


@strawberry.type(name="Job", description="A unit of background work and its latest outcome.")
class JobNode:
    id: strawberry.ID
    kind: str
    status: JobStatus
    shop_id: int | None
    payload: JSON
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None = strawberry.field(description="Traceback of the last failed attempt.")

    @classmethod
    def from_model(cls, job: job_store.Job) -> JobNode:
        return cls(
            id=strawberry.ID(str(job.id)),
            kind=job.kind,
            status=job.status,
            shop_id=job.shop_id,
            payload=cast(JSON, job.payload),
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            run_at=job.run_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_error=job.last_error,
        )


def _require_admin(info: strawberry.Info[Any, Any]) -> None:
    actor: Actor | None = getattr(info.context, "actor", None)
    if actor is None or not actor.is_admin:
        raise GraphQLError(
            "Only administrators can see and requeue background jobs.", extensions={"code": "FORBIDDEN"}
        )


@strawberry.type
class JobsQuery:
    @strawberry.field(description="Jobs of one status, newest first (at most 250).")
    async def jobs(
        self, info: strawberry.Info[Any, Any], status: JobStatus, first: int = 50
    ) -> list[JobNode]:
        _require_admin(info)
        async with info.context.database.read() as session:
            found = await job_store.list_jobs(session, status, max(0, min(first, MAX_PAGE)))
        return [JobNode.from_model(job) for job in found]


@strawberry.type
class JobsMutation:
    @strawberry.mutation(description="Give a dead job a fresh set of attempts, due now.")
    async def job_requeue(self, info: strawberry.Info[Any, Any], id: strawberry.ID) -> JobNode:
        _require_admin(info)
        try:
            job_id = int(id)
        except ValueError:
            raise GraphQLError(f"Invalid job id {id!r}.", extensions={"code": "INVALID"}) from None
        async with info.context.database.write() as session:
            job = await job_store.requeue_job(session, job_id)
        if job is None:
            raise GraphQLError(f"No dead job with id {id}.", extensions={"code": "NOT_FOUND"})
        return JobNode.from_model(job)
