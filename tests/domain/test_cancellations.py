"""Cancellation requests at the domain level: every rule of the state machine, on a real database session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api.worker import Worker
from config.settings import Settings
from db.engine import Database
from db.jobs import Job
from db.models import (
    ActorKind,
    CancellationMessage,
    CancellationReason,
    CancellationRequest,
    CancellationStatus,
    MessageAuthor,
    Order,
    OrderEvent,
    OrderStatus,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)
from domain import cancellations as cases
from domain.actors import Actor, Scope
from domain.cancellations import AUTO_APPROVE_KIND, Decision
from domain.errors import DomainError, ErrorCode
from domain.orders import LineInput, OrderInput, SupplierOrderInput, import_orders
from domain.supplier_orders import SupplierOrderChange, update_supplier_order
from tests.factories import Tenant

C = CancellationStatus
S = SupplierOrderStatus
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOURS_48 = timedelta(hours=48)


@dataclass
class Scene:
    db: Database
    tenant: Tenant
    order_id: int
    supplier_order_ids: list[int]

    @property
    def merchant(self) -> Actor:
        return Actor(
            kind=ActorKind.MERCHANT, name="staff", shop_id=self.tenant.shop_id, scopes=frozenset(Scope.ALL)
        )

    def supplier(self, index: int = 0) -> Actor:
        return Actor(
            kind=ActorKind.SUPPLIER,
            name=f"supplier {index}",
            shop_id=self.tenant.shop_id,
            supplier_id=self.tenant.supplier_ids[index],
        )

    @property
    def system(self) -> Actor:
        return Actor.system(self.tenant.shop_id)

    async def create(
        self,
        index: int = 0,
        reason: CancellationReason = CancellationReason.CUSTOMER_CANCELLED,
        message: str | None = "customer changed their mind",
        now: datetime = T0,
    ) -> CancellationRequest:
        async with self.db.write() as session:
            return await cases.request_cancellation(
                session,
                self.merchant,
                self.supplier_order_ids[index],
                reason,
                message,
                response_time=HOURS_48,
                now=now,
            )

    async def decide(
        self, request_id: int, decision: Decision, message: str | None = None, *, index: int = 0
    ) -> CancellationRequest:
        async with self.db.write() as session:
            return await cases.decide_cancellation(
                session, self.supplier(index), request_id, decision, message, now=T0 + timedelta(hours=1)
            )

    async def reply(self, request_id: int, now: datetime = T0 + timedelta(hours=2)) -> CancellationRequest:
        async with self.db.write() as session:
            return await cases.reply_to_cancellation(session, self.merchant, request_id, "size M", now=now)

    async def withdraw(self, request_id: int) -> CancellationRequest:
        async with self.db.write() as session:
            return await cases.withdraw_cancellation(
                session, self.merchant, request_id, "never mind", now=T0 + timedelta(hours=3)
            )

    async def auto_approve(
        self, request_id: int, now: datetime = T0 + HOURS_48
    ) -> CancellationRequest | None:
        async with self.db.write() as session:
            return await cases.auto_approve_cancellation(session, self.system, request_id, now=now)

    async def ship(self, index: int = 0) -> None:
        async with self.db.write() as session:
            await update_supplier_order(
                session,
                self.supplier(index),
                self.supplier_order_ids[index],
                SupplierOrderChange(status=S.WAIT_BUYER_ACCEPT_GOODS),
            )

    async def request(self, request_id: int) -> CancellationRequest:
        async with self.db.read() as session:
            row = await session.get(CancellationRequest, request_id)
        assert row is not None
        return row

    async def supplier_order(self, index: int = 0) -> SupplierOrder:
        async with self.db.read() as session:
            row = await session.get(SupplierOrder, self.supplier_order_ids[index])
        assert row is not None
        return row

    async def order(self) -> Order:
        async with self.db.read() as session:
            row = await session.get(Order, self.order_id)
        assert row is not None
        return row

    async def count(self, model: type[object], *where: object) -> int:
        async with self.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]

    async def event_types(self) -> list[str]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(OrderEvent.type).where(OrderEvent.order_id == self.order_id).order_by(OrderEvent.id)
            )
            return list(rows)


async def make_scene(
    db: Database,
    tenant: Tenant,
    status: SupplierOrderStatus = S.WAIT_SELLER_SEND_GOODS,
    *,
    split: bool = True,
) -> Scene:
    """A store order with one supplier order per supplier (two when ``split``), all in ``status``."""
    count = 2 if split else 1
    ali_ids = [f"{tenant.shop_id}00{n}" for n in range(count)]
    data = OrderInput(
        number="#1001",
        currency="USD",
        lines=[
            LineInput(
                title=f"Item {n}",
                quantity=1,
                unit_price=Decimal("20.00"),
                supplier_id=tenant.supplier_ids[n],
                aliexpress_order_id=ali_ids[n],
            )
            for n in range(count)
        ],
        supplier_orders=[
            SupplierOrderInput(aliexpress_order_id=ali_ids[n], cost=Decimal("9.10") + n, status=status)
            for n in range(count)
        ],
    )
    merchant = Actor(
        kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=frozenset(Scope.ALL)
    )
    async with db.write() as session:
        [result] = await import_orders(session, merchant, [data])
        supplier_order_ids = [so.id for so in result.order.supplier_orders]
    return Scene(db, tenant, result.order.id, supplier_order_ids)


async def refused(action: Awaitable[object]) -> ErrorCode:
    with pytest.raises(DomainError) as caught:
        await action
    return caught.value.errors[0].code


# --- creating -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.PLACE_ORDER_SUCCESS, S.PAYMENT_PROCESSING, S.RISK_CONTROL])
async def test_unpaid_order_is_cancelled_at_once_without_supplier_or_refund(
    db: Database, tenant: Tenant, status: SupplierOrderStatus
) -> None:
    scene = await make_scene(db, tenant, status)
    created = await scene.create()
    request = await scene.request(created.id)
    assert (request.status, request.open_key, request.respond_by, request.decided_at) == (
        C.APPROVED,
        None,
        None,
        T0,
    )
    supplier_order = await scene.supplier_order()
    assert (supplier_order.status, supplier_order.end_reason) == (S.FINISH, "cancel_order_close_trade")
    assert await scene.count(SupplierRefund) == 0
    assert await scene.count(Job, Job.kind == AUTO_APPROVE_KIND) == 0
    async with db.read() as session:
        authors = list(
            await session.scalars(
                select(CancellationMessage.author)
                .where(CancellationMessage.request_id == created.id)
                .order_by(CancellationMessage.id)
            )
        )
    assert authors == [MessageAuthor.MERCHANT, MessageAuthor.SYSTEM]
    # The other supplier order is still open, so the store order is too.
    assert (await scene.order()).status is OrderStatus.OPEN

    await scene.create(index=1)
    order = await scene.order()
    assert (order.status, order.cancelled_at) == (OrderStatus.CANCELLED, T0)
    assert (await scene.event_types())[-1] == "order_cancelled"


@pytest.mark.parametrize("status", [S.WAIT_SELLER_SEND_GOODS, S.WAIT_SELLER_EXAMINE_MONEY])
async def test_paid_unshipped_order_gets_a_pending_request_and_a_deadline_job(
    db: Database, tenant: Tenant, status: SupplierOrderStatus
) -> None:
    scene = await make_scene(db, tenant, status)
    created = await scene.create()
    request = await scene.request(created.id)
    assert (request.status, request.respond_by, request.previous_status) == (C.PENDING, T0 + HOURS_48, status)
    assert request.open_key == scene.supplier_order_ids[0]
    assert (await scene.supplier_order()).status is S.IN_CANCEL
    async with db.read() as session:
        job = (await session.scalars(select(Job).where(Job.kind == AUTO_APPROVE_KIND))).one()
    assert (job.run_at, job.key, job.payload) == (
        T0 + HOURS_48,
        f"{AUTO_APPROVE_KIND}:{created.id}",
        {"requestId": created.id},
    )
    assert await scene.event_types() == ["order_imported", "cancellation_requested"]


@pytest.mark.parametrize(
    "status",
    [
        S.SELLER_PART_SEND_GOODS,
        S.WAIT_BUYER_ACCEPT_GOODS,
        S.FUND_PROCESSING,
        S.IN_ISSUE,
        S.IN_FROZEN,
        S.FINISH,
    ],
)
async def test_shipped_or_finished_order_is_not_cancellable(
    db: Database, tenant: Tenant, status: SupplierOrderStatus
) -> None:
    scene = await make_scene(db, tenant, status)
    assert await refused(scene.create()) is ErrorCode.NOT_CANCELLABLE
    assert await scene.count(CancellationRequest) == 0


async def test_one_open_request_per_supplier_order(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    first = await scene.create()
    assert await refused(scene.create()) is ErrorCode.ALREADY_EXISTS
    await scene.decide(first.id, Decision.REJECT)
    second = await scene.create()
    assert (await scene.request(second.id)).status is C.PENDING


async def test_database_refuses_a_second_open_request_on_its_own(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    first = await scene.create()
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(
                CancellationRequest(
                    shop_id=tenant.shop_id,
                    order_id=scene.order_id,
                    supplier_order_id=scene.supplier_order_ids[0],
                    status=C.PENDING,
                    reason=CancellationReason.OTHER,
                    open_key=scene.supplier_order_ids[0],
                    previous_status=S.WAIT_SELLER_SEND_GOODS,
                    requested_by="racer",
                )
            )
    assert await scene.count(CancellationRequest) == 1
    assert (await scene.request(first.id)).open_key == scene.supplier_order_ids[0]


async def test_messages_required_where_the_rules_say(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    assert await refused(scene.create(reason=CancellationReason.OTHER, message="  ")) is ErrorCode.REQUIRED
    assert await refused(scene.create(message="x" * 5001)) is ErrorCode.TOO_LONG
    created = await scene.create(reason=CancellationReason.OTHER, message="gift for the wrong person")
    assert await refused(scene.decide(created.id, Decision.REQUEST_INFO)) is ErrorCode.REQUIRED
    assert (await scene.request(created.id)).status is C.PENDING


# --- who may do what ------------------------------------------------------------------------------------


async def test_actors_are_checked(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    other = await make_scene(db, other_tenant)
    created = await scene.create()
    async with db.write() as session:
        assert (
            await refused(
                cases.request_cancellation(
                    session,
                    scene.supplier(),
                    scene.supplier_order_ids[0],
                    CancellationReason.OTHER,
                    "x",
                    response_time=HOURS_48,
                )
            )
            is ErrorCode.FORBIDDEN
        )
    async with db.write() as session:
        assert (
            await refused(
                cases.decide_cancellation(session, scene.merchant, created.id, Decision.APPROVE, None)
            )
            is ErrorCode.FORBIDDEN
        )
    # Supplier 1 does not fulfil supplier order 0; another shop sees nothing of this one.
    assert await refused(scene.decide(created.id, Decision.APPROVE, index=1)) is ErrorCode.NOT_FOUND
    async with db.write() as session:
        assert (
            await refused(cases.withdraw_cancellation(session, other.merchant, created.id, None))
            is ErrorCode.NOT_FOUND
        )
    async with db.write() as session:
        assert (
            await refused(
                cases.request_cancellation(
                    session,
                    other.merchant,
                    scene.supplier_order_ids[1],
                    CancellationReason.OTHER,
                    "x",
                    response_time=HOURS_48,
                )
            )
            is ErrorCode.NOT_FOUND
        )
    readonly = Actor(
        kind=ActorKind.MERCHANT, name="reader", shop_id=tenant.shop_id, scopes=frozenset({Scope.READ_ORDERS})
    )
    async with db.write() as session:
        assert (
            await refused(cases.withdraw_cancellation(session, readonly, created.id, None))
            is ErrorCode.FORBIDDEN
        )
    assert (await scene.request(created.id)).status is C.PENDING


# --- decisions and their effects -----------------------------------------------------------------------


async def test_approval_cancels_refunds_and_cancels_the_order_when_nothing_is_left(
    db: Database, tenant: Tenant
) -> None:
    scene = await make_scene(db, tenant, split=False)
    created = await scene.create()
    approved = await scene.decide(created.id, Decision.APPROVE, "ok, cancelled")
    assert (approved.status, approved.decided_at, approved.open_key) == (
        C.APPROVED,
        T0 + timedelta(hours=1),
        None,
    )
    supplier_order = await scene.supplier_order()
    assert (supplier_order.status, supplier_order.end_reason) == (S.FINISH, "cancel_order_close_trade")
    async with db.read() as session:
        refund = (await session.scalars(select(SupplierRefund))).one()
    assert (refund.amount, refund.currency, refund.source, refund.source_id, refund.supplier_order_id) == (
        Decimal("9.10"),
        "USD",
        "cancellation_request",
        created.id,
        supplier_order.id,
    )
    order = await scene.order()
    assert (order.status, order.cancelled_at) == (OrderStatus.CANCELLED, T0 + timedelta(hours=1))
    assert await scene.event_types() == [
        "order_imported",
        "cancellation_requested",
        "cancellation_approved",
        "supplier_order_status_changed",
        "order_cancelled",
        "supplier_refund_recorded",
    ]


@pytest.mark.parametrize("status", [S.WAIT_SELLER_SEND_GOODS, S.WAIT_SELLER_EXAMINE_MONEY])
@pytest.mark.parametrize("how", ["reject", "withdraw"])
async def test_reject_and_withdraw_restore_the_status_before(
    db: Database, tenant: Tenant, status: SupplierOrderStatus, how: str
) -> None:
    scene = await make_scene(db, tenant, status)
    created = await scene.create()
    if how == "reject":
        await scene.decide(created.id, Decision.REJECT, "already packed")
    else:
        await scene.withdraw(created.id)
    assert (await scene.supplier_order()).status is status
    assert await scene.count(SupplierRefund) == 0
    assert (await scene.order()).status is OrderStatus.OPEN


async def test_shipping_meanwhile_closes_the_open_request(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    created = await scene.create()
    await scene.decide(created.id, Decision.REQUEST_INFO, "which size?")
    await scene.ship()
    request = await scene.request(created.id)
    assert (request.status, request.open_key) == (C.CLOSED, None)
    assert (await scene.supplier_order()).status is S.WAIT_BUYER_ACCEPT_GOODS
    assert (await scene.event_types())[-2:] == ["supplier_order_status_changed", "cancellation_closed"]
    assert await scene.auto_approve(created.id) is None


# --- the deadline ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def worker_settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db.url,
        secret_key="test",
        public_url="http://test",
        smtp_url="smtp://test",
        data_dir=tmp_path,
    )


async def test_deadline_job_auto_approves_a_pending_request(
    db: Database, tenant: Tenant, worker_settings: Settings
) -> None:
    scene = await make_scene(db, tenant)
    created = await scene.create()
    clock = Clock(T0 + HOURS_48 - timedelta(seconds=1))
    worker = Worker(db, worker_settings, clock=clock)
    assert await worker.drain() == 0  # not due
    clock.now = T0 + HOURS_48
    assert await worker.drain() == 1
    request = await scene.request(created.id)
    assert (request.status, request.decided_at) == (C.AUTO_APPROVED, T0 + HOURS_48)
    assert (await scene.supplier_order()).status is S.FINISH
    assert await scene.count(SupplierRefund) == 1
    assert "cancellation_auto_approved" in await scene.event_types()
    # Run again (at-least-once delivery): nothing changes twice.
    assert await scene.auto_approve(created.id, now=T0 + HOURS_48 + timedelta(hours=1)) is None
    assert await scene.count(SupplierRefund) == 1


async def test_deadline_waits_out_a_question_then_keeps_the_original_deadline(
    db: Database, tenant: Tenant, worker_settings: Settings
) -> None:
    scene = await make_scene(db, tenant)
    created = await scene.create()
    await scene.decide(created.id, Decision.REQUEST_INFO, "which size?")
    clock = Clock(T0 + HOURS_48)
    worker = Worker(db, worker_settings, clock=clock)
    assert await worker.drain() == 1  # ran and left the question alone
    assert (await scene.request(created.id)).status is C.INFO_REQUESTED

    clock.now = T0 + HOURS_48 + timedelta(hours=5)
    replied = await scene.reply(created.id, now=clock.now)
    assert (replied.status, replied.respond_by) == (C.PENDING, T0 + HOURS_48)
    assert await worker.drain() == 1
    assert (await scene.request(created.id)).status is C.AUTO_APPROVED


async def test_reply_before_the_deadline_keeps_it(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    created = await scene.create()
    await scene.decide(created.id, Decision.REQUEST_INFO, "which size?")
    replied = await scene.reply(created.id)
    assert (replied.status, replied.respond_by) == (C.PENDING, T0 + HOURS_48)
    assert await scene.count(Job, Job.kind == AUTO_APPROVE_KIND) == 1
    assert await scene.auto_approve(created.id, now=T0 + HOURS_48 - timedelta(seconds=1)) is None
    assert (await scene.auto_approve(created.id)) is not None


# --- every transition -----------------------------------------------------------------------------------

Action = Callable[[Scene, int], Awaitable[object]]

ACTIONS: dict[str, Action] = {
    "approve": lambda scene, pk: scene.decide(pk, Decision.APPROVE),
    "reject": lambda scene, pk: scene.decide(pk, Decision.REJECT),
    "request_info": lambda scene, pk: scene.decide(pk, Decision.REQUEST_INFO, "which colour?"),
    "reply": lambda scene, pk: scene.reply(pk),
    "withdraw": lambda scene, pk: scene.withdraw(pk),
    "auto_approve": lambda scene, pk: scene.auto_approve(pk),
    "ship": lambda scene, pk: scene.ship(),
}


async def reach(scene: Scene, status: CancellationStatus) -> int:
    """A request in ``status``, reached through the use cases themselves."""
    pk = (await scene.create()).id
    steps: dict[CancellationStatus, list[str]] = {
        C.PENDING: [],
        C.INFO_REQUESTED: ["request_info"],
        C.APPROVED: ["approve"],
        C.AUTO_APPROVED: ["auto_approve"],
        C.REJECTED: ["reject"],
        C.WITHDRAWN: ["withdraw"],
        C.CLOSED: ["ship"],
    }
    for step in steps[status]:
        await ACTIONS[step](scene, pk)
    assert (await scene.request(pk)).status is status
    return pk


TERMINAL = [C.APPROVED, C.AUTO_APPROVED, C.REJECTED, C.WITHDRAWN, C.CLOSED]
DECISIONS_AND_MERCHANT = ["approve", "reject", "request_info", "reply", "withdraw"]
# (from, action, the status it ends in, or the error code it is refused with)
TRANSITIONS: list[tuple[CancellationStatus, str, CancellationStatus | ErrorCode]] = [
    (C.PENDING, "approve", C.APPROVED),
    (C.PENDING, "reject", C.REJECTED),
    (C.PENDING, "request_info", C.INFO_REQUESTED),
    (C.PENDING, "reply", ErrorCode.INVALID_STATE),
    (C.PENDING, "withdraw", C.WITHDRAWN),
    (C.PENDING, "auto_approve", C.AUTO_APPROVED),
    (C.PENDING, "ship", C.CLOSED),
    (C.INFO_REQUESTED, "approve", ErrorCode.INVALID_STATE),
    (C.INFO_REQUESTED, "reject", ErrorCode.INVALID_STATE),
    (C.INFO_REQUESTED, "request_info", ErrorCode.INVALID_STATE),
    (C.INFO_REQUESTED, "reply", C.PENDING),
    (C.INFO_REQUESTED, "withdraw", C.WITHDRAWN),
    (C.INFO_REQUESTED, "auto_approve", C.INFO_REQUESTED),  # the deadline job leaves it alone
    (C.INFO_REQUESTED, "ship", C.CLOSED),
    *[(status, action, ErrorCode.INVALID_STATE) for status in TERMINAL for action in DECISIONS_AND_MERCHANT],
    *[(status, "auto_approve", status) for status in TERMINAL],
]


@pytest.mark.parametrize(("start", "action", "expected"), TRANSITIONS, ids=lambda value: str(value))
async def test_transition(
    db: Database,
    tenant: Tenant,
    start: CancellationStatus,
    action: str,
    expected: CancellationStatus | ErrorCode,
) -> None:
    scene = await make_scene(db, tenant)
    pk = await reach(scene, start)
    if isinstance(expected, ErrorCode):
        assert await refused(ACTIONS[action](scene, pk)) is expected
        assert (await scene.request(pk)).status is start
    else:
        await ACTIONS[action](scene, pk)
        assert (await scene.request(pk)).status is expected
    open_now = (await scene.request(pk)).status in cases.OPEN
    assert ((await scene.supplier_order()).status is S.IN_CANCEL) == open_now
