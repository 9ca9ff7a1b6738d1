"""The Starlette application: GraphQL (with bearer-token auth), health checks, and the worker in embedded mode.

Every request passes ``api.observability.EdgeMiddleware`` (request id, access log, metrics, JSON errors);
``/graphql`` then authenticates, checks the request at the edge (``api.edge``) and runs mutations with an
Idempotency-Key once (``api.idempotency``); the schema's own guard (``schema.extensions``) does the rest.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

import domain.subdomains  # noqa: F401  (registers reactions and job handlers)
from api import edge
from api.evidence import serve_evidence
from api.exports import download_export
from api.graphiql import graphiql_page, graphiql_routes
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.idempotency import canonical_multipart, checked_key, is_mutation, run_once
from api.observability import EdgeMiddleware, metrics_endpoint
from api.runtime import tune_gc
from api.webhooks import receive_supplier_webhook
from api.worker import start_worker_task
from config.logs import request_id_var
from config.settings import Settings, get_settings
from db.engine import Database
from db.migrate import current_revision, head_revision
from domain.actors import Actor
from domain.disputes import MAX_ATTACHMENTS
from domain.token_usage import TokenUsage
from domain.tokens import TokenExpired, authenticate
from schema.context import Context
from schema.known_reads import answer_known_read
from schema.root import build_schema
from schema.subscriptions import SocketContext

log = logging.getLogger("dropdesk.http")


def unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="dropdesk"'},
    )


def bearer_token(headers: Any) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# Until connection_init authenticates a WebSocket, its context acts for nobody: it may see no rows at all.
NOBODY = Actor.system(None, name="unauthenticated")


class DropdeskGraphQL(GraphQL[Context, None]):
    def __init__(self, schema: Any, database: Database, settings: Settings) -> None:
        # Uploads (dispute evidence) per the GraphQL multipart request spec; bearer tokens, not cookies,
        # authenticate, so a cross-site form post carries no credentials.
        super().__init__(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            multipart_uploads_enabled=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            keep_alive=True,
            keep_alive_interval=15,
        )
        self.database = database
        self.settings = settings

    async def get_context(self, request: Any, response: Any) -> Context:
        if isinstance(request, WebSocket):
            socket_context = SocketContext(
                actor=NOBODY,
                database=self.database,
                settings=self.settings,
                request_id=request_id_var.get() or "",
                request=request,
                response=response,
            )
            request.scope.setdefault("state", {})["context"] = socket_context
            return socket_context
        return self.request_context(request, response)

    def request_context(self, request: Request, response: Any) -> Context:
        """The context of an HTTP request, on the session that read its token."""
        context = Context(
            actor=request.scope["state"]["actor"],
            _session=request.scope["state"]["session"],
            database=self.database,
            settings=self.settings,
            request_id=request_id_var.get() or "",
            request=request,
            response=response,
        )
        # Kept on the request so that the endpoint can close its session once the response is out.
        request.scope["state"]["context"] = context
        return context

    def encode_json(self, data: object) -> str:
        # orjson writes a page of orders several times faster than json.dumps, and UTF-8 as is (no \u escapes).
        # Text, not bytes: the same encoder writes WebSocket messages, and browsers' graphql-transport-ws
        # clients read only text frames.
        return orjson.dumps(data).decode()

    async def process_result(self, request: Any, result: Any) -> Any:
        answer = await super().process_result(request, result)
        state = request.scope.get("state", {})
        # A request refused before execution has no `data` under application/graphql-response+json.
        if state.get("media_type") == edge.GRAPHQL_RESPONSE_JSON and not edge.executed(state):
            answer.pop("data", None)
        return answer

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws: the connection_init payload carries {"Authorization": "Bearer <token>"}.

        A missing or bad token closes the socket with 4403; subscribing before that is answered 4401.
        """
        params = getattr(context, "connection_params", None) or {}
        headers = {str(key).lower(): value for key, value in params.items() if isinstance(value, str)}
        raw = bearer_token(headers)
        if raw is None:
            raise ConnectionRejectionError({"message": 'send {"Authorization": "Bearer <token>"}'})
        async with self.database.read() as session:
            actor = await authenticate(session, raw)
        if actor is None:
            raise ConnectionRejectionError({"message": "invalid or revoked token"})
        context.actor = actor
        return UNSET


class GraphQLSocket:
    """The WebSocket side of /graphql; closes the connection's database session when the socket ends."""

    def __init__(self, graphql: DropdeskGraphQL) -> None:
        self.graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})
        try:
            await self.graphql(scope, receive, send)
        finally:
            context = scope["state"].get("context")
            if context is not None:
                await context.close()


class GraphQLEndpoint:
    """Authenticates the bearer token before GraphQL runs (no token or a bad one is an HTTP 401), then checks
    the request at the edge (size, JSON shape), and runs mutations with an Idempotency-Key at most once."""

    def __init__(self, graphql: DropdeskGraphQL, database: Database, settings: Settings) -> None:
        self.graphql = graphql
        self.database = database
        self.settings = settings
        self.token_usage = TokenUsage(database)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            await graphiql_page()(scope, receive, send)
            return
        if _upload_too_large(request, self.graphql.settings):
            await JSONResponse(
                {"errors": [{"message": "the upload is too large", "extensions": {"code": "TOO_LARGE"}}]},
                status_code=413,
            )(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        raw = bearer_token(request.headers)
        if raw is None:
            state["error_code"] = "UNAUTHENTICATED"
            await unauthorized("missing bearer token: send Authorization: Bearer <token>")(
                scope, receive, send
            )
            return
        # The token is read on the session the request's resolvers then use: one checkout and one transaction
        # per request rather than two.
        session = self.database.read_session()
        try:
            try:
                actor = await authenticate(session, raw)
            except TokenExpired as expired:
                await unauthorized(str(expired))(scope, receive, send)
                return
            if actor is None:
                state["error_code"] = "UNAUTHENTICATED"
                await unauthorized("invalid or revoked token")(scope, receive, send)
                return
            state["actor"] = actor
            state["session"] = session
            if self.token_usage.due(actor.token_id):
                # No connection held while waiting for the write (on SQLite, for the one writer).
                await session.rollback()
                await self.token_usage.touch(actor.token_id)
            media_type = edge.response_media_type(request.headers.get("accept"))
            try:
                if media_type is None:
                    raise edge.Refused(
                        406,
                        "NOT_ACCEPTABLE",
                        f"answers are {edge.GRAPHQL_RESPONSE_JSON} or {edge.JSON_MEDIA}",
                    )
                state["media_type"] = media_type
                await self._run(scope, receive, send, request, media_type)
            except edge.Refused as refusal:
                state["error_code"] = refusal.code
                await refusal.response(media_type or edge.JSON_MEDIA)(scope, receive, send)
        finally:
            context = state.get("context")
            await (context.close() if context is not None else session.close())

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, request: Request, media_type: str
    ) -> None:
        payload: edge.GraphQLPayload | None = None
        upload: bytes | None = None
        if request.method == "POST":
            content_type = request.headers.get("content-type", "")
            body = await edge.read_body(scope, receive, edge.body_limit(self.settings, content_type))
            if "json" in content_type.split(";", 1)[0].lower():
                payload = edge.parse_json_payload(body, self.settings)
            elif edge.is_multipart(content_type):
                upload = body
            else:
                raise edge.Refused(
                    415,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "send application/json (or multipart/form-data for uploads)",
                )
            receive = edge.replay(body)
        state = scope["state"]
        if payload is None or _may_write(payload.query):
            # Mutations take connections of their own and subscriptions run for long: the connection that
            # read the token goes back to the pool rather than wait idle beside them.
            await state["session"].rollback()
        elif await self._answer_known_read(scope, receive, send, request, payload, media_type):
            return

        async def graphql(scope: Scope, receive: Receive, send: Send) -> None:
            await self.graphql(
                scope,
                receive,
                edge.answering_json(
                    send, media_type, edge.request_error_status(state), edge.retry_after_headers(state)
                ),
            )

        key = request.headers.get(IDEMPOTENCY_HEADER)
        # What identifies a mutation for its key; uploads are always mutations.
        canonical: bytes | None = None
        if key is not None and payload is not None and is_mutation(payload, self.settings):
            canonical = payload.canonical
        elif key is not None and upload is not None:
            canonical = canonical_multipart(upload, request.headers.get("content-type", ""))
        if key is not None and canonical is not None:
            await run_once(
                graphql,
                scope,
                receive,
                send,
                database=self.database,
                settings=self.settings,
                actor=state["actor"],
                key=checked_key(key),
                canonical_request=canonical,
            )
            return
        await graphql(scope, receive, send)

    async def _answer_known_read(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        payload: edge.GraphQLPayload,
        media_type: str,
    ) -> bool:
        """Answer a query a compiled plan answered before, straight from the plan (schema/known_reads.py);
        False when it is for the standard way."""
        schema = self.graphql.schema
        guard = getattr(schema, "guard", None)
        if guard is None:
            return False
        answer = await answer_known_read(
            schema,
            guard,
            payload.query,
            payload.variables,
            payload.operation_name,
            lambda: self.graphql.request_context(request, None),
        )
        if answer is None:
            return False
        content_type = f"{media_type}; charset=utf-8"
        await Response(orjson.dumps(answer), media_type=content_type)(scope, receive, send)
        return True


def _may_write(document: str) -> bool:
    """A document that may hold a mutation or a subscription (a word in a comment or a string counts too)."""
    return "mutation" in document or "subscription" in document


def _upload_too_large(request: Request, settings: Settings) -> bool:
    """A multipart body declared larger than a message's files may be, refused before it is read."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return False
    declared = request.headers.get("content-length", "")
    limit = settings.evidence_max_bytes * MAX_ATTACHMENTS + 1024 * 1024
    return declared.isdigit() and int(declared) > limit


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def home(request: Request) -> Response:
    """The root leads to the GraphiQL explorer."""
    return RedirectResponse("/graphql", status_code=302)


def create_app(settings: Settings | None = None, database: Database | None = None) -> Starlette:
    settings = settings or get_settings()
    database = database or Database(settings.database_url)
    graphql = DropdeskGraphQL(build_schema(settings), database, settings)
    endpoint = GraphQLEndpoint(graphql, database, settings)

    async def readyz(request: Request) -> Response:
        checks: dict[str, Any] = {}
        try:
            async with database.read() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            current, head = await current_revision(database.engine), head_revision()
            checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
        except Exception as error:  # a readiness probe reports, it does not crash
            log.warning("readiness check failed: %s", error)
            checks.setdefault("database", "unreachable")
        ready = checks.get("database") == "ok" and checks.get("migrations") == "ok"
        return JSONResponse(
            {"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Embedded mode runs the background worker in the server process; at scale it runs on its own.
        worker = start_worker_task(database, settings) if settings.run_worker_in_server else None
        yield
        if worker is not None:
            task, stop = worker
            stop.set()
            await task
        await database.dispose()

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", GraphQLSocket(graphql)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint(database)),
            Route(
                "/webhooks/suppliers/{supplier_id}",
                receive_supplier_webhook,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
            Route("/exports/{export_id}/download", download_export, methods=["GET", "HEAD"]),
            Route("/disputes/evidence/{attachment_id}/{audience}", serve_evidence, methods=["GET"]),
            *graphiql_routes(),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(EdgeMiddleware)
    app.state.database = database
    app.state.settings = settings
    return app


def create_served_app() -> Starlette:
    """The app as ``dropdesk serve`` runs it in each server process: built, then the collector tuned."""
    app = create_app()
    tune_gc()
    return app
