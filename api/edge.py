"""The HTTP edge of ``/graphql``: what a request may send, checked before strawberry parses anything.

Bodies are read with a cap (1 MB by default, a larger one for multipart uploads) and refused while reading
once past it; a JSON body must be UTF-8, an object, not nested past a depth, with a string ``query``. Every
refusal is JSON shaped like a GraphQL error (``{"errors": [{"message", "extensions": {"code"}}]}``), and the
answer's media type follows the client's ``Accept`` (``application/graphql-response+json`` or JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from config.logs import request_id_var
from config.settings import Settings
from domain.text import find_unstorable, json_depth_exceeds
from schema.extensions import THROTTLED, Outcome

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON_MEDIA = "application/json"


def error_response(
    status: int, code: str, message: str, *, media_type: str = JSON_MEDIA, **extensions: Any
) -> JSONResponse:
    request_id = request_id_var.get()
    body = {
        "errors": [{"message": message, "extensions": {"code": code, **extensions, "requestId": request_id}}]
    }
    return JSONResponse(body, status_code=status, media_type=media_type)


class Refused(Exception):
    """A request refused at the edge, answered with ``response()``."""

    def __init__(self, status: int, code: str, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extensions = extensions

    def response(self, media_type: str = JSON_MEDIA) -> JSONResponse:
        return error_response(self.status, self.code, self.message, media_type=media_type, **self.extensions)


# --- content negotiation ------------------------------------------------------------------------------


def _accepted(accept: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if not media:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media.lower()] = max(weight, weights.get(media.lower(), 0.0))
    return weights


def response_media_type(accept: str | None) -> str | None:
    """The media type to answer with, or None when the client accepts neither JSON kind."""
    if not accept or not accept.strip():
        return JSON_MEDIA
    weights = _accepted(accept)
    graphql_weight = weights.get(GRAPHQL_RESPONSE_JSON, 0.0)
    json_weight = max(weights.get(JSON_MEDIA, 0.0), weights.get("application/*", 0.0))
    any_weight = weights.get("*/*", 0.0)
    if graphql_weight > 0 and graphql_weight >= json_weight:
        return GRAPHQL_RESPONSE_JSON
    if json_weight > 0 or any_weight > 0:
        return JSON_MEDIA
    return None


# --- reading the body ---------------------------------------------------------------------------------


def is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def body_limit(settings: Settings, content_type: str) -> int:
    return settings.max_upload_body_bytes if is_multipart(content_type) else settings.max_body_bytes


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to pass ``limit``, before it is all read."""
    headers = dict(scope.get("headers") or [])
    declared = headers.get(b"content-length", b"").decode("latin-1").strip()
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "BAD_REQUEST", "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes) -> Receive:
    """A ``receive`` that hands the already-read body to the next app."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


# --- checking a JSON GraphQL request -----------------------------------------------------------------


@dataclass(frozen=True)
class GraphQLPayload:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    canonical: bytes  # the request as sorted JSON: two retries that mean the same compare equal


def parse_json_payload(body: bytes, settings: Settings) -> GraphQLPayload:
    if not body.strip():
        raise Refused(400, "BAD_REQUEST", "the request body is empty; send a JSON object with a query")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(400, "BAD_REQUEST", f"the request body is not UTF-8 (byte {error.start})") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise Refused(400, "BAD_REQUEST", "the JSON body is nested too deeply") from None
    except ValueError as error:
        raise Refused(400, "BAD_REQUEST", f"the request body is not valid JSON: {error}") from None
    if isinstance(payload, list):
        raise Refused(400, "BAD_REQUEST", "batched operations are not supported: send one operation")
    if not isinstance(payload, dict):
        raise Refused(400, "BAD_REQUEST", "the request body must be a JSON object with a query")
    if json_depth_exceeds(payload, settings.max_json_depth):
        raise Refused(400, "BAD_REQUEST", f"the JSON body is nested deeper than {settings.max_json_depth}")
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise Refused(400, "BAD_REQUEST", "the request needs a `query` string")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise Refused(400, "BAD_REQUEST", "`variables` must be an object or null")
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise Refused(400, "BAD_REQUEST", "`operationName` must be a string or null")
    extensions = payload.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise Refused(400, "BAD_REQUEST", "`extensions` must be an object or null")
    # Variables are checked with the operation (their path named in a GraphQL error); these never reach it.
    for name, value in (("operationName", operation_name), ("extensions", extensions)):
        problem = find_unstorable(value, (name,))
        if problem is not None:
            raise Refused(400, "BAD_REQUEST", problem.message)
    if len(query) > settings.max_query_bytes:
        raise Refused(
            413, "QUERY_TOO_LARGE", f"the query document is larger than {settings.max_query_bytes} bytes"
        )
    canonical = json.dumps(
        {"query": query, "variables": variables or {}, "operationName": operation_name},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8", "surrogatepass")
    if variables and len(canonical) - len(query) > settings.max_variables_bytes:
        raise Refused(
            413, "QUERY_TOO_LARGE", f"the variables are larger than {settings.max_variables_bytes} bytes"
        )
    return GraphQLPayload(query, variables, operation_name, canonical)


# --- answers ------------------------------------------------------------------------------------------


def executed(state: dict[str, Any]) -> bool:
    outcome: Outcome | None = state.get("graphql_outcome")
    return outcome is not None and outcome.executed


def request_error_status(state: dict[str, Any]) -> Any:
    """Under application/graphql-response+json a request refused before execution is a 4xx."""

    def on_start(status: int) -> int:
        if status != 200 or state.get("media_type") != GRAPHQL_RESPONSE_JSON or executed(state):
            return status
        outcome: Outcome | None = state.get("graphql_outcome")
        return 429 if outcome is not None and THROTTLED in outcome.error_codes else 400

    return on_start


def retry_after_headers(state: dict[str, Any]) -> Any:
    """A throttled answer tells when to come back, in whole seconds, as HTTP clients expect."""

    def headers() -> list[tuple[bytes, bytes]]:
        outcome: Outcome | None = state.get("graphql_outcome")
        if outcome is None or outcome.retry_after is None:
            return []
        return [(b"retry-after", str(math.ceil(outcome.retry_after)).encode())]

    return headers


@dataclass
class CapturedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def json_errors_from_text(status: int, text: str) -> bytes:
    message = text.strip() or "bad request"
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(status, "BAD_REQUEST")
    body = {"errors": [{"message": message, "extensions": {"code": code, "requestId": request_id_var.get()}}]}
    return json.dumps(body).encode()


def answering_json(
    send: Send,
    media_type: str,
    on_start: Callable[[int], int] | None = None,
    extra_headers: Callable[[], list[tuple[bytes, bytes]]] | None = None,
) -> Send:
    """Wraps ``send``: answers carry ``media_type``, and plain-text refusals from below become JSON errors."""
    pending: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-type"]
            original = dict(message.get("headers", [])).get(b"content-type", b"")
            status = message["status"]
            if on_start is not None:
                status = on_start(status)
            if extra_headers is not None:
                headers += extra_headers()
            if original.startswith(b"text/plain") and status >= 400:
                pending.update(status=status, headers=headers, chunks=[])
                return
            if original.startswith(b"application/json") or not original:
                headers.append((b"content-type", media_type.encode() + b"; charset=utf-8"))
            else:
                headers.append((b"content-type", original))
            await send({**message, "status": status, "headers": headers})
            return
        if message["type"] == "http.response.body" and pending:
            pending["chunks"].append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = json_errors_from_text(
                pending["status"], b"".join(pending["chunks"]).decode("utf-8", "replace")
            )
            headers = [(k, v) for k, v in pending["headers"] if k.lower() != b"content-length"]
            headers += [
                (b"content-type", media_type.encode() + b"; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": pending["status"], "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


async def capture(
    app: Callable[[Scope, Receive, Send], Awaitable[None]], scope: Scope, receive: Receive
) -> CapturedResponse:
    """Run ``app`` and keep its whole answer (for idempotent replays)."""
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return CapturedResponse(status, headers, b"".join(chunks))


async def send_captured(response: CapturedResponse, send: Send, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(k, v) for k, v in response.headers if k.lower() != b"x-request-id"] + extra
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
