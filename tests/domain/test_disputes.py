"""Disputes at the domain level: every transition and every refusal, on a real database session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from api.worker import Worker
from config.settings import Settings
from db.engine import Database
from db.jobs import Job
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
    OrderEvent,
    OrderStatus,
    Package,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)
from domain import disputes as cases
from domain.actors import Actor
from domain.disputes import DEADLINE_KIND, DisputeRules, Evidence
from domain.errors import DomainError, ErrorCode
from domain.evidence import EvidenceFile, EvidenceStore, sniff
from domain.reactions import reacts_to
from domain.supplier_orders import PackageInput, SupplierOrderChange, can_open_dispute, update_supplier_order
from domain.topics import Topic, TopicChanged
from tests.domain.test_cancellations import Clock, Scene, make_scene
from tests.factories import Tenant

D = DisputeStatus
S = SupplierOrderStatus
A = DisputeResponseAction
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAYS_5 = timedelta(days=5)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(64)

ANNOUNCED: list[TopicChanged] = []


@reacts_to(TopicChanged)
async def _remember(session: Any, actor: Actor, change: TopicChanged) -> None:
    if change.node_type == "Dispute":
        ANNOUNCED.append(change)


@pytest.fixture
def rules(tmp_path: Path) -> DisputeRules:
    return DisputeRules(max_evidence_bytes=1000, evidence_dir=tmp_path / "evidence")


@dataclass
class Disputes:
    """Use cases of one scene, with fixed times, as the merchant, the supplier, the platform and the system."""

    scene: Scene
    rules: DisputeRules
    # The supplier acting by default: the one of the supplier order the dispute under test is about.
    supplier_index: int = 0

    @property
    def supplier(self) -> Actor:
        return self.scene.supplier(self.supplier_index)

    @property
    def db(self) -> Database:
        return self.scene.db

    @property
    def admin(self) -> Actor:
        return Actor(kind=ActorKind.ADMIN, name="platform")

    async def open(
        self,
        amount: str = "5.00",
        *,
        kind: DisputeKind = DisputeKind.REFUND_ONLY,
        message: str | None = "arrived broken",
        evidence: Evidence = cases.NO_EVIDENCE,
        actor: Actor | None = None,
        index: int = 0,
        now: datetime = T0,
    ) -> Dispute:
        async with self.db.write() as session:
            return await cases.open_dispute(
                session,
                actor or self.scene.merchant,
                self.scene.supplier_order_ids[index],
                DisputeReason.DAMAGED,
                kind,
                Decimal(amount),
                message,
                evidence,
                rules=self.rules,
                now=now,
            )

    async def respond(
        self,
        pk: int,
        action: DisputeResponseAction = A.PROPOSE_REFUND,
        amount: str | None = "4.00",
        message: str | None = None,
        *,
        actor: Actor | None = None,
        now: datetime = T0 + timedelta(days=1),
    ) -> Dispute:
        async with self.db.write() as session:
            return await cases.respond(
                session,
                actor or self.supplier,
                pk,
                action,
                Decimal(amount) if amount is not None else None,
                message,
                now=now,
            )

    async def accept(self, pk: int, *, actor: Actor | None = None) -> Dispute:
        async with self.db.write() as session:
            return await cases.accept_proposal(
                session, actor or self.scene.merchant, pk, now=T0 + timedelta(days=2)
            )

    async def escalate(self, pk: int, message: str | None = "photos show the damage") -> Dispute:
        async with self.db.write() as session:
            return await cases.escalate(session, self.scene.merchant, pk, message, now=T0 + timedelta(days=2))

    async def cancel(self, pk: int, *, actor: Actor | None = None) -> Dispute:
        async with self.db.write() as session:
            return await cases.cancel(session, actor or self.scene.merchant, pk, now=T0 + timedelta(days=2))

    async def rule(
        self,
        pk: int,
        outcome: DisputeOutcome = DisputeOutcome.MERCHANT,
        amount: str | None = None,
        *,
        actor: Actor | None = None,
    ) -> Dispute:
        async with self.db.write() as session:
            return await cases.rule(
                session,
                actor or self.admin,
                pk,
                outcome,
                Decimal(amount) if amount is not None else None,
                "ruled on the photos",
                now=T0 + timedelta(days=3),
            )

    async def return_shipped(self, pk: int, tracking: str | None = "RR123456789CN") -> Dispute:
        async with self.db.write() as session:
            return await cases.mark_return_shipped(
                session, self.scene.merchant, pk, tracking, "China Post", now=T0 + timedelta(days=4)
            )

    async def message(
        self, pk: int, body: str | None = "more photos", evidence: Evidence = cases.NO_EVIDENCE, **kw: Any
    ) -> Dispute:
        actor = kw.pop("actor", None) or self.scene.merchant
        async with self.db.write() as session:
            return await cases.add_message(
                session, actor, pk, body, evidence, rules=self.rules, now=T0 + timedelta(hours=5)
            )

    async def deadline(self, pk: int, now: datetime = T0 + DAYS_5) -> Dispute | None:
        async with self.db.write() as session:
            return await cases.resolve_overdue(session, self.scene.system, pk, now=now)

    async def get(self, pk: int) -> Dispute:
        async with self.db.read() as session:
            row = await session.get(Dispute, pk)
        assert row is not None
        return row

    async def refunds(self) -> list[SupplierRefund]:
        async with self.db.read() as session:
            return list(await session.scalars(select(SupplierRefund).order_by(SupplierRefund.id)))


async def make(
    db: Database, tenant: Tenant, rules: DisputeRules, status: SupplierOrderStatus = S.WAIT_BUYER_ACCEPT_GOODS
) -> Disputes:
    ANNOUNCED.clear()
    return Disputes(await make_scene(db, tenant, status), rules)


async def refused(action: Awaitable[object]) -> tuple[ErrorCode, tuple[str, ...]]:
    with pytest.raises(DomainError) as caught:
        await action
    return caught.value.errors[0].code, caught.value.errors[0].field


# --- opening --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS, S.FUND_PROCESSING])
async def test_opening_on_a_shipped_order_puts_it_in_issue_with_a_deadline(
    db: Database, tenant: Tenant, rules: DisputeRules, status: SupplierOrderStatus
) -> None:
    disputes = await make(db, tenant, rules, status)
    dispute = await disputes.open(
        evidence=Evidence(files=[EvidenceFile("crack.png", PNG)], urls=["https://img.example/a.jpg"])
    )
    row = await disputes.get(dispute.id)
    assert (row.status, row.respond_by, row.previous_status, row.requested_amount) == (
        D.AWAITING_SUPPLIER,
        T0 + DAYS_5,
        status,
        Decimal("5.00"),
    )
    assert row.open_key == disputes.scene.supplier_order_ids[0]
    assert (await disputes.scene.supplier_order()).status is S.IN_ISSUE
    async with db.read() as session:
        job = (await session.scalars(select(Job).where(Job.kind == DEADLINE_KIND))).one()
        attachments = list(await session.scalars(select(DisputeAttachment).order_by(DisputeAttachment.id)))
        author = await session.scalar(select(DisputeMessage.author))
    assert (job.run_at, job.payload) == (T0 + DAYS_5, {"disputeId": dispute.id})
    assert author is DisputeMessageAuthor.MERCHANT
    upload, link = attachments
    assert (upload.content_type, upload.size, upload.filename, upload.url) == (
        "image/png",
        len(PNG),
        "crack.png",
        None,
    )
    assert upload.storage_key is not None
    assert EvidenceStore(rules.evidence_dir).path(upload.storage_key).read_bytes() == PNG
    assert (link.url, link.content_type, link.storage_key) == (
        "https://img.example/a.jpg",
        "image/jpeg",
        None,
    )
    types = await disputes.scene.event_types()
    assert types[-2:] == ["dispute_opened", "supplier_order_status_changed"]
    assert [(c.topic, c.node_id) for c in ANNOUNCED] == [(Topic.DISPUTES_CREATED, dispute.id)]


@pytest.mark.parametrize("status", [S.PLACE_ORDER_SUCCESS, S.WAIT_SELLER_SEND_GOODS, S.IN_FROZEN, S.FINISH])
async def test_not_shipped_is_not_disputable(
    db: Database, tenant: Tenant, rules: DisputeRules, status: SupplierOrderStatus
) -> None:
    # FINISH here was imported without a shipment (shipped_at unknown): nothing to dispute.
    disputes = await make(db, tenant, rules, status)
    assert await refused(disputes.open()) == (ErrorCode.NOT_DISPUTABLE, ("supplierOrderId",))
    assert await disputes.scene.count(Dispute) == 0


async def test_finished_orders_are_disputable_within_the_window_only(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    pk = disputes.scene.supplier_order_ids[0]
    async with db.write() as session:
        await session.execute(
            update(SupplierOrder)
            .where(SupplierOrder.id == pk)
            .values(status=S.FINISH, shipped_at=T0 - timedelta(days=20), finished_at=T0 - timedelta(days=15))
        )
    so = await disputes.scene.supplier_order()
    assert can_open_dispute(so, now=T0, window=rules.window)
    assert not can_open_dispute(so, now=T0 + timedelta(seconds=1), window=rules.window)
    assert await refused(disputes.open(now=T0 + timedelta(seconds=1))) == (
        ErrorCode.NOT_DISPUTABLE,
        ("supplierOrderId",),
    )
    dispute = await disputes.open(now=T0)
    assert (await disputes.scene.supplier_order()).status is S.IN_ISSUE
    assert (await disputes.scene.order()).status is OrderStatus.OPEN
    await disputes.cancel(dispute.id)
    restored = await disputes.scene.supplier_order()
    assert (restored.status, restored.finished_at) == (S.FINISH, T0 - timedelta(days=15))


async def test_one_open_dispute_per_supplier_order_then_another_after(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    first = await disputes.open("5.00")
    assert (await refused(disputes.open("1.00")))[0] is ErrorCode.ALREADY_EXISTS
    await disputes.respond(first.id, amount="5.00")
    await disputes.accept(first.id)
    # 9.10 paid, 5.00 refunded: 4.10 is left to dispute, not a cent more.
    assert await refused(disputes.open("4.11")) == (ErrorCode.AMOUNT_TOO_LARGE, ("requestedAmount",))
    second = await disputes.open("4.10")
    assert (await disputes.get(second.id)).status is D.AWAITING_SUPPLIER


async def test_nothing_left_to_refund_is_not_disputable(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open("9.10")).id
    await disputes.respond(pk, amount="9.10")
    await disputes.accept(pk)
    so = await disputes.scene.supplier_order()
    assert can_open_dispute(so, now=T0, window=rules.window)  # by status and time alone, yes
    assert await refused(disputes.open("0.01")) == (ErrorCode.NOT_DISPUTABLE, ("supplierOrderId",))


async def test_the_database_refuses_a_second_open_dispute_on_its_own(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    first = await disputes.open()
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(replace_dispute(first))
    assert await disputes.scene.count(Dispute) == 1


def replace_dispute(row: Dispute) -> Dispute:
    return Dispute(
        shop_id=row.shop_id,
        order_id=row.order_id,
        supplier_order_id=row.supplier_order_id,
        status=D.AWAITING_SUPPLIER,
        reason=DisputeReason.OTHER,
        kind=DisputeKind.REFUND_ONLY,
        currency="USD",
        requested_amount=Decimal(1),
        open_key=row.supplier_order_id,
        previous_status=S.WAIT_BUYER_ACCEPT_GOODS,
        opened_by="racer",
        respond_by=T0,
    )


# --- refusals, each with its code -----------------------------------------------------------------------

BIG = b"\x89PNG\r\n\x1a\n" + bytes(1000)  # one byte past the 1,000-byte cap of these tests


Refusal = Callable[[Disputes, int], Awaitable[object]]

REFUSALS: list[tuple[str, Refusal, ErrorCode, tuple[str, ...]]] = [
    ("three decimals", lambda d, _: d.open("1.005"), ErrorCode.INVALID, ("requestedAmount",)),
    ("above paid", lambda d, _: d.open("9.11"), ErrorCode.AMOUNT_TOO_LARGE, ("requestedAmount",)),
    ("zero", lambda d, _: d.open("0"), ErrorCode.INVALID, ("requestedAmount",)),
    ("negative", lambda d, _: d.open("-1"), ErrorCode.INVALID, ("requestedAmount",)),
    ("no message", lambda d, _: d.open(message="  "), ErrorCode.REQUIRED, ("message",)),
    ("NUL in message", lambda d, _: d.open(message="a\x00b"), ErrorCode.INVALID, ("message",)),
    ("lone surrogate", lambda d, _: d.open(message="a\ud800b"), ErrorCode.INVALID, ("message",)),
    ("too long", lambda d, _: d.open(message="x" * 5001), ErrorCode.TOO_LONG, ("message",)),
    (
        "wrong upload type",
        lambda d, _: d.open(evidence=Evidence(files=[EvidenceFile("notes.txt", b"just text")])),
        ErrorCode.UNSUPPORTED_FILE_TYPE,
        ("evidence", "0"),
    ),
    (
        "png name, script inside",
        lambda d, _: d.open(evidence=Evidence(files=[EvidenceFile("x.png", b"<script>alert(1)</script>")])),
        ErrorCode.UNSUPPORTED_FILE_TYPE,
        ("evidence", "0"),
    ),
    (
        "oversized upload",
        lambda d, _: d.open(evidence=Evidence(files=[EvidenceFile("big.png", BIG)])),
        ErrorCode.FILE_TOO_LARGE,
        ("evidence", "0"),
    ),
    (
        "empty upload",
        lambda d, _: d.open(evidence=Evidence(files=[EvidenceFile("e.png", b"")])),
        ErrorCode.INVALID,
        ("evidence", "0"),
    ),
    (
        "too many attachments",
        lambda d, _: d.open(evidence=Evidence(urls=[f"https://img.example/{n}.jpg" for n in range(11)])),
        ErrorCode.TOO_MANY,
        ("evidence",),
    ),
    (
        "url not http",
        lambda d, _: d.open(evidence=Evidence(urls=["javascript:alert(1)"])),
        ErrorCode.INVALID,
        ("evidenceUrls", "0"),
    ),
    (
        "url to a program",
        lambda d, _: d.open(evidence=Evidence(urls=["https://x.example/setup.exe"])),
        ErrorCode.UNSUPPORTED_FILE_TYPE,
        ("evidenceUrls", "0"),
    ),
    ("supplier opens", lambda d, _: d.open(actor=d.supplier), ErrorCode.FORBIDDEN, ()),
    ("admin opens", lambda d, _: d.open(actor=d.admin), ErrorCode.FORBIDDEN, ()),
    ("merchant responds", lambda d, pk: d.respond(pk, actor=d.scene.merchant), ErrorCode.FORBIDDEN, ()),
    (
        "other supplier responds",
        lambda d, pk: d.respond(pk, actor=d.scene.supplier(0)),
        ErrorCode.NOT_FOUND,
        ("id",),
    ),
    ("late response", lambda d, pk: d.respond(pk, now=T0 + DAYS_5), ErrorCode.INVALID_STATE, ("id",)),
    ("refund without amount", lambda d, pk: d.respond(pk, amount=None), ErrorCode.REQUIRED, ("amount",)),
    (
        "refund above paid",
        lambda d, pk: d.respond(pk, amount="10.11"),
        ErrorCode.AMOUNT_TOO_LARGE,
        ("amount",),
    ),
    ("refund three decimals", lambda d, pk: d.respond(pk, amount="1.001"), ErrorCode.INVALID, ("amount",)),
    (
        "resend with amount",
        lambda d, pk: d.respond(pk, A.PROPOSE_RESEND, "1.00"),
        ErrorCode.INVALID,
        ("amount",),
    ),
    ("refuse without reason", lambda d, pk: d.respond(pk, A.REFUSE, None), ErrorCode.REQUIRED, ("message",)),
    ("supplier accepts", lambda d, pk: d.accept(pk, actor=d.supplier), ErrorCode.FORBIDDEN, ()),
    ("supplier cancels", lambda d, pk: d.cancel(pk, actor=d.supplier), ErrorCode.FORBIDDEN, ()),
    ("merchant rules", lambda d, pk: d.rule(pk, actor=d.scene.merchant), ErrorCode.FORBIDDEN, ()),
    ("supplier rules", lambda d, pk: d.rule(pk, actor=d.supplier), ErrorCode.FORBIDDEN, ()),
    ("escalate without message", lambda d, pk: d.escalate(pk, None), ErrorCode.REQUIRED, ("message",)),
    ("empty message", lambda d, pk: d.message(pk, None), ErrorCode.REQUIRED, ("body",)),
    (
        "other supplier's message",
        lambda d, pk: d.message(pk, actor=d.scene.supplier(0)),
        ErrorCode.NOT_FOUND,
        ("id",),
    ),
    (
        "oversized upload in a message",
        lambda d, pk: d.message(pk, None, Evidence(files=[EvidenceFile("big.png", BIG)])),
        ErrorCode.FILE_TOO_LARGE,
        ("evidence", "0"),
    ),
    (
        "return without tracking",
        lambda d, pk: d.return_shipped(pk, None),
        ErrorCode.REQUIRED,
        ("trackingNumber",),
    ),
    (
        "supplier leaves IN_ISSUE",
        lambda d, _: _supplier_finishes(d),
        ErrorCode.INVALID_STATE,
        ("status",),
    ),
]


async def _supplier_finishes(disputes: Disputes) -> None:
    async with disputes.db.write() as session:
        await update_supplier_order(
            session,
            disputes.supplier,
            disputes.scene.supplier_order_ids[1],
            SupplierOrderChange(status=S.FINISH),
        )


@pytest.mark.parametrize(("name", "action", "code", "field"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refusal(
    db: Database,
    tenant: Tenant,
    rules: DisputeRules,
    name: str,
    action: Refusal,
    code: ErrorCode,
    field: tuple[str, ...],
) -> None:
    disputes = await make(db, tenant, rules)
    # An open dispute on the second supplier order is the target of the actions on an existing dispute;
    # openings are tried on the first.
    existing = await disputes.open("2.00", index=1)
    disputes.supplier_index = 1
    before = await disputes.get(existing.id)
    events, announced = await disputes.scene.count(OrderEvent), len(ANNOUNCED)
    assert await refused(action(disputes, existing.id)) == (code, field)
    after = await disputes.get(existing.id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)
    assert await disputes.scene.count(Dispute) == 1
    assert await disputes.scene.count(OrderEvent) == events
    assert len(ANNOUNCED) == announced


async def test_ruling_amounts_are_checked(db: Database, tenant: Tenant, rules: DisputeRules) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open()).id
    await disputes.respond(pk, A.REFUSE, None, "not damaged when it left")
    await disputes.escalate(pk)
    assert await refused(disputes.rule(pk, amount="9.101")) == (ErrorCode.INVALID, ("amount",))
    assert await refused(disputes.rule(pk, amount="9.11")) == (ErrorCode.AMOUNT_TOO_LARGE, ("amount",))
    assert await refused(disputes.rule(pk, DisputeOutcome.SUPPLIER, "1.00")) == (
        ErrorCode.INVALID,
        ("amount",),
    )
    assert await refused(disputes.rule(pk, DisputeOutcome.AGREED)) == (ErrorCode.INVALID, ("outcome",))
    ruled = await disputes.rule(pk, amount="9.10")
    assert (ruled.status, ruled.outcome, ruled.resolution_amount, ruled.decided_by) == (
        D.RESOLVED,
        DisputeOutcome.MERCHANT,
        Decimal("9.10"),
        ActorKind.ADMIN,
    )
    assert [(r.amount, r.source, r.source_id) for r in await disputes.refunds()] == [
        (Decimal("9.10"), "dispute", pk)
    ]


# --- every transition -----------------------------------------------------------------------------------

Action = Callable[[Disputes, int], Awaitable[object]]

ACTIONS: dict[str, Action] = {
    "propose_refund": lambda d, pk: d.respond(pk, A.PROPOSE_REFUND, "4.00"),
    "propose_resend": lambda d, pk: d.respond(pk, A.PROPOSE_RESEND, None),
    "refuse": lambda d, pk: d.respond(pk, A.REFUSE, None, "it was fine"),
    "accept": lambda d, pk: d.accept(pk),
    "escalate": lambda d, pk: d.escalate(pk),
    "cancel": lambda d, pk: d.cancel(pk),
    "rule_merchant": lambda d, pk: d.rule(pk, DisputeOutcome.MERCHANT),
    "rule_supplier": lambda d, pk: d.rule(pk, DisputeOutcome.SUPPLIER),
    "return_shipped": lambda d, pk: d.return_shipped(pk),
    "message": lambda d, pk: d.message(pk),
    "supplier_message": lambda d, pk: d.message(pk, actor=d.scene.supplier()),
    "deadline": lambda d, pk: d.deadline(pk),
}

# How each status is reached, with the kind of dispute opened.
PATHS: dict[DisputeStatus, tuple[DisputeKind, list[str]]] = {
    D.AWAITING_SUPPLIER: (DisputeKind.REFUND_ONLY, []),
    D.SUPPLIER_RESPONDED: (DisputeKind.REFUND_ONLY, ["propose_refund"]),
    D.ESCALATED: (DisputeKind.REFUND_ONLY, ["propose_refund", "escalate"]),
    D.AWAITING_RETURN: (DisputeKind.RETURN_AND_REFUND, ["propose_refund", "accept"]),
    D.RESOLVED: (DisputeKind.REFUND_ONLY, ["propose_refund", "accept"]),
    D.CANCELLED: (DisputeKind.REFUND_ONLY, ["cancel"]),
}

X = ErrorCode.INVALID_STATE
# (from, action, the status it ends in, or the error code it is refused with)
TRANSITIONS: list[tuple[DisputeStatus, str, DisputeStatus | ErrorCode]] = [
    (D.AWAITING_SUPPLIER, "propose_refund", D.SUPPLIER_RESPONDED),
    (D.AWAITING_SUPPLIER, "propose_resend", D.SUPPLIER_RESPONDED),
    (D.AWAITING_SUPPLIER, "refuse", D.SUPPLIER_RESPONDED),
    (D.AWAITING_SUPPLIER, "accept", X),
    (D.AWAITING_SUPPLIER, "escalate", X),
    (D.AWAITING_SUPPLIER, "cancel", D.CANCELLED),
    (D.AWAITING_SUPPLIER, "rule_merchant", X),
    (D.AWAITING_SUPPLIER, "rule_supplier", X),
    (D.AWAITING_SUPPLIER, "return_shipped", X),
    (D.AWAITING_SUPPLIER, "message", D.AWAITING_SUPPLIER),
    (D.AWAITING_SUPPLIER, "supplier_message", D.AWAITING_SUPPLIER),
    (D.AWAITING_SUPPLIER, "deadline", D.RESOLVED),
    (D.SUPPLIER_RESPONDED, "propose_refund", X),
    (D.SUPPLIER_RESPONDED, "propose_resend", X),
    (D.SUPPLIER_RESPONDED, "refuse", X),
    (D.SUPPLIER_RESPONDED, "accept", D.RESOLVED),
    (D.SUPPLIER_RESPONDED, "escalate", D.ESCALATED),
    (D.SUPPLIER_RESPONDED, "cancel", D.CANCELLED),
    (D.SUPPLIER_RESPONDED, "rule_merchant", X),
    (D.SUPPLIER_RESPONDED, "rule_supplier", X),
    (D.SUPPLIER_RESPONDED, "return_shipped", X),
    (D.SUPPLIER_RESPONDED, "message", D.SUPPLIER_RESPONDED),
    (D.SUPPLIER_RESPONDED, "supplier_message", D.SUPPLIER_RESPONDED),
    (D.SUPPLIER_RESPONDED, "deadline", D.SUPPLIER_RESPONDED),  # the supplier did respond: nothing to do
    (D.ESCALATED, "propose_refund", X),
    (D.ESCALATED, "propose_resend", X),
    (D.ESCALATED, "refuse", X),
    (D.ESCALATED, "accept", X),
    (D.ESCALATED, "escalate", X),
    (D.ESCALATED, "cancel", D.CANCELLED),
    (D.ESCALATED, "rule_merchant", D.RESOLVED),
    (D.ESCALATED, "rule_supplier", D.RESOLVED),
    (D.ESCALATED, "return_shipped", X),
    (D.ESCALATED, "message", D.ESCALATED),
    (D.ESCALATED, "supplier_message", D.ESCALATED),
    (D.ESCALATED, "deadline", D.ESCALATED),
    (D.AWAITING_RETURN, "propose_refund", X),
    (D.AWAITING_RETURN, "propose_resend", X),
    (D.AWAITING_RETURN, "refuse", X),
    (D.AWAITING_RETURN, "accept", X),
    (D.AWAITING_RETURN, "escalate", X),
    (D.AWAITING_RETURN, "cancel", D.CANCELLED),
    (D.AWAITING_RETURN, "rule_merchant", X),
    (D.AWAITING_RETURN, "rule_supplier", X),
    (D.AWAITING_RETURN, "return_shipped", D.RESOLVED),
    (D.AWAITING_RETURN, "message", D.AWAITING_RETURN),
    (D.AWAITING_RETURN, "supplier_message", D.AWAITING_RETURN),
    (D.AWAITING_RETURN, "deadline", D.AWAITING_RETURN),
    *[
        (status, action, X)
        for status in (D.RESOLVED, D.CANCELLED)
        for action in ACTIONS
        if action != "deadline"
    ],
    (D.RESOLVED, "deadline", D.RESOLVED),
    (D.CANCELLED, "deadline", D.CANCELLED),
]


@pytest.mark.parametrize(("start", "action", "expected"), TRANSITIONS, ids=lambda value: str(value))
async def test_transition(
    db: Database,
    tenant: Tenant,
    rules: DisputeRules,
    start: DisputeStatus,
    action: str,
    expected: DisputeStatus | ErrorCode,
) -> None:
    disputes = await make(db, tenant, rules)
    kind, steps = PATHS[start]
    pk = (await disputes.open(kind=kind)).id
    for step in steps:
        await ACTIONS[step](disputes, pk)
    assert (await disputes.get(pk)).status is start
    refunds_before = len(await disputes.refunds())
    if isinstance(expected, ErrorCode):
        assert (await refused(ACTIONS[action](disputes, pk)))[0] is expected
        assert (await disputes.get(pk)).status is start
    else:
        await ACTIONS[action](disputes, pk)
        assert (await disputes.get(pk)).status is expected
    dispute = await disputes.get(pk)
    is_open = dispute.status in cases.OPEN
    assert (dispute.open_key is not None) == is_open
    supplier_order = await disputes.scene.supplier_order()
    assert supplier_order.status is (S.IN_ISSUE if is_open else S.WAIT_BUYER_ACCEPT_GOODS)
    # A supplier refund exactly when the dispute resolved with a refund, recorded once.
    refunds = await disputes.refunds()
    expected_refunds = (
        [dispute.resolution_amount]
        if dispute.status is D.RESOLVED and dispute.resolution_action is DisputeResolutionAction.REFUND
        else []
    )
    assert [r.amount for r in refunds] == expected_refunds
    assert len(refunds) >= refunds_before


# --- outcomes -------------------------------------------------------------------------------------------


async def test_accepting_each_answer(db: Database, tenant: Tenant, rules: DisputeRules) -> None:
    disputes = await make(db, tenant, rules)
    refund = (await disputes.open("5.00", index=0)).id
    resend = (await disputes.open("5.00", index=1)).id
    await disputes.respond(refund, A.PROPOSE_REFUND, "4.50")
    await disputes.respond(
        resend, A.PROPOSE_RESEND, None, "sending a new one", actor=disputes.scene.supplier(1)
    )
    accepted = await disputes.accept(refund)
    assert (
        accepted.outcome,
        accepted.resolution_action,
        accepted.resolution_amount,
        accepted.decided_by,
    ) == (
        DisputeOutcome.AGREED,
        DisputeResolutionAction.REFUND,
        Decimal("4.50"),
        ActorKind.MERCHANT,
    )
    replaced = await disputes.accept(resend)
    assert (replaced.status, replaced.resolution_action, replaced.resolution_amount) == (
        D.RESOLVED,
        DisputeResolutionAction.RESEND,
        None,
    )
    assert [(r.amount, r.supplier_order_id) for r in await disputes.refunds()] == [
        (Decimal("4.50"), disputes.scene.supplier_order_ids[0])
    ]
    types = await disputes.scene.event_types()
    assert "dispute_replacement_shipping" in types
    assert types.count("supplier_refund_recorded") == 1
    # The replacement's package arrives later through the supplier's ordinary tracking update.
    async with db.write() as session:
        await update_supplier_order(
            session,
            disputes.scene.supplier(1),
            disputes.scene.supplier_order_ids[1],
            SupplierOrderChange(packages=[PackageInput(tracking_number="LP-REPLACEMENT", carrier="Cainiao")]),
        )
    async with db.read() as session:
        numbers = list(await session.scalars(select(Package.tracking_number)))
    assert numbers == ["LP-REPLACEMENT"]


async def test_accepting_a_refusal_ends_for_the_supplier(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open()).id
    await disputes.respond(pk, A.REFUSE, None, "tracking shows delivered")
    done = await disputes.accept(pk)
    assert (done.status, done.outcome, done.resolution_action) == (
        D.RESOLVED,
        DisputeOutcome.SUPPLIER,
        DisputeResolutionAction.NONE,
    )
    assert await disputes.refunds() == []


async def test_return_and_refund_waits_for_the_return_tracking(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open("6.00", kind=DisputeKind.RETURN_AND_REFUND)).id
    await disputes.respond(pk, A.REFUSE, None, "no")
    await disputes.escalate(pk)
    ruled = await disputes.rule(pk)  # for the merchant, the requested amount
    assert (ruled.status, ruled.resolution_amount) == (D.AWAITING_RETURN, Decimal("6.00"))
    assert await disputes.refunds() == []
    assert (await disputes.scene.supplier_order()).status is S.IN_ISSUE
    shipped = await disputes.return_shipped(pk)
    assert (shipped.status, shipped.return_tracking_number, shipped.return_carrier) == (
        D.RESOLVED,
        "RR123456789CN",
        "China Post",
    )
    assert [r.amount for r in await disputes.refunds()] == [Decimal("6.00")]
    types = await disputes.scene.event_types()
    assert types.index("dispute_return_requested") < types.index("dispute_return_shipped")
    assert types.index("dispute_return_shipped") < types.index("supplier_refund_recorded")


async def test_every_step_is_on_the_timeline_and_announced(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open()).id
    await disputes.message(pk)
    await disputes.respond(pk, A.PROPOSE_REFUND, "3.00", "we can refund part")
    await disputes.escalate(pk)
    await disputes.rule(pk, DisputeOutcome.MERCHANT, "4.00")
    types = [t for t in await disputes.scene.event_types() if t != "order_imported"]
    assert types == [
        "dispute_opened",
        "supplier_order_status_changed",
        "dispute_message_added",
        "dispute_supplier_responded",
        "dispute_escalated",
        "dispute_ruled",
        "supplier_refund_recorded",
        "dispute_resolved",
        "supplier_order_status_changed",
    ]
    assert [c.topic for c in ANNOUNCED] == [Topic.DISPUTES_CREATED] + [Topic.DISPUTES_UPDATED] * 4
    async with db.read() as session:
        authors = list(
            await session.scalars(
                select(DisputeMessage.author)
                .where(DisputeMessage.dispute_id == pk)
                .order_by(DisputeMessage.id)
            )
        )
    assert authors == [
        DisputeMessageAuthor.MERCHANT,
        DisputeMessageAuthor.MERCHANT,
        DisputeMessageAuthor.SUPPLIER,
        DisputeMessageAuthor.MERCHANT,
        DisputeMessageAuthor.PLATFORM,
    ]


# --- the deadline ---------------------------------------------------------------------------------------


@pytest.fixture
def worker_settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db.url,
        secret_key="test",
        public_url="http://test",
        smtp_url="smtp://test",
        data_dir=tmp_path,
    )


async def test_deadline_job_resolves_for_the_requested_amount(
    db: Database, tenant: Tenant, rules: DisputeRules, worker_settings: Settings
) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open("7.25")).id
    clock = Clock(T0 + DAYS_5 - timedelta(seconds=1))
    worker = Worker(db, worker_settings, clock=clock)
    assert await worker.drain() == 0  # not due
    clock.now = T0 + DAYS_5
    assert await worker.drain() == 1
    dispute = await disputes.get(pk)
    assert (dispute.status, dispute.outcome, dispute.resolution_amount, dispute.decided_by) == (
        D.RESOLVED,
        DisputeOutcome.MERCHANT,
        Decimal("7.25"),
        ActorKind.SYSTEM,
    )
    assert [r.amount for r in await disputes.refunds()] == [Decimal("7.25")]
    assert (await disputes.scene.supplier_order()).status is S.WAIT_BUYER_ACCEPT_GOODS
    # At-least-once delivery: a second run changes nothing.
    assert await disputes.deadline(pk, now=T0 + DAYS_5 + timedelta(hours=1)) is None
    assert len(await disputes.refunds()) == 1


async def test_deadline_not_yet_due_changes_nothing(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open()).id
    assert await disputes.deadline(pk, now=T0 + DAYS_5 - timedelta(seconds=1)) is None
    assert (await disputes.get(pk)).status is D.AWAITING_SUPPLIER


async def test_deadline_on_return_and_refund_asks_for_the_return(
    db: Database, tenant: Tenant, rules: DisputeRules
) -> None:
    disputes = await make(db, tenant, rules)
    pk = (await disputes.open("2.00", kind=DisputeKind.RETURN_AND_REFUND)).id
    overdue = await disputes.deadline(pk)
    assert overdue is not None and overdue.status is D.AWAITING_RETURN
    assert await disputes.refunds() == []


# --- evidence -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0" + bytes(8), "image/jpeg"),
        (b"GIF89a" + bytes(8), "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (MP4, "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  " + bytes(8), "video/quicktime"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(8), "image/heic"),
        (b"\x1a\x45\xdf\xa3" + bytes(8), "video/webm"),
        (b"%PDF-1.7", None),
        (b"MZ\x90\x00", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
    ],
)
def test_content_is_recognised_by_its_first_bytes(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


async def test_same_file_twice_is_stored_once(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    first, second = await store.put(PNG), await store.put(PNG)
    assert first == second
    assert store.path(first).read_bytes() == PNG
    assert len(list(tmp_path.rglob("*"))) == 2  # one directory, one file
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_rules_follow_the_settings(worker_settings: Settings) -> None:
    settings = replace(
        worker_settings, dispute_window_days=30, dispute_response_days=2, evidence_max_bytes=10
    )
    rules = DisputeRules.of(settings)
    assert (rules.window, rules.response_time, rules.max_evidence_bytes) == (
        timedelta(days=30),
        timedelta(days=2),
        10,
    )
    assert rules.evidence_dir == worker_settings.data_dir / "evidence"
