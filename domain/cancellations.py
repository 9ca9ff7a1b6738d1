"""Cancellation requests: a merchant asks a supplier to cancel a supplier order before it ships.

Statuses: PENDING → APPROVED | REJECTED | INFO_REQUESTED (supplier); INFO_REQUESTED → PENDING (merchant reply);
PENDING | INFO_REQUESTED → WITHDRAWN (merchant); PENDING → AUTO_APPROVED at ``respond_by`` (deadline job);
PENDING | INFO_REQUESTED → CLOSED when the supplier order ships meanwhile. An unpaid supplier order is
cancelled at once, without the supplier, and its request is recorded as APPROVED by the system.

Every use case locks the supplier order row first, then the request, in that order (as
``update_supplier_order`` does), so that concurrent decisions queue up and only the first one finds the
request still open.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.jobs import Job, JobContext, enqueue, handler
from db.models import (
    ActorKind,
    CancellationMessage,
    CancellationReason,
    CancellationRequest,
    CancellationStatus,
    MessageAuthor,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)
from db.types import utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.money import format_money, quantize
from domain.reactions import reacts_to
from domain.supplier_orders import (
    SHIPPED,
    UNPAID,
    SupplierOrderStatusChanged,
    load_supplier_order,
    record_status_change,
    refresh_order_status,
)
from domain.topics import Topic, announce

S = SupplierOrderStatus
C = CancellationStatus

OPEN = frozenset({C.PENDING, C.INFO_REQUESTED})
# Paid but not shipped: the supplier holds the money and must agree to give it back.
PAID_UNSHIPPED = frozenset({S.WAIT_SELLER_EXAMINE_MONEY, S.WAIT_SELLER_SEND_GOODS})
CANCEL_END_REASON = "cancel_order_close_trade"
REFUND_SOURCE = "cancellation_request"
AUTO_APPROVE_KIND = "cancellations.auto_approve"
MAX_MESSAGE_LENGTH = 5000


class Decision(enum.StrEnum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    REQUEST_INFO = "REQUEST_INFO"


# --- use cases ------------------------------------------------------------------------------------------


async def request_cancellation(
    session: AsyncSession,
    actor: Actor,
    supplier_order_id: int,
    reason: CancellationReason,
    message: str | None,
    *,
    response_time: timedelta,
    now: datetime | None = None,
) -> CancellationRequest:
    """Ask to cancel a supplier order: at once when unpaid, otherwise a request the supplier must decide."""
    require_scope(actor, Scope.WRITE_ORDERS)
    if response_time <= timedelta(0):
        raise ValueError("response_time must be positive")
    now = now or utcnow()
    body = _message(
        message, required=reason is CancellationReason.OTHER, why="a reason of OTHER needs a message"
    )
    try:
        supplier_order = await load_supplier_order(session, actor, supplier_order_id, for_update=True)
    except DomainError:
        raise DomainError.single(ErrorCode.NOT_FOUND, "supplier order not found", "supplierOrderId") from None
    already_open = await session.scalar(
        select(CancellationRequest.id).where(CancellationRequest.open_key == supplier_order.id)
    )
    if already_open is not None or supplier_order.status is S.IN_CANCEL:
        raise DomainError.single(
            ErrorCode.ALREADY_EXISTS,
            "this supplier order already has an open cancellation request",
            "supplierOrderId",
        )
    unpaid = supplier_order.status in UNPAID
    if not unpaid and supplier_order.status not in PAID_UNSHIPPED:
        raise DomainError.single(
            ErrorCode.NOT_CANCELLABLE,
            f"a supplier order in {supplier_order.status} cannot be cancelled: only orders that have not "
            "shipped can; once shipped, open a dispute instead",
            "supplierOrderId",
        )

    request = CancellationRequest(
        shop_id=supplier_order.shop_id,
        order_id=supplier_order.order_id,
        supplier_order_id=supplier_order.id,
        reason=reason,
        status=C.APPROVED if unpaid else C.PENDING,
        open_key=None if unpaid else supplier_order.id,
        previous_status=supplier_order.status,
        requested_by=actor.name,
        respond_by=None if unpaid else now + response_time,
        decided_at=now if unpaid else None,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    await session.flush()
    await announce(
        session,
        actor,
        Topic.CANCELLATION_REQUESTS_CREATED,
        shop_id=request.shop_id,
        node_type="CancellationRequest",
        node_id=request.id,
        now=now,
    )
    if body:
        _add_message(session, request, actor, body, now)
    _event(
        session,
        actor,
        request,
        supplier_order,
        "cancellation_requested",
        f"Cancellation of AliExpress order {supplier_order.aliexpress_order_id} requested ({reason})",
        reason=reason.value,
        respondBy=request.respond_by.isoformat() if request.respond_by else None,
    )
    if unpaid:
        system = Actor.system(supplier_order.shop_id)
        _add_message(
            session,
            request,
            system,
            "Cancelled at once: the supplier order was not paid, so there was nothing for the supplier "
            "to decide and nothing to refund.",
            now,
        )
        _event(
            session,
            system,
            request,
            supplier_order,
            "cancellation_approved",
            f"Cancellation of unpaid AliExpress order {supplier_order.aliexpress_order_id} approved at once",
        )
        await _cancel_supplier_order(session, system, supplier_order, now)
        return request

    supplier_order.status = S.IN_CANCEL
    supplier_order.updated_at = now
    supplier_order.order.updated_at = now
    assert request.respond_by is not None
    await enqueue(
        session,
        AUTO_APPROVE_KIND,
        {"requestId": request.id},
        key=f"{AUTO_APPROVE_KIND}:{request.id}",
        run_at=request.respond_by,
        shop_id=request.shop_id,
    )
    return request


async def decide_cancellation(
    session: AsyncSession,
    actor: Actor,
    request_id: int,
    decision: Decision,
    message: str | None,
    *,
    now: datetime | None = None,
) -> CancellationRequest:
    """The supplier approves, rejects, or asks the merchant for more information."""
    if not actor.is_supplier:
        raise DomainError.single(ErrorCode.FORBIDDEN, "only the supplier of this order may decide")
    now = now or utcnow()
    body = _message(message, required=decision is Decision.REQUEST_INFO, why="say what information you need")
    request, supplier_order = await _lock(session, actor, request_id)
    if request.status is not C.PENDING:
        raise DomainError.single(
            ErrorCode.INVALID_STATE,
            f"the request is {request.status}; only a PENDING request can be decided",
            "id",
        )
    if body:
        _add_message(session, request, actor, body, now)
    await announce(
        session,
        actor,
        Topic.CANCELLATION_REQUESTS_DECIDED,
        shop_id=request.shop_id,
        node_type="CancellationRequest",
        node_id=request.id,
        now=now,
    )
    if decision is Decision.APPROVE:
        await _approve(session, actor, request, supplier_order, C.APPROVED, now)
    elif decision is Decision.REJECT:
        _close(request, C.REJECTED, now)
        restored = _restore(supplier_order, request, now)
        _event(
            session,
            actor,
            request,
            supplier_order,
            "cancellation_rejected",
            f"The supplier rejected the cancellation of AliExpress order {supplier_order.aliexpress_order_id}",
            supplierOrderStatus=restored,
        )
    else:
        request.status = C.INFO_REQUESTED
        request.updated_at = now
        _event(
            session,
            actor,
            request,
            supplier_order,
            "cancellation_info_requested",
            f"The supplier asks for more information about cancelling AliExpress order "
            f"{supplier_order.aliexpress_order_id}",
        )
    return request


async def reply_to_cancellation(
    session: AsyncSession, actor: Actor, request_id: int, message: str | None, *, now: datetime | None = None
) -> CancellationRequest:
    """The merchant answers the supplier's question; the request is PENDING again with its first deadline."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    body = _message(message, required=True, why="a reply needs a message")
    request, supplier_order = await _lock(session, actor, request_id)
    if request.status is not C.INFO_REQUESTED:
        raise DomainError.single(
            ErrorCode.INVALID_STATE,
            f"the request is {request.status}; a reply answers a request in INFO_REQUESTED",
            "id",
        )
    reply = _add_message(session, request, actor, body or "", now)
    request.status = C.PENDING
    request.updated_at = now
    _event(
        session,
        actor,
        request,
        supplier_order,
        "cancellation_replied",
        f"The merchant answered about cancelling AliExpress order {supplier_order.aliexpress_order_id}",
    )
    if request.respond_by is not None and request.respond_by <= now:
        # The deadline job already ran while the request waited for this reply and left it alone.
        await session.flush()
        await enqueue(
            session,
            AUTO_APPROVE_KIND,
            {"requestId": request.id},
            key=f"{AUTO_APPROVE_KIND}:{request.id}:{reply.id}",
            run_at=now,
            shop_id=request.shop_id,
        )
    return request


async def withdraw_cancellation(
    session: AsyncSession, actor: Actor, request_id: int, message: str | None, *, now: datetime | None = None
) -> CancellationRequest:
    """The merchant no longer wants the cancellation; the supplier order goes back to where it was."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    body = _message(message, required=False, why="")
    request, supplier_order = await _lock(session, actor, request_id)
    if request.status not in OPEN:
        raise DomainError.single(
            ErrorCode.INVALID_STATE,
            f"the request is {request.status}; only an open request (PENDING or INFO_REQUESTED) can be "
            "withdrawn",
            "id",
        )
    if body:
        _add_message(session, request, actor, body, now)
    _close(request, C.WITHDRAWN, now)
    restored = _restore(supplier_order, request, now)
    _event(
        session,
        actor,
        request,
        supplier_order,
        "cancellation_withdrawn",
        f"The merchant withdrew the cancellation of AliExpress order {supplier_order.aliexpress_order_id}",
        supplierOrderStatus=restored,
    )
    return request


async def auto_approve_cancellation(
    session: AsyncSession, actor: Actor, request_id: int, *, now: datetime | None = None
) -> CancellationRequest | None:
    """Approve for a supplier that let ``respond_by`` pass; None (nothing changed) unless PENDING and due."""
    if actor.kind is not ActorKind.SYSTEM:
        raise DomainError.single(ErrorCode.FORBIDDEN, "auto-approval is done by the system")
    now = now or utcnow()
    try:
        request, supplier_order = await _lock(session, actor, request_id)
    except DomainError:
        return None
    if request.status is not C.PENDING or request.respond_by is None or now < request.respond_by:
        return None
    _add_message(
        session,
        request,
        actor,
        "Approved automatically: the supplier did not decide before the deadline.",
        now,
    )
    await _approve(session, actor, request, supplier_order, C.AUTO_APPROVED, now)
    await announce(
        session,
        actor,
        Topic.CANCELLATION_REQUESTS_DECIDED,
        shop_id=request.shop_id,
        node_type="CancellationRequest",
        node_id=request.id,
        now=now,
    )
    return request


@reacts_to(SupplierOrderStatusChanged)
async def close_on_shipment(session: AsyncSession, actor: Actor, change: SupplierOrderStatusChanged) -> None:
    """Close the open request of a supplier order that just shipped; the caller holds its row lock."""
    supplier_order, now = change.supplier_order, change.occurred_at
    if change.previous is not S.IN_CANCEL or supplier_order.status not in SHIPPED:
        return
    request = await session.scalar(
        select(CancellationRequest)
        .where(CancellationRequest.open_key == supplier_order.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if request is None:
        return
    _close(request, C.CLOSED, now)
    _add_message(
        session,
        request,
        Actor.system(supplier_order.shop_id),
        "Closed: the supplier shipped the order before the request was decided.",
        now,
    )
    _event(
        session,
        actor,
        request,
        supplier_order,
        "cancellation_closed",
        f"Cancellation request closed: AliExpress order {supplier_order.aliexpress_order_id} shipped",
    )


@handler(AUTO_APPROVE_KIND)
async def run_auto_approval(ctx: JobContext, job: Job) -> None:
    """The deadline job enqueued with each PENDING request; safe to run twice (it re-checks the state)."""
    request_id = int(job.payload["requestId"])
    async with ctx.database.write() as session:
        await auto_approve_cancellation(session, Actor.system(job.shop_id), request_id, now=ctx.clock())


# --- steps shared by the use cases ----------------------------------------------------------------------


def _message(message: str | None, *, required: bool, why: str) -> str | None:
    body = (message or "").strip() or None
    if body is None and required:
        raise DomainError.single(ErrorCode.REQUIRED, why, "message")
    if body is not None and len(body) > MAX_MESSAGE_LENGTH:
        raise DomainError.single(
            ErrorCode.TOO_LONG, f"message is longer than {MAX_MESSAGE_LENGTH} characters", "message"
        )
    return body


async def _lock(
    session: AsyncSession, actor: Actor, request_id: int
) -> tuple[CancellationRequest, SupplierOrder]:
    """The request and its supplier order, both locked (supplier order first) and freshly read."""
    supplier_order_id = await session.scalar(
        select(CancellationRequest.supplier_order_id).where(
            CancellationRequest.id == request_id, visible(CancellationRequest, actor)
        )
    )
    if supplier_order_id is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "cancellation request not found", "id")
    supplier_order = await load_supplier_order(session, actor, supplier_order_id, for_update=True)
    request = (
        await session.scalars(
            select(CancellationRequest)
            .where(CancellationRequest.id == request_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return request, supplier_order


def _author(actor: Actor) -> MessageAuthor:
    if actor.is_merchant:
        return MessageAuthor.MERCHANT
    if actor.is_supplier:
        return MessageAuthor.SUPPLIER
    return MessageAuthor.SYSTEM


def _add_message(
    session: AsyncSession, request: CancellationRequest, actor: Actor, body: str, now: datetime
) -> CancellationMessage:
    message = CancellationMessage(
        shop_id=request.shop_id,
        request_id=request.id,
        author=_author(actor),
        author_name=actor.name,
        body=body,
        created_at=now,
    )
    session.add(message)
    return message


def _event(
    session: AsyncSession,
    actor: Actor,
    request: CancellationRequest,
    supplier_order: SupplierOrder,
    type: str,
    message: str,
    **data: object,
) -> None:
    record_event(
        session,
        actor,
        shop_id=request.shop_id,
        order_id=request.order_id,
        supplier_order_id=supplier_order.id,
        type=type,
        message=message,
        data={"cancellationRequestId": request.id, "status": request.status.value, **data},
    )


def _close(request: CancellationRequest, status: CancellationStatus, now: datetime) -> None:
    request.status = status
    request.open_key = None
    request.decided_at = now
    request.updated_at = now


def _restore(supplier_order: SupplierOrder, request: CancellationRequest, now: datetime) -> str:
    """Leave IN_CANCEL for the status the supplier order had before the request; returns the status."""
    if supplier_order.status is S.IN_CANCEL:
        supplier_order.status = request.previous_status
        supplier_order.updated_at = now
        supplier_order.order.updated_at = now
    return supplier_order.status.value


async def _approve(
    session: AsyncSession,
    actor: Actor,
    request: CancellationRequest,
    supplier_order: SupplierOrder,
    status: CancellationStatus,
    now: datetime,
) -> None:
    _close(request, status, now)
    automatic = status is C.AUTO_APPROVED
    _event(
        session,
        actor,
        request,
        supplier_order,
        "cancellation_auto_approved" if automatic else "cancellation_approved",
        f"Cancellation of AliExpress order {supplier_order.aliexpress_order_id} "
        + ("approved automatically after the deadline" if automatic else "approved by the supplier"),
    )
    await _cancel_supplier_order(session, actor, supplier_order, now)
    refund = SupplierRefund(
        shop_id=supplier_order.shop_id,
        supplier_order_id=supplier_order.id,
        amount=supplier_order.cost,
        currency=supplier_order.currency,
        source=REFUND_SOURCE,
        source_id=request.id,
        created_at=now,
    )
    session.add(refund)
    _event(
        session,
        actor,
        request,
        supplier_order,
        "supplier_refund_recorded",
        f"Supplier refund of {format_money(supplier_order.cost, supplier_order.currency)} recorded for "
        f"AliExpress order {supplier_order.aliexpress_order_id}",
        amount=str(quantize(supplier_order.cost, supplier_order.currency)),
        currency=supplier_order.currency,
    )


async def _cancel_supplier_order(
    session: AsyncSession, actor: Actor, supplier_order: SupplierOrder, now: datetime
) -> None:
    """Void the AliExpress trade, and cancel the store order once none of its supplier orders remains."""
    previous = supplier_order.status
    supplier_order.status = S.FINISH
    supplier_order.end_reason = CANCEL_END_REASON
    supplier_order.finished_at = now
    supplier_order.updated_at = now
    order = supplier_order.order
    order.updated_at = now
    await record_status_change(session, actor, supplier_order, previous, now)
    await refresh_order_status(session, actor, order, now)
