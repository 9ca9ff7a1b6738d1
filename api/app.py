"""The Starlette application: GraphQL (with bearer-token auth), health checks, and the worker in embedded mode."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

import domain.subdomains  # noqa: F401  (registers reactions and job handlers)
from api.evidence import serve_evidence
from api.exports import download_export
from api.graphiql import graphiql_page, graphiql_routes
from api.webhooks import receive_supplier_webhook
from api.worker import start_worker_task
from config.logs import request_id_var
from config.settings import Settings, get_settings
from db.engine import Database
from db.migrate import current_revision, head_revision
from domain.actors import Actor
from domain.disputes import MAX_ATTACHMENTS
from domain.tokens import TokenExpired, authenticate
from schema.context import Context
from schema.root import build_schema
from schema.subscriptions import SocketContext

log = logging.getLogger("dropdesk.http")


class RequestIdMiddleware:
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

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


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
        context = Context(
            actor=request.scope["state"]["actor"],
            database=self.database,
            settings=self.settings,
            request_id=request_id_var.get() or "",
            request=request,
            response=response,
        )
        # Kept on the request so that the endpoint can close its session once the response is out.
        request.scope["state"]["context"] = context
        return context

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
    """Authenticates the bearer token before GraphQL runs: no token or a bad one is an HTTP 401."""

    def __init__(self, graphql: DropdeskGraphQL, database: Database) -> None:
        self.graphql = graphql
        self.database = database

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
        raw = bearer_token(request.headers)
        if raw is None:
            await unauthorized("missing bearer token: send Authorization: Bearer <token>")(
                scope, receive, send
            )
            return
        try:
            async with self.database.read() as session:
                actor = await authenticate(session, raw)
        except TokenExpired as expired:
            await unauthorized(str(expired))(scope, receive, send)
            return
        if actor is None:
            await unauthorized("invalid or revoked token")(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = actor
        try:
            await self.graphql(scope, receive, send)
        finally:
            context = scope["state"].get("context")
            if context is not None:
                await context.close()


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
    endpoint = GraphQLEndpoint(graphql, database)

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
    app.add_middleware(RequestIdMiddleware)
    app.state.database = database
    app.state.settings = settings
    return app
