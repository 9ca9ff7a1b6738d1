"""``Idempotency-Key`` on GraphQL mutations over HTTP: the first answer is kept and replayed (see
``domain.idempotency`` for how the database decides which of two twins runs)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.edge import CapturedResponse, GraphQLPayload, Refused, capture, send_captured
from config.logs import request_id_var
from config.settings import Settings
from db.engine import Database
from domain import idempotency
from domain.actors import Actor

log = logging.getLogger("dropdesk.idempotency")

HEADER = "idempotency-key"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")
# How long a retry waits for its twin's answer before it is told to come back.
WAIT_FOR_TWIN_SECONDS = 30.0
POLL_SECONDS = 0.05


def is_mutation(payload: GraphQLPayload, settings: Settings) -> bool:
    """Whether the operation to run is a mutation; a document that does not parse is left to GraphQL."""
    try:
        document = parse(payload.query, no_location=True, max_tokens=settings.max_query_tokens)
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        d
        for d in operations
        if payload.operation_name is None or (d.name is not None and d.name.value == payload.operation_name)
    ]
    return len(chosen) >= 1 and chosen[0].operation is OperationType.MUTATION


def canonical_multipart(body: bytes, content_type: str) -> bytes:
    """A multipart body with its boundary replaced: a retry may pick another boundary for the same parts."""
    boundary = ""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    return body.replace(boundary.encode("latin-1"), b"BOUNDARY") if boundary else body


def checked_key(raw: str) -> str:
    key = raw.strip()
    if not key or len(key) > idempotency.MAX_KEY_LENGTH or not key.isprintable():
        raise Refused(
            400,
            "BAD_REQUEST",
            f"Idempotency-Key must be 1 to {idempotency.MAX_KEY_LENGTH} printable characters",
        )
    return key


def _crash_answer() -> CapturedResponse:
    request_id = request_id_var.get()
    body = {
        "errors": [
            {
                "message": f"Internal server error (request id {request_id})",
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
        ]
    }
    return CapturedResponse(500, [(b"content-type", b"application/json")], json.dumps(body).encode())


async def run_once(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    database: Database,
    settings: Settings,
    actor: Actor,
    key: str,
    canonical_request: bytes,
) -> None:
    """Run the request unless its key has an answer already; then send that answer."""
    digest = idempotency.request_hash(canonical_request)
    deadline = time.monotonic() + WAIT_FOR_TWIN_SECONDS
    assert actor.token_id is not None
    while True:
        claim = await idempotency.claim(
            database,
            token_id=actor.token_id,
            shop_id=actor.shop_id,
            key=key,
            request_digest=digest,
            ttl=timedelta(hours=settings.idempotency_key_hours),
        )
        if isinstance(claim, idempotency.Claimed):
            try:
                answer = await capture(app, scope, receive)
            except Exception:
                log.exception("unexpected error running an idempotent request")
                answer = _crash_answer()
            content_type = dict(answer.headers).get(b"content-type", b"application/json").decode("latin-1")
            await idempotency.finish(
                database, claim.row_id, status_code=answer.status, content_type=content_type, body=answer.body
            )
            await send_captured(answer, send, [])
            return
        if isinstance(claim, idempotency.Answered):
            headers = [
                (b"content-type", (claim.content_type or "application/json").encode("latin-1")),
                (b"content-length", str(len(claim.body)).encode()),
                REPLAYED_HEADER,
            ]
            await send_captured(CapturedResponse(claim.status_code, [], claim.body), send, headers)
            return
        if isinstance(claim, idempotency.Mismatch):
            raise Refused(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used with another request; use a new key for a new request",
            )
        if time.monotonic() > deadline:
            raise Refused(
                409,
                "IDEMPOTENCY_KEY_IN_USE",
                "a request with this Idempotency-Key is still running; retry later",
            )
        await asyncio.sleep(POLL_SECONDS)
