"""Inbound supplier webhooks: ``POST /webhooks/suppliers/{supplierId}``.

``supplierId`` is the supplier's numeric id (the number at the end of its global id
``gid://dropdesk/Supplier/<id>``), so that the URL needs no escaping. Requests are signed per Standard Webhooks
with that supplier's ``webhook_secret`` (headers ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``;
5 minutes of tolerance) and carry ``{"type": ..., "data": {...}}``. Each runs the same domain function as the
matching GraphQL mutation, acting as the supplier, and is idempotent by ``webhook-id``: the first answer is
stored in the same transaction as the change and a replay gets it back without changing anything.

Answers are JSON: 200 done; 401 bad signature or stale timestamp; 400 malformed body; 404 unknown supplier
or object; 409 refused by a business rule (``userErrors``); 413 too large; 422 unknown type or invalid values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from config.logs import request_id_var
from db.engine import Database
from db.models import ActorKind, DisputeResponseAction, InboundWebhook, Supplier, SupplierOrderStatus
from domain import cancellations as cancellation_cases
from domain import disputes as dispute_cases
from domain import supplier_orders as supplier_order_cases
from domain.actors import Actor
from domain.errors import DomainError, ErrorCode
from domain.text import find_unstorable
from schema.ids import InvalidId, decode_id, to_global_id

log = logging.getLogger("dropdesk.webhooks")

MAX_BODY_BYTES = 256 * 1024
MAX_WEBHOOK_ID_LENGTH = 255
MAX_BODY_DEPTH = 32
REPLAY_HEADER = "dropdesk-webhook-replay"

Command = Callable[[AsyncSession, Actor], Awaitable[dict[str, Any]]]

# Codes that mean "the input names nothing you may act on" or "the values are wrong", not "the state refuses".
STATUS_BY_CODE = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.INVALID: 422,
    ErrorCode.REQUIRED: 422,
    ErrorCode.TOO_LONG: 422,
    ErrorCode.TOO_MANY: 422,
    ErrorCode.AMOUNT_TOO_LARGE: 422,
    ErrorCode.UNSUPPORTED_FILE_TYPE: 422,
}
REFUSED = 409


class Malformed(Exception):
    """The body is not what the event type needs; answered 400 and never stored."""


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}, "requestId": request_id_var.get() or None},
        status_code=status,
    )


# --- reading event data -------------------------------------------------------------------------------


def _text(data: dict[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise Malformed(f"{path}.{key} is required")
        return None
    if not isinstance(value, str):
        raise Malformed(f"{path}.{key} must be a string")
    return value


def _choice(data: dict[str, Any], key: str, path: str, choices: type[Any], *, required: bool) -> Any:
    value = _text(data, key, path, required=required)
    if value is None:
        return None
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(member.value for member in choices)
        raise Malformed(f"{path}.{key} must be one of {allowed}") from None


def _time(value: Any, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Malformed(f"{path} must be an ISO 8601 time with a UTC offset")
    return parsed


def _objects(data: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Malformed(f"{path}.{key} must be a list of objects")
    return value


def _packages(data: dict[str, Any]) -> list[supplier_order_cases.PackageInput]:
    packages = []
    for index, package in enumerate(_objects(data, "packages", "data")):
        path = f"data.packages[{index}]"
        events = [
            supplier_order_cases.TrackingEventInput(
                time=_time(event.get("time"), f"{path}.events[{n}].time"),
                status=_text(event, "status", f"{path}.events[{n}]", required=True) or "",
                description=_text(event, "description", f"{path}.events[{n}]") or "",
                location=_text(event, "location", f"{path}.events[{n}]"),
            )
            for n, event in enumerate(_objects(package, "events", path))
        ]
        packages.append(
            supplier_order_cases.PackageInput(
                tracking_number=_text(package, "trackingNumber", path, required=True) or "",
                carrier=_text(package, "carrier", path),
                tracking_status=_text(package, "trackingStatus", path),
                events=events,
            )
        )
    return packages


def _pk(data: dict[str, Any], type_name: str) -> int:
    """The primary key in ``data.id``; like GraphQL, an id of another type or shape is invalid (422)."""
    try:
        return decode_id(_text(data, "id", "data", required=True) or "", type_name)[1]
    except InvalidId as error:
        raise DomainError.single(ErrorCode.INVALID, str(error), "id") from None


# --- event types --------------------------------------------------------------------------------------


def _cancellation_decided(data: dict[str, Any]) -> Command:
    decision = _choice(data, "decision", "data", cancellation_cases.Decision, required=True)
    message = _text(data, "message", "data")
    _text(data, "id", "data", required=True)

    async def run(session: AsyncSession, actor: Actor) -> dict[str, Any]:
        request = await cancellation_cases.decide_cancellation(
            session, actor, _pk(data, "CancellationRequest"), decision, message
        )
        return {
            "cancellationRequest": {
                "id": to_global_id("CancellationRequest", request.id),
                "status": request.status.value,
                "decidedAt": request.decided_at.isoformat() if request.decided_at else None,
            },
            "userErrors": [],
        }

    return run


def _supplier_order_updated(data: dict[str, Any]) -> Command:
    change = supplier_order_cases.SupplierOrderChange(
        status=_choice(data, "status", "data", SupplierOrderStatus, required=False),
        end_reason=_text(data, "endReason", "data"),
        packages=_packages(data),
    )
    _text(data, "id", "data", required=True)

    async def run(session: AsyncSession, actor: Actor) -> dict[str, Any]:
        supplier_order = await supplier_order_cases.update_supplier_order(
            session, actor, _pk(data, "SupplierOrder"), change
        )
        return {
            "supplierOrder": {
                "id": to_global_id("SupplierOrder", supplier_order.id),
                "status": supplier_order.status.value,
                "endReason": supplier_order.end_reason,
            },
            "userErrors": [],
        }

    return run


def _amount(data: dict[str, Any], key: str) -> Decimal | None:
    value = data.get(key)
    if value is None:
        return None
    # A decimal string, as GraphQL answers money; a JSON number would have gone through a float.
    if not isinstance(value, str):
        raise Malformed(f"data.{key} must be a decimal string")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise Malformed(f"data.{key} must be a decimal string") from None


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Malformed(f"data.{key} must be a list of strings")
    return value


def _dispute_answer(dispute: Any) -> dict[str, Any]:
    return {
        "dispute": {
            "id": to_global_id("Dispute", dispute.id),
            "status": dispute.status.value,
            "proposal": (
                {
                    "action": dispute.proposal_action.value,
                    "amount": str(dispute.proposal_amount) if dispute.proposal_amount is not None else None,
                }
                if dispute.proposal_action
                else None
            ),
        },
        "userErrors": [],
    }


def _dispute_responded(data: dict[str, Any]) -> Command:
    action = _choice(data, "action", "data", DisputeResponseAction, required=True)
    amount = _amount(data, "amount")
    message = _text(data, "message", "data")
    _text(data, "id", "data", required=True)

    async def run(session: AsyncSession, actor: Actor) -> dict[str, Any]:
        dispute = await dispute_cases.respond(session, actor, _pk(data, "Dispute"), action, amount, message)
        return _dispute_answer(dispute)

    return run


def _dispute_message(data: dict[str, Any]) -> Command:
    body = _text(data, "body", "data")
    urls = _strings(data, "evidenceUrls")
    _text(data, "id", "data", required=True)

    async def run(session: AsyncSession, actor: Actor) -> dict[str, Any]:
        # Evidence by webhook is given as URLs; files are uploaded through GraphQL.
        dispute = await dispute_cases.add_message(
            session,
            actor,
            _pk(data, "Dispute"),
            body,
            dispute_cases.Evidence(urls=urls),
            rules=dispute_cases.DisputeRules(),
        )
        return _dispute_answer(dispute)

    return run


EVENT_TYPES: dict[str, Callable[[dict[str, Any]], Command]] = {
    "cancellation_request.decided": _cancellation_decided,
    "supplier_order.updated": _supplier_order_updated,
    "dispute.responded": _dispute_responded,
    "dispute.message": _dispute_message,
}


# --- the endpoint -------------------------------------------------------------------------------------


async def receive_supplier_webhook(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    try:
        return await _receive(request, database)
    except Exception:
        # The sender retries on any non-2xx answer; a JSON 503 tells it to, without leaking what broke.
        log.exception("supplier webhook failed")
        return _error(503, "UNAVAILABLE", "the webhook could not be processed now; retry later")


async def _receive(request: Request, database: Database) -> JSONResponse:
    if request.method != "POST":
        # Answered here rather than by the router so that the sender gets JSON like every other refusal.
        return _error(405, "METHOD_NOT_ALLOWED", "webhooks are delivered with POST")
    raw_id = request.path_params["supplier_id"]
    if not raw_id.isdigit() or len(raw_id) > 18:
        return _error(404, "NOT_FOUND", "unknown supplier")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _error(413, "TOO_LARGE", f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "TOO_LARGE", f"the body is larger than {MAX_BODY_BYTES} bytes")
    async with database.read() as session:
        supplier = await session.get(Supplier, int(raw_id))
    if supplier is None:
        return _error(404, "NOT_FOUND", "unknown supplier")

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "MALFORMED", "the body is not UTF-8")
    try:
        Webhook(supplier.webhook_secret).verify(text, dict(request.headers.items()), json_parse=False)
    except WebhookVerificationError as error:
        return _error(401, "INVALID_SIGNATURE", str(error))
    except ValueError:  # a signature or secret that is not base64, a signature without "v1,"
        return _error(401, "INVALID_SIGNATURE", "malformed webhook-signature header")

    webhook_id = request.headers["webhook-id"]
    try:
        if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
            raise Malformed(f"webhook-id is longer than {MAX_WEBHOOK_ID_LENGTH} characters")
        event_type, command = _parse(text)
    except Malformed as error:
        return _error(400, "MALFORMED", str(error))
    if command is None:
        known = ", ".join(sorted(EVENT_TYPES))
        return _error(422, "UNKNOWN_EVENT_TYPE", f"unknown event type {event_type!r}; known: {known}")

    actor = Actor(
        kind=ActorKind.SUPPLIER,
        name=f"{supplier.name} (webhook)",
        shop_id=supplier.shop_id,
        supplier_id=supplier.id,
    )
    async with database.write() as session:
        claim = await _claim(session, database.dialect, supplier, webhook_id, event_type)
        if claim is None:
            first = (
                await session.scalars(
                    select(InboundWebhook).where(
                        InboundWebhook.supplier_id == supplier.id, InboundWebhook.webhook_id == webhook_id
                    )
                )
            ).one()
            return JSONResponse(
                first.response, status_code=first.status_code, headers={REPLAY_HEADER: "true"}
            )
        try:
            # A savepoint, so that a refusal rolls back the change but keeps the stored answer.
            async with session.begin_nested():
                answer, status = await command(session, actor), 200
        except DomainError as error:
            status = STATUS_BY_CODE.get(error.errors[0].code, REFUSED)
            answer = {
                "userErrors": [
                    {"field": list(item.field) or None, "message": item.message, "code": item.code.value}
                    for item in error.errors
                ]
            }
        await session.execute(
            update(InboundWebhook)
            .where(InboundWebhook.id == claim)
            .values(status_code=status, response=answer)
        )
    return JSONResponse(answer, status_code=status)


def _parse(text: str) -> tuple[str, Command | None]:
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise Malformed("the body is not JSON") from None
    if not isinstance(event, dict):
        raise Malformed("the body must be a JSON object")
    # Text no database stores can never succeed: 400, so that the sender stops retrying.
    unstorable = find_unstorable(event, ("body",), max_depth=MAX_BODY_DEPTH)
    if unstorable is not None:
        raise Malformed(unstorable.message)
    event_type = _text(event, "type", "body", required=True) or ""
    data = event.get("data")
    if not isinstance(data, dict):
        raise Malformed("body.data must be an object")
    parse = EVENT_TYPES.get(event_type)
    return event_type, parse(data) if parse else None


async def _claim(
    session: AsyncSession, dialect: str, supplier: Supplier, webhook_id: str, event_type: str
) -> int | None:
    """Record the webhook id; None when it was handled before (a concurrent twin waits for the first)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(InboundWebhook)
        .values(
            shop_id=supplier.shop_id,
            supplier_id=supplier.id,
            webhook_id=webhook_id,
            event_type=event_type,
            status_code=0,
            response={},
        )
        .on_conflict_do_nothing(index_elements=[InboundWebhook.supplier_id, InboundWebhook.webhook_id])
        .returning(InboundWebhook.id)
    )
    return await session.scalar(statement)
