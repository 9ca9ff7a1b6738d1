"""What every HTTP request passes through first: its request id, one JSON access-log line, the metrics, and
the guarantee that any error answer is JSON carrying ``X-Request-Id`` (a crash included).

The log line and the metrics read what the GraphQL endpoint left on the request's ASGI scope state: the
actor (its token's name, never the token), the operation and the codes of the errors answered.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.edge import error_response, json_errors_from_text
from config.logs import request_id_var
from config.metrics import (
    ERRORS,
    JOB_OLDEST_DUE_AGE,
    JOB_QUEUE_DEPTH,
    LATENCY,
    REGISTRY,
    REQUESTS,
    operation_label,
)
from db.engine import Database
from db.jobs import Job, JobStatus

log = logging.getLogger("dropdesk.http")
access_log = logging.getLogger("dropdesk.access")

GRAPHQL_PATH = "/graphql"


class EdgeMiddleware:
    """Gives every request an id (or keeps the caller's X-Request-Id) for logs and masked errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given and len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        response: dict[str, Any] = {"status": None, "plain_error": None}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                response["status"] = status
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                content_type = dict(headers).get(b"content-type", b"")
                if status >= 400 and (content_type.startswith(b"text/plain") or not content_type):
                    # Routing refusals (404, 405) come as plain text: answered as JSON like every error.
                    response["plain_error"] = {"status": status, "headers": headers, "chunks": []}
                    return
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and response["plain_error"] is not None:
                pending = response["plain_error"]
                pending["chunks"].append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = json_errors_from_text(
                    pending["status"], b"".join(pending["chunks"]).decode("utf-8", "replace")
                )
                kept = [
                    (k, v)
                    for k, v in pending["headers"]
                    if k.lower() not in (b"content-type", b"content-length")
                ]
                kept += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                state.setdefault("error_code", "BAD_REQUEST" if pending["status"] != 404 else "NOT_FOUND")
                await send({"type": "http.response.start", "status": pending["status"], "headers": kept})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error answering %s", scope.get("path"))
            state["error_code"] = "INTERNAL_SERVER_ERROR"
            if response["status"] is None and scope["type"] == "http":
                crash = error_response(
                    500, "INTERNAL_SERVER_ERROR", f"Internal server error (request id {request_id})"
                )
                await crash(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                self._record(scope, state, response["status"], time.perf_counter() - started)
            request_id_var.reset(token)

    @staticmethod
    def _record(scope: Scope, state: dict[str, Any], status: int | None, duration: float) -> None:
        path = scope.get("path", "")
        actor = state.get("actor")
        outcome = state.get("graphql_outcome")
        operation = getattr(outcome, "operation_name", None)
        codes = list(getattr(outcome, "error_codes", None) or [])
        if state.get("error_code"):
            codes.append(state["error_code"])
        for code in codes:
            ERRORS.labels(code=code).inc()
        if path == GRAPHQL_PATH and scope.get("method") == "POST":
            label = operation_label(operation)
            REQUESTS.labels(operation=label, status=str(status or 500)).inc()
            LATENCY.labels(operation=label).observe(duration)
        access_log.info(
            "%s %s %s",
            scope.get("method"),
            path,
            status,
            extra={
                "http": {
                    "method": scope.get("method"),
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "operation": operation,
                    "operation_type": getattr(outcome, "operation_type", None),
                    "token_name": getattr(actor, "name", None),
                    "errors": codes or None,
                }
            },
        )


async def observe_job_queue(database: Database) -> None:
    """Refresh the job-queue gauges from the job table (run at scrape time)."""
    now = datetime.now(UTC)
    async with database.read() as session:
        counts = dict(
            (
                await session.execute(
                    select(Job.status, func.count())
                    .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DEAD]))
                    .group_by(Job.status)
                )
            ).all()
        )
        oldest_due = await session.scalar(
            select(func.min(Job.run_at)).where(Job.status == JobStatus.QUEUED, Job.run_at <= now)
        )
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DEAD):
        JOB_QUEUE_DEPTH.labels(status=status.value).set(counts.get(status, 0))
    if oldest_due is not None and oldest_due.tzinfo is None:
        oldest_due = oldest_due.replace(tzinfo=UTC)
    JOB_OLDEST_DUE_AGE.set(max((now - oldest_due).total_seconds(), 0.0) if oldest_due else 0.0)


def metrics_endpoint(database: Database) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def metrics(request: Request) -> Response:
        try:
            await observe_job_queue(database)
        except Exception:  # a scrape still answers with what it has
            log.warning("could not read the job queue for /metrics", exc_info=True)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return metrics
