"""Disputes: a merchant asks a supplier for money back (or a replacement) after a supplier order shipped.

Statuses: AWAITING_SUPPLIER → SUPPLIER_RESPONDED (the supplier proposes a refund or a resend, or refuses);
SUPPLIER_RESPONDED → RESOLVED (the merchant accepts) | ESCALATED (the merchant escalates);
ESCALATED → RESOLVED (a platform ruling); AWAITING_SUPPLIER → RESOLVED when the supplier lets ``respond_by``
pass (the deadline job, for the requested amount); any open status → CANCELLED (the merchant).
A refund agreed on a RETURN_AND_REFUND dispute goes through AWAITING_RETURN: the refund is recorded once the
merchant gives the return's tracking number. While a dispute is open its supplier order shows IN_ISSUE.

Every use case locks the supplier order row first, then the dispute, in that order (as the cancellation
requests and ``update_supplier_order`` do), so that concurrent commands queue up and only the first one
finds the dispute in the state it expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from db.jobs import Job, JobContext, enqueue, handler
from db.models import (
    ActorKind,
    Dispute,
    DisputeAttachment,
    DisputeKind,
    DisputeMessage,
    DisputeMessageAuthor,
    DisputeOutcome,
    DisputeReason,
    DisputeResolutionAction,
    DisputeResponseAction,
    DisputeStatus,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)
from db.types import utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.evidence import EvidenceFile, EvidenceStore, is_media, sniff, url_content_type
from domain.figures import supplier_refunded
from domain.money import quantize
from domain.reactions import reacts_to
from domain.supplier_orders import (
    SupplierOrderStatusChanged,
    can_open_dispute,
    load_supplier_order,
    record_status_change,
    refresh_order_status,
)
from domain.topics import Topic, announce
from domain.validation import Checker, unsafe_text

D = DisputeStatus
S = SupplierOrderStatus
A = DisputeResponseAction

OPEN = frozenset({D.AWAITING_SUPPLIER, D.SUPPLIER_RESPONDED, D.ESCALATED, D.AWAITING_RETURN})
REFUND_SOURCE = "dispute"
DEADLINE_KIND = "disputes.resolve_overdue"
MAX_MESSAGE_LENGTH = 5000
MAX_ATTACHMENTS = 10
NODE_TYPE = "Dispute"


@dataclass(frozen=True)
class DisputeRules:
    """The settings disputes follow: protection window, supplier response time, evidence limits and store."""

    window: timedelta = timedelta(days=15)
    response_time: timedelta = timedelta(days=5)
    max_evidence_bytes: int = 20 * 1024 * 1024
    evidence_dir: Path = Path(".dropdesk/evidence")

    @classmethod
    def of(cls, settings: Settings) -> DisputeRules:
        return cls(
            window=timedelta(days=settings.dispute_window_days),
            response_time=timedelta(days=settings.dispute_response_days),
            max_evidence_bytes=settings.evidence_max_bytes,
            evidence_dir=settings.evidence_path,
        )


@dataclass(frozen=True)
class Evidence:
    """Files uploaded with a message and URLs given instead of files."""

    files: Sequence[EvidenceFile] = ()
    urls: Sequence[str] = ()

    def __bool__(self) -> bool:
        return bool(self.files or self.urls)


NO_EVIDENCE = Evidence()


# --- use cases ------------------------------------------------------------------------------------------


async def open_dispute(
    session: AsyncSession,
    actor: Actor,
    supplier_order_id: int,
    reason: DisputeReason,
    kind: DisputeKind,
    requested_amount: Decimal,
    message: str | None,
    evidence: Evidence = NO_EVIDENCE,
    *,
    rules: DisputeRules,
    now: datetime | None = None,
) -> Dispute:
    """Open a dispute on a shipped (or recently finished) supplier order; the supplier has until respondBy."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    body = _text(check, ("message",), message, required=True)
    _check_evidence(check, evidence, rules)
    check.raise_if_any()
    try:
        supplier_order = await load_supplier_order(session, actor, supplier_order_id, for_update=True)
    except DomainError:
        raise DomainError.single(ErrorCode.NOT_FOUND, "supplier order not found", "supplierOrderId") from None
    already_open = await session.scalar(select(Dispute.id).where(Dispute.open_key == supplier_order.id))
    if already_open is not None or supplier_order.status is S.IN_ISSUE:
        raise DomainError.single(
            ErrorCode.ALREADY_EXISTS, "this supplier order already has an open dispute", "supplierOrderId"
        )
    if not can_open_dispute(supplier_order, now=now, window=rules.window):
        raise DomainError.single(
            ErrorCode.NOT_DISPUTABLE,
            f"a supplier order in {supplier_order.status} cannot be disputed: only orders that have shipped, "
            f"or finished less than {rules.window.days} days ago, can",
            "supplierOrderId",
        )
    if await refundable(session, supplier_order) <= 0:
        raise DomainError.single(
            ErrorCode.NOT_DISPUTABLE,
            "the supplier has already refunded everything paid for this supplier order",
            "supplierOrderId",
        )
    amount = await _check_amount(session, supplier_order, requested_amount, "requestedAmount")

    dispute = Dispute(
        shop_id=supplier_order.shop_id,
        order_id=supplier_order.order_id,
        supplier_order_id=supplier_order.id,
        status=D.AWAITING_SUPPLIER,
        reason=reason,
        kind=kind,
        currency=supplier_order.currency,
        requested_amount=amount,
        open_key=supplier_order.id,
        previous_status=supplier_order.status,
        opened_by=actor.name,
        respond_by=now + rules.response_time,
        created_at=now,
        updated_at=now,
    )
    session.add(dispute)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        # The row lock above queues openings; the unique open_key still decides if anything slips past it.
        raise DomainError.single(
            ErrorCode.ALREADY_EXISTS, "this supplier order already has an open dispute", "supplierOrderId"
        ) from None
    await _add_message(session, dispute, actor, body or "", evidence, rules, now)
    _event(
        session,
        actor,
        dispute,
        "dispute_opened",
        f"Dispute opened on AliExpress order {supplier_order.aliexpress_order_id} ({reason}, {kind}): "
        f"{amount} {dispute.currency} requested",
        reason=reason.value,
        kind=kind.value,
        requestedAmount=str(amount),
        respondBy=dispute.respond_by.isoformat(),
    )
    previous = supplier_order.status
    supplier_order.status = S.IN_ISSUE
    supplier_order.updated_at = now
    supplier_order.order.updated_at = now
    await record_status_change(session, actor, supplier_order, previous, now)
    await refresh_order_status(session, actor, supplier_order.order, now)
    await enqueue(
        session,
        DEADLINE_KIND,
        {"disputeId": dispute.id},
        key=f"{DEADLINE_KIND}:{dispute.id}",
        run_at=dispute.respond_by,
        shop_id=dispute.shop_id,
    )
    await _announce(session, actor, dispute, now, Topic.DISPUTES_CREATED)
    return dispute


async def add_message(
    session: AsyncSession,
    actor: Actor,
    dispute_id: int,
    body: str | None,
    evidence: Evidence = NO_EVIDENCE,
    *,
    rules: DisputeRules,
    now: datetime | None = None,
) -> Dispute:
    """The merchant or the supplier adds to the thread of an open dispute, with evidence or without."""
    if not actor.is_supplier:
        require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    text = _text(check, ("body",), body, required=not evidence)
    _check_evidence(check, evidence, rules)
    check.raise_if_any()
    dispute, supplier_order = await _lock(session, actor, dispute_id)
    _require_status(dispute, OPEN, "a message is added to an open dispute")
    await _add_message(session, dispute, actor, text or "", evidence, rules, now)
    dispute.updated_at = now
    count = len(evidence.files) + len(evidence.urls)
    _event(
        session,
        actor,
        dispute,
        "dispute_message_added",
        f"{_author(actor).value.capitalize()} message on the dispute about AliExpress order "
        f"{supplier_order.aliexpress_order_id}" + (f" with {count} attachment(s)" if count else ""),
        attachments=count,
    )
    await _announce(session, actor, dispute, now)
    return dispute


async def respond(
    session: AsyncSession,
    actor: Actor,
    dispute_id: int,
    action: DisputeResponseAction,
    amount: Decimal | None,
    message: str | None,
    *,
    now: datetime | None = None,
) -> Dispute:
    """The supplier proposes a refund (of ``amount``) or a resend, or refuses; once, before any ruling."""
    if not actor.is_supplier:
        raise DomainError.single(ErrorCode.FORBIDDEN, "only the supplier of this order may respond")
    now = now or utcnow()
    check = Checker()
    body = _text(check, ("message",), message, required=action is A.REFUSE)
    if action is A.PROPOSE_REFUND and amount is None:
        check.fail(("amount",), "a refund proposal needs an amount", ErrorCode.REQUIRED)
    if action is not A.PROPOSE_REFUND and amount is not None:
        check.fail(("amount",), f"{action} takes no amount")
    check.raise_if_any()
    dispute, supplier_order = await _lock(session, actor, dispute_id)
    _require_status(dispute, {D.AWAITING_SUPPLIER}, "the supplier responds to a dispute awaiting it")
    if now >= dispute.respond_by:
        # The deadline job decides from here on, whether or not it has run yet: one outcome only.
        raise DomainError.single(
            ErrorCode.INVALID_STATE,
            f"the time to respond ended at {dispute.respond_by.isoformat()}; the dispute resolves for the merchant",
            "id",
        )
    proposed = await _check_amount(session, supplier_order, amount, "amount") if amount is not None else None
    if body:
        await _add_message(session, dispute, actor, body, NO_EVIDENCE, None, now)
    dispute.status = D.SUPPLIER_RESPONDED
    dispute.proposal_action = action
    dispute.proposal_amount = proposed
    dispute.proposed_at = now
    dispute.updated_at = now
    what = {
        A.PROPOSE_REFUND: f"proposes a refund of {proposed} {dispute.currency}",
        A.PROPOSE_RESEND: "proposes to send a replacement",
        A.REFUSE: "refuses",
    }[action]
    _event(
        session,
        actor,
        dispute,
        "dispute_supplier_responded",
        f"The supplier {what} on the dispute about AliExpress order {supplier_order.aliexpress_order_id}",
        action=action.value,
        amount=str(proposed) if proposed is not None else None,
    )
    await _announce(session, actor, dispute, now)
    return dispute


async def accept_proposal(
    session: AsyncSession, actor: Actor, dispute_id: int, *, now: datetime | None = None
) -> Dispute:
    """The merchant accepts what the supplier answered: the refund, the replacement, or the refusal."""
    if actor.is_supplier:
        raise DomainError.single(ErrorCode.FORBIDDEN, "a supplier cannot accept its own proposal")
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    dispute, supplier_order = await _lock(session, actor, dispute_id)
    _require_status(dispute, {D.SUPPLIER_RESPONDED}, "a proposal is accepted once the supplier responded")
    action = dispute.proposal_action
    _event(
        session,
        actor,
        dispute,
        "dispute_proposal_accepted",
        f"The merchant accepted the supplier's answer ({action}) on the dispute about AliExpress order "
        f"{supplier_order.aliexpress_order_id}",
        action=action.value if action else None,
    )
    if action is A.PROPOSE_REFUND:
        assert dispute.proposal_amount is not None
        amount = await _check_amount(session, supplier_order, dispute.proposal_amount, "id")
        await _settle_refund(session, actor, dispute, supplier_order, DisputeOutcome.AGREED, amount, now)
    elif action is A.PROPOSE_RESEND:
        _decide(dispute, actor, DisputeOutcome.AGREED, DisputeResolutionAction.RESEND, None, now)
        _event(
            session,
            actor,
            dispute,
            "dispute_replacement_shipping",
            f"The supplier sends a replacement for AliExpress order {supplier_order.aliexpress_order_id}; "
            "its package arrives with the supplier's tracking updates",
        )
        await _finish(session, actor, dispute, supplier_order, D.RESOLVED, now)
    else:
        _decide(dispute, actor, DisputeOutcome.SUPPLIER, DisputeResolutionAction.NONE, None, now)
        await _finish(session, actor, dispute, supplier_order, D.RESOLVED, now)
    await _announce(session, actor, dispute, now)
    return dispute


async def escalate(
    session: AsyncSession, actor: Actor, dispute_id: int, message: str | None, *, now: datetime | None = None
) -> Dispute:
    """The merchant disagrees with the supplier's answer and asks the platform to rule."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    body = _text(check, ("message",), message, required=True)
    check.raise_if_any()
    dispute, supplier_order = await _lock(session, actor, dispute_id)
    _require_status(dispute, {D.SUPPLIER_RESPONDED}, "a dispute is escalated once the supplier responded")
    await _add_message(session, dispute, actor, body or "", NO_EVIDENCE, None, now)
    dispute.status = D.ESCALATED
    dispute.updated_at = now
    _event(
        session,
        actor,
        dispute,
        "dispute_escalated",
        f"The merchant escalated the dispute about AliExpress order {supplier_order.aliexpress_order_id}",
    )
    await _announce(session, actor, dispute, now)
    return dispute


async def cancel(
    session: AsyncSession, actor: Actor, dispute_id: int, *, now: datetime | None = None
) -> Dispute:
    """The merchant drops an open dispute; the supplier order goes back to its status before."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    dispute, supplier_order = await _lock(session, actor, dispute_id)
    _require_status(dispute, OPEN, "only an open dispute can be cancelled")
    _event(
        session,
        actor,
        dispute,
        "dispute_cancelled",
        f"The merchant cancelled the dispute about AliExpress order {supplier_order.aliexpress_order_id}",
    )
    await _finish(session, actor, dispute, supplier_order, D.CANCELLED, now)
    await _announce(session, actor, dispute, now)
    return dispute


async def rule(
    session: AsyncSession,
    actor: Actor,
    dispute_id: int,
    outcome: DisputeOutcome,
    amount: Decimal | None,
    message: str | None,
    *,
    now: datetime | None = None,
) -> Dispute:
    """The platform rules on an escalated dispute: for the merchant (a refund) or for the supplier (nothing)."""
    if not actor.is_admin:
        raise DomainError.single(ErrorCode.FORBIDDEN, "only the platform (an admin token) rules on disputes")
    now = now or utcnow()
    check = Checker()
    body = _text(check, ("message",), message, required=False)
    if outcome is DisputeOutcome.AGREED:
        check.fail(("outcome",), "a ruling is for the MERCHANT or for the SUPPLIER")
    if outcome is DisputeOutcome.SUPPLIER and amount is not None:
        check.fail(("amount",), "a ruling for the supplier takes no amount")
    check.raise_if_any()
    dispute, supplier_order = await _lock(session, actor, dispute_id)
    _require_status(dispute, {D.ESCALATED}, "the platform rules on an escalated dispute")
    if body:
        await _add_message(session, dispute, actor, body, NO_EVIDENCE, None, now)
    _event(
        session,
        actor,
        dispute,
        "dispute_ruled",
        f"The platform ruled for the {outcome.value.lower()} on the dispute about AliExpress order "
        f"{supplier_order.aliexpress_order_id}",
        outcome=outcome.value,
    )
    if outcome is DisputeOutcome.MERCHANT:
        granted = await _check_amount(
            session, supplier_order, dispute.requested_amount if amount is None else amount, "amount"
        )
        await _settle_refund(session, actor, dispute, supplier_order, outcome, granted, now)
    else:
        _decide(dispute, actor, outcome, DisputeResolutionAction.NONE, None, now)
        await _finish(session, actor, dispute, supplier_order, D.RESOLVED, now)
    await _announce(session, actor, dispute, now)
    return dispute


async def mark_return_shipped(
    session: AsyncSession,
    actor: Actor,
    dispute_id: int,
    tracking_number: str | None,
    carrier: str | None,
    *,
    now: datetime | None = None,
) -> Dispute:
    """The merchant sent the goods back: with the return's tracking number the agreed refund is recorded."""
    require_scope(actor, Scope.WRITE_ORDERS)
    now = now or utcnow()
    check = Checker()
    tracking = _text(check, ("trackingNumber",), tracking_number, required=True, max_length=100)
    carrier_name = _text(check, ("carrier",), carrier, required=False, max_length=100)
    check.raise_if_any()
    dispute, supplier_order = await _lock(session, actor, dispute_id)
    _require_status(dispute, {D.AWAITING_RETURN}, "a return is shipped once a refund was agreed")
    dispute.return_tracking_number = tracking
    dispute.return_carrier = carrier_name
    dispute.return_shipped_at = now
    _event(
        session,
        actor,
        dispute,
        "dispute_return_shipped",
        f"Return of AliExpress order {supplier_order.aliexpress_order_id} shipped to the supplier "
        f"({tracking}{', ' + carrier_name if carrier_name else ''})",
        trackingNumber=tracking,
        carrier=carrier_name,
    )
    await _refund_and_resolve(session, actor, dispute, supplier_order, now)
    await _announce(session, actor, dispute, now)
    return dispute


async def resolve_overdue(
    session: AsyncSession, actor: Actor, dispute_id: int, *, now: datetime | None = None
) -> Dispute | None:
    """For a supplier that let ``respond_by`` pass: the merchant wins the requested amount. None if not due."""
    if actor.kind is not ActorKind.SYSTEM:
        raise DomainError.single(ErrorCode.FORBIDDEN, "deadlines are applied by the system")
    now = now or utcnow()
    try:
        dispute, supplier_order = await _lock(session, actor, dispute_id)
    except DomainError:
        return None
    if dispute.status is not D.AWAITING_SUPPLIER or now < dispute.respond_by:
        return None
    # Never more than is left to refund, whatever happened since the request.
    amount = min(dispute.requested_amount, await refundable(session, supplier_order))
    await _add_message(
        session,
        dispute,
        actor,
        "Resolved for the merchant: the supplier did not respond before the deadline.",
        NO_EVIDENCE,
        None,
        now,
    )
    _event(
        session,
        actor,
        dispute,
        "dispute_deadline_passed",
        f"The supplier did not respond in time on the dispute about AliExpress order "
        f"{supplier_order.aliexpress_order_id}; resolved for the merchant",
    )
    if amount > 0:
        await _settle_refund(session, actor, dispute, supplier_order, DisputeOutcome.MERCHANT, amount, now)
    else:
        _decide(dispute, actor, DisputeOutcome.MERCHANT, DisputeResolutionAction.NONE, None, now)
        await _finish(session, actor, dispute, supplier_order, D.RESOLVED, now)
    await _announce(session, actor, dispute, now)
    return dispute


@handler(DEADLINE_KIND)
async def run_deadline(ctx: JobContext, job: Job) -> None:
    """The job enqueued with each dispute; safe to run twice (it re-checks the state and the time)."""
    dispute_id = int(job.payload["disputeId"])
    async with ctx.database.write() as session:
        await resolve_overdue(session, Actor.system(job.shop_id), dispute_id, now=ctx.clock())


@reacts_to(SupplierOrderStatusChanged)
async def keep_in_issue_while_open(
    session: AsyncSession, actor: Actor, change: SupplierOrderStatusChanged
) -> None:
    """A supplier order with an open dispute stays IN_ISSUE until the dispute ends; the caller holds its lock."""
    supplier_order = change.supplier_order
    if change.previous is not S.IN_ISSUE or supplier_order.status is S.IN_ISSUE:
        return
    open_dispute = await session.scalar(select(Dispute.id).where(Dispute.open_key == supplier_order.id))
    if open_dispute is not None:
        raise DomainError.single(
            ErrorCode.INVALID_STATE,
            "the supplier order has an open dispute: it stays IN_ISSUE until the dispute is resolved",
            "status",
        )


# --- reading --------------------------------------------------------------------------------------------


async def refundable(session: AsyncSession, supplier_order: SupplierOrder) -> Decimal:
    """What was paid for the supplier order less the supplier refunds already received (any source)."""
    refunded = (await supplier_refunded(session, [supplier_order.id]))[supplier_order.id]
    return max(supplier_order.cost - refunded, Decimal(0))


# --- steps shared by the use cases ----------------------------------------------------------------------


def _text(
    check: Checker,
    path: tuple[str, ...],
    value: str | None,
    *,
    required: bool,
    max_length: int = MAX_MESSAGE_LENGTH,
) -> str | None:
    """The stripped text, or None when empty; every problem named after the field."""
    text = (value or "").strip() or None
    if text is None:
        if required:
            check.fail(path, f"{path[-1]} is required", ErrorCode.REQUIRED)
        return None
    bad = unsafe_text(text)
    if bad:
        check.fail(path, f"{path[-1]} {bad}")
        return None
    if len(text) > max_length:
        check.fail(path, f"{path[-1]} is longer than {max_length} characters", ErrorCode.TOO_LONG)
        return None
    return text


def _check_evidence(check: Checker, evidence: Evidence, rules: DisputeRules) -> None:
    if len(evidence.files) + len(evidence.urls) > MAX_ATTACHMENTS:
        check.fail(("evidence",), f"at most {MAX_ATTACHMENTS} attachments per message", ErrorCode.TOO_MANY)
        return
    limit_mb = rules.max_evidence_bytes / (1024 * 1024)
    for index, file in enumerate(evidence.files):
        path = ("evidence", str(index))
        if len(file.data) > rules.max_evidence_bytes:
            check.fail(path, f"the file is larger than {limit_mb:g} MB", ErrorCode.FILE_TOO_LARGE)
        elif not file.data:
            check.fail(path, "the file is empty")
        elif sniff(file.data) is None:
            check.fail(
                path,
                "the file is neither an image (JPEG, PNG, GIF, WebP, HEIC, AVIF) nor a video (MP4, MOV, WebM)",
                ErrorCode.UNSUPPORTED_FILE_TYPE,
            )
        if file.filename and unsafe_text(file.filename):
            check.fail(path, "the file name is not valid text")
    for index, url in enumerate(evidence.urls):
        path = ("evidenceUrls", str(index))
        before = len(check.errors)
        check.url(path, url)
        if len(check.errors) > before:
            continue
        if unsafe_text(url):
            check.fail(path, "the URL is not valid text")
            continue
        guessed = url_content_type(url)
        if guessed is not None and not is_media(guessed):
            check.fail(
                path,
                f"the URL names a {guessed} file; evidence is images or video",
                ErrorCode.UNSUPPORTED_FILE_TYPE,
            )


async def _check_amount(
    session: AsyncSession, supplier_order: SupplierOrder, amount: Decimal | None, field: str
) -> Decimal:
    """A positive amount in the supplier order's currency, at most what is still refundable."""
    check = Checker()
    if amount is None:
        raise DomainError.single(ErrorCode.REQUIRED, f"{field} is required", field)
    check.amount((field,), amount, supplier_order.currency, allow_zero=False)
    check.raise_if_any()
    available = await refundable(session, supplier_order)
    if amount > available:
        raise DomainError.single(
            ErrorCode.AMOUNT_TOO_LARGE,
            f"{amount} {supplier_order.currency} is more than what was paid for the supplier order less supplier "
            f"refunds already received ({quantize(available, supplier_order.currency)})",
            field,
        )
    return quantize(amount, supplier_order.currency)


async def _lock(session: AsyncSession, actor: Actor, dispute_id: int) -> tuple[Dispute, SupplierOrder]:
    """The dispute and its supplier order, both locked (supplier order first) and freshly read."""
    supplier_order_id = await session.scalar(
        select(Dispute.supplier_order_id).where(Dispute.id == dispute_id, visible(Dispute, actor))
    )
    if supplier_order_id is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "dispute not found", "id")
    supplier_order = await load_supplier_order(session, actor, supplier_order_id, for_update=True)
    dispute = (
        await session.scalars(
            select(Dispute)
            .where(Dispute.id == dispute_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return dispute, supplier_order


def _require_status(
    dispute: Dispute, allowed: frozenset[DisputeStatus] | set[DisputeStatus], rule: str
) -> None:
    if dispute.status not in allowed:
        raise DomainError.single(ErrorCode.INVALID_STATE, f"the dispute is {dispute.status}; {rule}", "id")


def _author(actor: Actor) -> DisputeMessageAuthor:
    if actor.is_merchant:
        return DisputeMessageAuthor.MERCHANT
    if actor.is_supplier:
        return DisputeMessageAuthor.SUPPLIER
    if actor.is_admin:
        return DisputeMessageAuthor.PLATFORM
    return DisputeMessageAuthor.SYSTEM


async def _add_message(
    session: AsyncSession,
    dispute: Dispute,
    actor: Actor,
    body: str,
    evidence: Evidence,
    rules: DisputeRules | None,
    now: datetime,
) -> DisputeMessage:
    message = DisputeMessage(
        shop_id=dispute.shop_id,
        dispute_id=dispute.id,
        author=_author(actor),
        author_name=actor.name,
        body=body,
        created_at=now,
        attachments=[],
    )
    if evidence.files:
        assert rules is not None
        store = EvidenceStore(rules.evidence_dir)
        for file in evidence.files:
            message.attachments.append(
                DisputeAttachment(
                    shop_id=dispute.shop_id,
                    dispute_id=dispute.id,
                    storage_key=await store.put(file.data),
                    filename=(file.filename or "")[:255] or None,
                    content_type=sniff(file.data),
                    size=len(file.data),
                    created_at=now,
                )
            )
    for url in evidence.urls:
        message.attachments.append(
            DisputeAttachment(
                shop_id=dispute.shop_id,
                dispute_id=dispute.id,
                url=url,
                content_type=url_content_type(url),
                created_at=now,
            )
        )
    session.add(message)
    return message


def _event(
    session: AsyncSession, actor: Actor, dispute: Dispute, type: str, message: str, **data: object
) -> None:
    record_event(
        session,
        actor,
        shop_id=dispute.shop_id,
        order_id=dispute.order_id,
        supplier_order_id=dispute.supplier_order_id,
        type=type,
        message=message,
        data={"disputeId": dispute.id, "status": dispute.status.value, **data},
    )


async def _announce(
    session: AsyncSession,
    actor: Actor,
    dispute: Dispute,
    now: datetime,
    topic: Topic = Topic.DISPUTES_UPDATED,
) -> None:
    await announce(
        session, actor, topic, shop_id=dispute.shop_id, node_type=NODE_TYPE, node_id=dispute.id, now=now
    )


def _decide(
    dispute: Dispute,
    actor: Actor,
    outcome: DisputeOutcome,
    action: DisputeResolutionAction,
    amount: Decimal | None,
    now: datetime,
) -> None:
    dispute.outcome = outcome
    dispute.resolution_action = action
    dispute.resolution_amount = amount
    dispute.decided_by = actor.kind
    dispute.decided_at = now
    dispute.updated_at = now


async def _settle_refund(
    session: AsyncSession,
    actor: Actor,
    dispute: Dispute,
    supplier_order: SupplierOrder,
    outcome: DisputeOutcome,
    amount: Decimal,
    now: datetime,
) -> None:
    """Decide a refund: recorded now, or once the goods are on their way back for RETURN_AND_REFUND."""
    _decide(dispute, actor, outcome, DisputeResolutionAction.REFUND, amount, now)
    if dispute.kind is DisputeKind.RETURN_AND_REFUND and dispute.return_shipped_at is None:
        dispute.status = D.AWAITING_RETURN
        await _add_message(
            session,
            dispute,
            Actor.system(dispute.shop_id),
            f"Refund of {amount} {dispute.currency} agreed. Send the goods back to the supplier and give the "
            "return's tracking number (disputeReturnShipped); the refund is recorded then.",
            NO_EVIDENCE,
            None,
            now,
        )
        _event(
            session,
            actor,
            dispute,
            "dispute_return_requested",
            f"Refund of {amount} {dispute.currency} agreed for AliExpress order "
            f"{supplier_order.aliexpress_order_id}; waiting for the return's tracking number",
            amount=str(amount),
        )
        return
    await _refund_and_resolve(session, actor, dispute, supplier_order, now)


async def _refund_and_resolve(
    session: AsyncSession, actor: Actor, dispute: Dispute, supplier_order: SupplierOrder, now: datetime
) -> None:
    amount = dispute.resolution_amount
    assert amount is not None
    session.add(
        SupplierRefund(
            shop_id=dispute.shop_id,
            supplier_order_id=supplier_order.id,
            amount=amount,
            currency=dispute.currency,
            source=REFUND_SOURCE,
            source_id=dispute.id,
            created_at=now,
        )
    )
    _event(
        session,
        actor,
        dispute,
        "supplier_refund_recorded",
        f"Supplier refund of {amount} {dispute.currency} recorded for AliExpress order "
        f"{supplier_order.aliexpress_order_id}",
        amount=str(amount),
        currency=dispute.currency,
    )
    await _finish(session, actor, dispute, supplier_order, D.RESOLVED, now)


async def _finish(
    session: AsyncSession,
    actor: Actor,
    dispute: Dispute,
    supplier_order: SupplierOrder,
    status: DisputeStatus,
    now: datetime,
) -> None:
    """Close the dispute and return the supplier order to where it was before IN_ISSUE."""
    dispute.status = status
    dispute.open_key = None
    dispute.closed_at = now
    dispute.updated_at = now
    if status is D.RESOLVED:
        outcome, action = dispute.outcome, dispute.resolution_action
        assert outcome is not None and action is not None
        _event(
            session,
            actor,
            dispute,
            "dispute_resolved",
            f"Dispute about AliExpress order {supplier_order.aliexpress_order_id} resolved: "
            f"{outcome.value.lower()}, {action.value.lower()}",
            outcome=outcome.value,
            action=action.value,
            amount=str(dispute.resolution_amount) if dispute.resolution_amount is not None else None,
        )
    if supplier_order.status is S.IN_ISSUE:
        await session.flush()  # the reaction below must see the dispute closed
        supplier_order.status = dispute.previous_status
        supplier_order.updated_at = now
        supplier_order.order.updated_at = now
        await record_status_change(session, actor, supplier_order, S.IN_ISSUE, now)
        await refresh_order_status(session, actor, supplier_order.order, now)
