"""Bulk actions: one action over every order matching a search query and/or a list of ids, run by one job.

The job walks the matching orders in keyset batches on the order id, one transaction per batch, and applies to
each order the very use case a single-order mutation runs (``add_order_tags``, ``remove_order_tags``,
``request_cancellation`` per unshipped supplier order). Each order's outcome is a row unique on (bulk action,
order), inserted before the action in the same transaction: a retried job, or two runs at once, find the row
and skip the order, so no order is done twice. EXPORT records every matching order, then hands the same scope
to one order export.

Statuses: PENDING → RUNNING → SUCCEEDED (every order has a result, whatever its outcome) | FAILED (the job
died on its last attempt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.jobs import Job, JobContext, add_with_job, handler
from db.models import (
    ActorKind,
    BulkAction,
    BulkActionKind,
    BulkActionResult,
    BulkActionStatus,
    CancellationReason,
    ExportFormat,
    Order,
    SupplierOrder,
    SupplierOrderStatus,
)
from db.search import SearchSyntaxError, order_filter
from db.types import utcnow
from domain import exports as export_cases
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.cancellations import request_cancellation
from domain.errors import DomainError, ErrorCode, FieldError
from domain.order_tags import add_order_tags, clean_tags, remove_order_tags
from domain.supplier_orders import SHIPPED
from domain.validation import Checker, unstorable

RUN_KIND = "bulk_actions.run"
RUN_ATTEMPTS = 5
MAX_IDS = 10_000
MAX_MESSAGE_LENGTH = 5000
DEFAULT_BATCH_ORDERS = 100
FINISHED = frozenset({BulkActionStatus.SUCCEEDED, BulkActionStatus.FAILED})


@dataclass(frozen=True)
class BulkActionRequest:
    action: BulkActionKind
    query: str | None = None
    order_ids: Sequence[int] | None = None
    tags: Sequence[str] = ()
    reason: CancellationReason | None = None
    message: str | None = None
    format: ExportFormat = ExportFormat.CSV
    email: str | None = None


def _required_scope(action: BulkActionKind) -> str:
    return Scope.WRITE_EXPORTS if action is BulkActionKind.EXPORT else Scope.WRITE_ORDERS


async def create_bulk_action(
    session: AsyncSession, actor: Actor, request: BulkActionRequest, *, now: datetime | None = None
) -> BulkAction:
    """Record the bulk action and enqueue its job; bad input is refused here, before any order is touched."""
    require_scope(actor, _required_scope(request.action))
    assert actor.shop_id is not None
    now = now or utcnow()
    check = Checker()
    query = request.query.strip() if request.query else None
    if query is not None and unstorable(query):
        check.fail(("query",), "query must not contain NUL characters or lone surrogates")
    elif query is not None:
        try:
            order_filter(query, now=now)
        except SearchSyntaxError as error:
            check.fail(("query",), f"invalid search query: {error}", ErrorCode.INVALID_QUERY)
    ids = list(dict.fromkeys(request.order_ids)) if request.order_ids is not None else None
    if query is None and ids is None:
        check.fail(
            ("query",),
            "give a query or ids: a bulk action never applies to every order by default",
            ErrorCode.REQUIRED,
        )
    if ids is not None and not ids:
        check.fail(("ids",), "give at least one order id", ErrorCode.REQUIRED)
    if ids is not None and len(ids) > MAX_IDS:
        check.fail(("ids",), f"at most {MAX_IDS} ids; use a query for more", ErrorCode.TOO_MANY)
    tags: list[str] = []
    if request.action in (BulkActionKind.ADD_TAGS, BulkActionKind.REMOVE_TAGS):
        try:
            tags = clean_tags(request.tags)
        except DomainError as error:
            check.errors.extend(error.errors)
    message = (request.message or "").strip() or None
    if request.action is BulkActionKind.CANCEL_UNSHIPPED:
        if request.reason is None:
            check.fail(("reason",), "CANCEL_UNSHIPPED needs a reason", ErrorCode.REQUIRED)
        elif request.reason is CancellationReason.OTHER and message is None:
            check.fail(("message",), "a reason of OTHER needs a message", ErrorCode.REQUIRED)
    if message is not None and unstorable(message):
        check.fail(("message",), "message must not contain NUL characters or lone surrogates")
    elif message is not None and len(message) > MAX_MESSAGE_LENGTH:
        check.fail(
            ("message",), f"message is longer than {MAX_MESSAGE_LENGTH} characters", ErrorCode.TOO_LONG
        )
    email = request.email.strip() if request.email else None
    if email is not None and unstorable(email):
        check.fail(("email",), "email must not contain NUL characters or lone surrogates")
    else:
        check.email(("email",), email)
    check.raise_if_any()
    if ids:
        found = set(
            (
                await session.execute(select(Order.id).where(visible(Order, actor), Order.id.in_(ids)))
            ).scalars()
        )
        missing = [index for index, pk in enumerate(ids) if pk not in found]
        if missing:
            raise DomainError.single(ErrorCode.NOT_FOUND, "order not found", "ids", str(missing[0]))
    bulk = BulkAction(
        shop_id=actor.shop_id,
        action=request.action,
        status=BulkActionStatus.PENDING,
        query=query,
        order_ids=ids,
        tags=tags,
        reason=request.reason.value if request.reason else None,
        message=message,
        format=request.format if request.action is BulkActionKind.EXPORT else None,
        email=email,
        requested_by=actor.name,
        scopes=sorted(actor.scopes),
        done=0,
        failed=0,
        created_at=now,
    )
    await add_with_job(session, bulk, RUN_KIND, "bulkActionId", max_attempts=RUN_ATTEMPTS)
    return bulk


async def get_bulk_action(session: AsyncSession, actor: Actor, bulk_action_id: int) -> BulkAction | None:
    return await session.scalar(
        select(BulkAction).where(BulkAction.id == bulk_action_id, visible(BulkAction, actor))
    )


def scope_clause(bulk: BulkAction) -> ColumnElement[bool]:
    """The orders the bulk action covers; relative dates in its query are read at its creation time."""
    clause: ColumnElement[bool] = Order.shop_id == bulk.shop_id
    if bulk.query:
        clause = and_(clause, order_filter(bulk.query, now=bulk.created_at))
    if bulk.order_ids is not None:
        clause = and_(clause, Order.id.in_(bulk.order_ids))
    return clause


def acting_merchant(bulk: BulkAction) -> Actor:
    """The merchant who asked, so that every change is theirs on the timeline and under their scopes."""
    return Actor(
        kind=ActorKind.MERCHANT,
        name=bulk.requested_by,
        shop_id=bulk.shop_id,
        scopes=frozenset(bulk.scopes),
    )


# --- one order ------------------------------------------------------------------------------------------


async def _cancel_unshipped(
    session: AsyncSession,
    actor: Actor,
    bulk: BulkAction,
    order_id: int,
    response_time: timedelta,
    now: datetime,
) -> list[FieldError]:
    """Ask to cancel each supplier order of the order that has not shipped; each one succeeds or fails alone."""
    supplier_orders = (
        await session.execute(
            select(SupplierOrder.id, SupplierOrder.aliexpress_order_id, SupplierOrder.status)
            .where(SupplierOrder.order_id == order_id, visible(SupplierOrder, actor))
            .order_by(SupplierOrder.id)
        )
    ).all()
    unshipped = [
        row
        for row in supplier_orders
        if row.status not in SHIPPED and row.status is not SupplierOrderStatus.FINISH
    ]
    if not unshipped:
        return [
            FieldError(
                field=("orderId",),
                message="nothing to cancel: every supplier order of this order has shipped or finished",
                code=ErrorCode.NOT_CANCELLABLE,
            )
        ]
    assert bulk.reason is not None
    errors: list[FieldError] = []
    for row in unshipped:
        try:
            async with session.begin_nested():
                await request_cancellation(
                    session,
                    actor,
                    row.id,
                    CancellationReason(bulk.reason),
                    bulk.message,
                    response_time=response_time,
                    now=now,
                )
        except DomainError as error:
            errors.extend(
                FieldError(
                    field=("supplierOrders", row.aliexpress_order_id),
                    message=f"AliExpress order {row.aliexpress_order_id}: {item.message}",
                    code=item.code,
                )
                for item in error.errors
            )
    return errors


async def _apply(
    session: AsyncSession,
    actor: Actor,
    bulk: BulkAction,
    order_id: int,
    response_time: timedelta,
    now: datetime,
) -> list[FieldError]:
    if bulk.action is BulkActionKind.EXPORT:
        return []  # the order is in the export's scope; the file is built once, after the last batch
    if bulk.action is BulkActionKind.CANCEL_UNSHIPPED:
        return await _cancel_unshipped(session, actor, bulk, order_id, response_time, now)
    use_case = add_order_tags if bulk.action is BulkActionKind.ADD_TAGS else remove_order_tags
    try:
        async with session.begin_nested():
            await use_case(session, actor, order_id, bulk.tags, now=now)
    except DomainError as error:
        return list(error.errors)
    return []


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def _claim(session: AsyncSession, bulk: BulkAction, order_id: int, now: datetime) -> int | None:
    """The new result row's id, or None when the order already has one (done before, or by a concurrent run).

    On PostgreSQL a concurrent run's uncommitted row makes this insert wait for that run's commit, then skip.
    """
    statement = (
        _insert(session)(BulkActionResult)
        .values(
            shop_id=bulk.shop_id,
            bulk_action_id=bulk.id,
            order_id=order_id,
            ok=True,
            errors=[],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[BulkActionResult.bulk_action_id, BulkActionResult.order_id])
        .returning(BulkActionResult.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def run_batch(
    session: AsyncSession,
    bulk: BulkAction,
    order_ids: Sequence[int],
    *,
    response_time: timedelta,
    now: datetime,
) -> int:
    """Apply the action to each order of the batch that has no result yet; returns how many it handled."""
    actor = acting_merchant(bulk)
    handled = 0
    for order_id in order_ids:
        result_id = await _claim(session, bulk, order_id, now)
        if result_id is None:
            continue
        handled += 1
        errors = await _apply(session, actor, bulk, order_id, response_time, now)
        if errors:
            await session.execute(
                update(BulkActionResult)
                .where(BulkActionResult.id == result_id)
                .values(
                    ok=False,
                    errors=[
                        {"field": list(e.field), "message": e.message, "code": e.code.value} for e in errors
                    ],
                )
            )
    await _count_results(session, bulk.id)
    return handled


async def _count_results(session: AsyncSession, bulk_action_id: int) -> None:
    """Progress from the result rows themselves, so concurrent runs cannot double-count."""
    results = select(func.count()).where(BulkActionResult.bulk_action_id == bulk_action_id)
    await session.execute(
        update(BulkAction)
        .where(BulkAction.id == bulk_action_id)
        .values(
            done=results.scalar_subquery(),
            failed=results.where(BulkActionResult.ok.is_(False)).scalar_subquery(),
        )
    )


# --- the job --------------------------------------------------------------------------------------------


async def _start(session: AsyncSession, bulk_action_id: int, now: datetime) -> BulkAction | None:
    bulk = await session.scalar(
        select(BulkAction)
        .where(BulkAction.id == bulk_action_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if bulk is None or bulk.status in FINISHED:
        return None
    if bulk.status is BulkActionStatus.PENDING:
        bulk.status = BulkActionStatus.RUNNING
        bulk.started_at = now
    if bulk.total is None:
        bulk.total = int(
            (
                await session.execute(select(func.count()).select_from(Order).where(scope_clause(bulk)))
            ).scalar_one()
        )
    return bulk


async def run_bulk_action(
    ctx: JobContext, bulk_action_id: int, *, batch_orders: int | None = None
) -> BulkAction | None:
    """Run (or resume) a bulk action to the end; None when there is nothing left to do."""
    now = ctx.clock()
    async with ctx.database.write() as session:
        bulk = await _start(session, bulk_action_id, now)
    if bulk is None:
        return None
    size = batch_orders or ctx.settings.bulk_action_batch_orders
    response_time = timedelta(hours=ctx.settings.cancellation_response_hours)
    clause = scope_clause(bulk)
    after = 0
    while True:
        async with ctx.database.read() as session:
            ids = list(
                (
                    await session.execute(
                        select(Order.id).where(clause, Order.id > after).order_by(Order.id).limit(size)
                    )
                ).scalars()
            )
        if not ids:
            break
        async with ctx.database.write() as session:
            await run_batch(session, bulk, ids, response_time=response_time, now=ctx.clock())
        after = ids[-1]
        if len(ids) < size:
            break
    return await _finish(ctx, bulk.id)


async def _finish(ctx: JobContext, bulk_action_id: int) -> BulkAction | None:
    now = ctx.clock()
    async with ctx.database.write() as session:
        bulk = await session.scalar(
            select(BulkAction)
            .where(BulkAction.id == bulk_action_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if bulk is None or bulk.status in FINISHED:
            return bulk
        await _count_results(session, bulk.id)
        await session.refresh(bulk)
        if bulk.action is BulkActionKind.EXPORT and bulk.export_id is None and bulk.done:
            export = await export_cases.create_export(
                session,
                acting_merchant(bulk),
                export_cases.ExportRequest(
                    format=bulk.format or ExportFormat.CSV,
                    query=bulk.query,
                    order_ids=bulk.order_ids,
                    email=bulk.email,
                ),
                now=now,
            )
            bulk.export_id = export.id
        # Orders that stopped matching while the job ran are not counted: the total is what was done.
        bulk.total = bulk.done
        bulk.status = BulkActionStatus.SUCCEEDED
        bulk.finished_at = now
        return bulk


async def fail_bulk_action(ctx: JobContext, bulk_action_id: int, error: str) -> None:
    async with ctx.database.write() as session:
        await session.execute(
            update(BulkAction)
            .where(BulkAction.id == bulk_action_id, BulkAction.status.not_in(FINISHED))
            .values(status=BulkActionStatus.FAILED, error=error[:2000], finished_at=ctx.clock())
        )


@handler(RUN_KIND)
async def run_bulk_action_job(ctx: JobContext, job: Job) -> None:
    """Safe to run again and concurrently: orders with a result are skipped."""
    bulk_action_id = int(job.payload["bulkActionId"])
    try:
        await run_bulk_action(ctx, bulk_action_id)
    except SearchSyntaxError as error:
        # The syntax changed since the action was asked for: retrying cannot help, so say why at once.
        await fail_bulk_action(ctx, bulk_action_id, f"invalid search query: {error}")
    except Exception as error:
        if job.attempts >= job.max_attempts:
            await fail_bulk_action(ctx, bulk_action_id, f"{type(error).__name__}: {error}")
        raise
