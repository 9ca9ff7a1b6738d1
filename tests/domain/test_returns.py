"""Returns, refunds and policies at the domain level: every transition and refusal, with its error code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import (
    ActorKind,
    CancellationReason,
    FinancialStatus,
    Order,
    OrderEvent,
    OrderLine,
    Refund,
    Return,
    ReturnDeclineReason,
    ReturnDisposition,
    ReturnedStock,
    ReturnLine,
    ReturnReason,
    ReturnShippingPayer,
    ReturnStatus,
    StockCondition,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
)
from domain import policies, refunds, returns
from domain.actors import Actor, Scope
from domain.cancellations import request_cancellation
from domain.errors import DomainError, ErrorCode
from domain.figures import order_figures
from domain.orders import LineInput, OrderInput, SupplierOrderInput, import_orders
from domain.reactions import _handlers, reacts_to
from domain.refunds import RefundLineInput
from domain.returns import ReceiptInput, ReturnLineInput
from domain.topics import Topic, TopicChanged
from tests.factories import Tenant, make_tenant

R = ReturnStatus
E = ErrorCode
D = Decimal
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADDRESS = {
    "name": "Returns desk",
    "address1": "1 Dock Road",
    "city": "Leeds",
    "zip": "LS1",
    "country_code": "GB",
}


def merchant(tenant: Tenant, scopes: frozenset[str] = frozenset(Scope.ALL)) -> Actor:
    return Actor(kind=ActorKind.MERCHANT, name="staff", shop_id=tenant.shop_id, scopes=scopes)


@dataclass
class Scene:
    db: Database
    tenant: Tenant
    order_id: int
    tee_line: int  # 3 units at 10.00
    mug_line: int  # 1 unit at 25.00

    @property
    def merchant(self) -> Actor:
        return merchant(self.tenant)

    async def run(
        self, use_case: Callable[..., Awaitable[object]], *args: object, **kwargs: object
    ) -> object:
        async with self.db.write() as session:
            return await use_case(session, self.merchant, *args, **kwargs)

    async def request(self, quantity: int = 2, now: datetime = T0) -> Return:
        row = await self.run(
            returns.request_return,
            self.order_id,
            [ReturnLineInput(self.tee_line, quantity, ReturnReason.SIZE_TOO_SMALL)],
            "too small",
            now=now,
        )
        assert isinstance(row, Return)
        return row

    async def line_ids(self, return_id: int) -> list[int]:
        async with self.db.read() as session:
            return list(
                await session.scalars(
                    select(ReturnLine.id).where(ReturnLine.return_id == return_id).order_by(ReturnLine.id)
                )
            )

    async def receive(self, return_id: int, quantity: int = 1, disposition: str = "RESTOCK") -> Return:
        [line_id] = await self.line_ids(return_id)
        row = await self.run(
            returns.receive_return,
            return_id,
            [ReceiptInput(line_id, quantity, ReturnDisposition(disposition))],
        )
        assert isinstance(row, Return)
        return row

    async def get(self, model: type[object], pk: int) -> object:
        async with self.db.read() as session:
            return await session.get(model, pk)

    async def count(self, model: type[object], *where: object) -> int:
        async with self.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]

    async def event_types(self) -> list[str]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(OrderEvent.type).where(OrderEvent.order_id == self.order_id).order_by(OrderEvent.id)
            )
            return list(rows)


async def set_policy(
    db: Database, tenant: Tenant, *, window: int = 30, fee: str = "10", now: datetime = T0
) -> None:
    async with db.write() as session:
        await policies.update_policies(
            session,
            merchant(tenant),
            policies.ReturnPolicyInput(
                body="Returns within the window.",
                return_window_days=window,
                restocking_fee_percent=D(fee),
                return_shipping_paid_by=ReturnShippingPayer.CUSTOMER,
                return_address=ADDRESS,
            ),
            policies.RefundPolicyInput(body="Refunds to the original payment method."),
            now=now - timedelta(days=30),
        )


async def make_scene(
    db: Database, tenant: Tenant, status: SupplierOrderStatus = SupplierOrderStatus.WAIT_BUYER_ACCEPT_GOODS
) -> Scene:
    ali = [f"{tenant.shop_id}77{n}" for n in range(2)]
    data = OrderInput(
        number="#2001",
        currency="USD",
        shipping=D("5.00"),
        created_at=T0 - timedelta(days=10),
        lines=[
            LineInput(
                "Tee",
                3,
                D("10.00"),
                sku="TEE-M",
                supplier_id=tenant.supplier_ids[0],
                aliexpress_order_id=ali[0],
            ),
            LineInput(
                "Mug",
                1,
                D("25.00"),
                sku="MUG",
                supplier_id=tenant.supplier_ids[1],
                aliexpress_order_id=ali[1],
            ),
        ],
        supplier_orders=[
            SupplierOrderInput(aliexpress_order_id=ali[0], cost=D("12.00"), status=status),
            SupplierOrderInput(aliexpress_order_id=ali[1], cost=D("8.00"), status=status),
        ],
    )
    async with db.write() as session:
        [result] = await import_orders(session, merchant(tenant), [data])
        lines = {line.sku: line.id for line in result.order.lines}
    return Scene(db, tenant, result.order.id, lines["TEE-M"], lines["MUG"])


@pytest.fixture
async def scene(db: Database, tenant: Tenant) -> Scene:
    await set_policy(db, tenant)
    return await make_scene(db, tenant)


async def refused(action: Awaitable[object]) -> ErrorCode:
    with pytest.raises(DomainError) as caught:
        await action
    return caught.value.errors[0].code


# --- the state machine, table-driven --------------------------------------------------------------------


async def reach(scene: Scene, state: str) -> int:
    """A return of 2 tees brought to ``state``; PARTIAL is APPROVED with 1 of the 2 received."""
    row = await scene.request()
    if state == "REQUESTED":
        return row.id
    if state == "DECLINED":
        await scene.run(returns.decline_return, row.id, ReturnDeclineReason.FINAL_SALE, "final sale")
        return row.id
    if state == "CANCELED":
        await scene.run(returns.cancel_return, row.id)
        return row.id
    await scene.run(returns.approve_return, row.id, "send it back")
    if state == "APPROVED":
        return row.id
    await scene.receive(row.id, 1)
    if state == "PARTIAL":
        return row.id
    await scene.receive(row.id, 1)
    if state == "RECEIVED":
        return row.id
    await scene.run(returns.close_return, row.id)
    assert state == "CLOSED"
    return row.id


ACTIONS: dict[str, Callable[[Scene, int], Awaitable[object]]] = {
    "approve": lambda s, pk: s.run(returns.approve_return, pk, None),
    "decline": lambda s, pk: s.run(returns.decline_return, pk, ReturnDeclineReason.RETURN_PERIOD_ENDED, None),
    "receive_one": lambda s, pk: s.receive(pk, 1),
    "close": lambda s, pk: s.run(returns.close_return, pk),
    "cancel": lambda s, pk: s.run(returns.cancel_return, pk),
}
IT = E.INVALID_TRANSITION
# (state before, action) → status after, or the error code of the refusal.
TRANSITIONS: dict[tuple[str, str], ReturnStatus | ErrorCode] = {
    ("REQUESTED", "approve"): R.APPROVED,
    ("REQUESTED", "decline"): R.DECLINED,
    ("REQUESTED", "receive_one"): IT,
    ("REQUESTED", "close"): IT,
    ("REQUESTED", "cancel"): R.CANCELED,
    ("APPROVED", "approve"): IT,
    ("APPROVED", "decline"): IT,
    ("APPROVED", "receive_one"): R.APPROVED,
    ("APPROVED", "close"): IT,
    ("APPROVED", "cancel"): R.CANCELED,
    ("PARTIAL", "approve"): IT,
    ("PARTIAL", "decline"): IT,
    ("PARTIAL", "receive_one"): R.RECEIVED,
    ("PARTIAL", "close"): R.CLOSED,
    ("PARTIAL", "cancel"): IT,
    **{("RECEIVED", action): IT for action in ACTIONS if action != "close"},
    ("RECEIVED", "close"): R.CLOSED,
    **{(state, action): IT for state in ("CLOSED", "DECLINED", "CANCELED") for action in ACTIONS},
}


@pytest.mark.parametrize(("state", "action"), list(TRANSITIONS), ids=[f"{s}-{a}" for s, a in TRANSITIONS])
async def test_transition(scene: Scene, state: str, action: str) -> None:
    pk = await reach(scene, state)
    before = await scene.count(OrderEvent, OrderEvent.order_id == scene.order_id)
    expected = TRANSITIONS[(state, action)]
    if isinstance(expected, ErrorCode):
        assert await refused(ACTIONS[action](scene, pk)) is expected
        assert await scene.count(OrderEvent, OrderEvent.order_id == scene.order_id) == before
        return
    await ACTIONS[action](scene, pk)
    row = await scene.get(Return, pk)
    assert isinstance(row, Return) and row.status is expected
    # Every step is on the order's timeline.
    assert await scene.count(OrderEvent, OrderEvent.order_id == scene.order_id) == before + 1


# --- refusals, table-driven -----------------------------------------------------------------------------


async def _other_order_line(scene: Scene) -> int:
    other = await make_tenant(scene.db)
    other_scene = await make_scene(scene.db, other)
    return other_scene.tee_line


REQUEST_REFUSALS: dict[
    str, tuple[Callable[[Scene], Awaitable[list[ReturnLineInput]]], str | None, ErrorCode]
] = {
    "more than ordered": (
        lambda s: _lines(ReturnLineInput(s.tee_line, 4, ReturnReason.UNWANTED)),
        None,
        E.EXCEEDS_RETURNABLE_QUANTITY,
    ),
    "zero units": (lambda s: _lines(ReturnLineInput(s.tee_line, 0, ReturnReason.UNWANTED)), None, E.INVALID),
    "negative units": (
        lambda s: _lines(ReturnLineInput(s.tee_line, -1, ReturnReason.UNWANTED)),
        None,
        E.INVALID,
    ),
    "no lines": (lambda s: _lines(), None, E.REQUIRED),
    "line twice": (
        lambda s: _lines(*[ReturnLineInput(s.tee_line, 1, ReturnReason.UNWANTED)] * 2),
        None,
        E.INVALID,
    ),
    "unknown line": (lambda s: _lines(ReturnLineInput(-1, 1, ReturnReason.UNWANTED)), None, E.NOT_FOUND),
    "another shop's line": (
        lambda s: _other(s),
        None,
        E.NOT_FOUND,
    ),
    "NUL in note": (
        lambda s: _lines(ReturnLineInput(s.tee_line, 1, ReturnReason.OTHER)),
        "a\x00b",
        E.INVALID,
    ),
    "lone surrogate in line note": (
        lambda s: _lines(ReturnLineInput(s.tee_line, 1, ReturnReason.OTHER, "bad \ud800")),
        None,
        E.INVALID,
    ),
    "note too long": (
        lambda s: _lines(ReturnLineInput(s.tee_line, 1, ReturnReason.OTHER)),
        "x" * 5001,
        E.TOO_LONG,
    ),
}


async def _lines(*lines: ReturnLineInput) -> list[ReturnLineInput]:
    return list(lines)


async def _other(scene: Scene) -> list[ReturnLineInput]:
    return [ReturnLineInput(await _other_order_line(scene), 1, ReturnReason.UNWANTED)]


@pytest.mark.parametrize("case", list(REQUEST_REFUSALS))
async def test_request_refusal(scene: Scene, case: str) -> None:
    make_lines, note, code = REQUEST_REFUSALS[case]
    lines = await make_lines(scene)
    assert await refused(scene.run(returns.request_return, scene.order_id, lines, note)) is code
    assert await scene.count(Return, Return.order_id == scene.order_id) == 0


async def test_quantities_count_other_returns_until_declined_or_canceled(scene: Scene) -> None:
    first = await scene.request(2)
    # 3 ordered, 2 held by the first return.
    assert await refused(scene.request(2)) is E.EXCEEDS_RETURNABLE_QUANTITY
    await scene.request(1)
    assert await refused(scene.request(1)) is E.EXCEEDS_RETURNABLE_QUANTITY
    await scene.run(returns.decline_return, first.id, ReturnDeclineReason.FINAL_SALE, None)
    await scene.request(2)


async def test_closed_partial_return_releases_what_never_arrived(scene: Scene) -> None:
    pk = await reach(scene, "PARTIAL")
    await scene.run(returns.close_return, pk)
    # 1 of 2 arrived before closing: 2 of the 3 tees can still be returned.
    await scene.request(2)


OTHER_REFUSALS: dict[str, tuple[str, Callable[[Scene, int], Awaitable[object]], ErrorCode]] = {
    "decline note over 500": (
        "REQUESTED",
        lambda s, pk: s.run(returns.decline_return, pk, ReturnDeclineReason.OTHER, "x" * 501),
        E.TOO_LONG,
    ),
    "decline OTHER without note": (
        "REQUESTED",
        lambda s, pk: s.run(returns.decline_return, pk, ReturnDeclineReason.OTHER, "  "),
        E.REQUIRED,
    ),
    "decline note with NUL": (
        "REQUESTED",
        lambda s, pk: s.run(returns.decline_return, pk, ReturnDeclineReason.OTHER, "\x00"),
        E.INVALID,
    ),
    "receive more than outstanding": (
        "PARTIAL",
        lambda s, pk: s.receive(pk, 2),
        E.EXCEEDS_OUTSTANDING_QUANTITY,
    ),
    "receive zero": ("APPROVED", lambda s, pk: s.receive(pk, 0), E.INVALID),
    "receive unknown line": (
        "APPROVED",
        lambda s, pk: s.run(returns.receive_return, pk, [ReceiptInput(-1, 1, ReturnDisposition.DISCARD)]),
        E.NOT_FOUND,
    ),
    "receive nothing": ("APPROVED", lambda s, pk: s.run(returns.receive_return, pk, []), E.REQUIRED),
    "unknown return": (
        "REQUESTED",
        lambda s, pk: s.run(returns.approve_return, pk + 1000, None),
        E.NOT_FOUND,
    ),
}


@pytest.mark.parametrize("case", list(OTHER_REFUSALS))
async def test_other_refusal(scene: Scene, case: str) -> None:
    state, action, code = OTHER_REFUSALS[case]
    pk = await reach(scene, state)
    assert await refused(action(scene, pk)) is code


async def test_approval_needs_a_return_address(db: Database, tenant: Tenant) -> None:
    scene = await make_scene(db, tenant)
    row = await scene.request()
    assert await refused(scene.run(returns.approve_return, row.id, None)) is E.NO_RETURN_ADDRESS


async def test_line_of_cancelled_supplier_order_cannot_be_returned(db: Database, tenant: Tenant) -> None:
    await set_policy(db, tenant)
    scene = await make_scene(db, tenant, SupplierOrderStatus.PLACE_ORDER_SUCCESS)

    line = await scene.get(OrderLine, scene.tee_line)
    assert isinstance(line, OrderLine) and line.supplier_order_id is not None
    async with db.write() as session:
        await request_cancellation(
            session,
            scene.merchant,
            line.supplier_order_id,
            CancellationReason.CUSTOMER_CANCELLED,
            None,
            response_time=timedelta(hours=48),
        )
    assert await refused(scene.request(1)) is E.INVALID_STATE


@pytest.mark.parametrize(
    "actor",
    [
        lambda t: merchant(t, frozenset({Scope.READ_ORDERS})),
        lambda t: Actor(kind=ActorKind.SUPPLIER, name="s", shop_id=t.shop_id, supplier_id=t.supplier_ids[0]),
    ],
    ids=["read-only merchant", "supplier"],
)
async def test_forbidden_without_write_orders(scene: Scene, actor: Callable[[Tenant], Actor]) -> None:
    pk = await reach(scene, "REQUESTED")
    who = actor(scene.tenant)
    async with scene.db.write() as session:
        assert await refused(returns.approve_return(session, who, pk)) is E.FORBIDDEN
    async with scene.db.write() as session:
        assert await refused(refunds.create_refund(session, who, scene.order_id, amount=D(1))) is E.FORBIDDEN
    async with scene.db.write() as session:
        assert (
            await refused(policies.update_policies(session, who, None, policies.RefundPolicyInput("x")))
            is E.FORBIDDEN
        )


async def test_another_shop_sees_nothing(scene: Scene, db: Database) -> None:
    pk = await reach(scene, "REQUESTED")
    other = merchant(await make_tenant(db))
    async with db.write() as session:
        assert await refused(returns.approve_return(session, other, pk)) is E.NOT_FOUND
    async with db.write() as session:
        assert (
            await refused(refunds.create_refund(session, other, scene.order_id, amount=D(1))) is E.NOT_FOUND
        )


# --- window, address and policy version -----------------------------------------------------------------


async def test_request_after_the_window_is_flagged(db: Database, tenant: Tenant) -> None:
    await set_policy(db, tenant, window=7)
    scene = await make_scene(db, tenant)
    # The order is 10 days old and its supplier orders have no delivery date: the window started with it.
    late = await scene.request(1)
    assert late.outside_return_window
    await set_policy(db, tenant, window=30, now=T0 + timedelta(days=1))
    # The new version took effect 29 days before T0; asked at T0, the 30-day window applies.
    timely = await scene.request(1)
    assert not timely.outside_return_window


async def test_approved_return_shows_address_and_policy_in_force(scene: Scene) -> None:
    row = await scene.request()
    assert row.return_address is None and row.policy_id is not None
    await scene.run(returns.approve_return, row.id, "ok")
    approved = await scene.get(Return, row.id)
    assert isinstance(approved, Return)
    assert approved.return_address == ADDRESS
    policy = await scene.get(policies.ShopPolicy, approved.policy_id or 0)
    assert isinstance(policy, policies.ShopPolicy) and policy.version == 1 and policy.return_window_days == 30


# --- returned stock -------------------------------------------------------------------------------------


async def test_received_items_feed_returned_stock_by_disposition(scene: Scene) -> None:
    row = await scene.request(3)
    await scene.run(returns.approve_return, row.id, None)
    await scene.receive(row.id, 1, "RESTOCK")
    await scene.receive(row.id, 1, "RESELL")
    await scene.receive(row.id, 1, "DISCARD")
    async with scene.db.read() as session:
        stock = {
            (s.sku, s.condition): s.quantity
            for s in await session.scalars(
                select(ReturnedStock).where(ReturnedStock.shop_id == scene.tenant.shop_id)
            )
        }
    assert stock == {("TEE-M", StockCondition.NEW): 1, ("TEE-M", StockCondition.USED): 1}
    done = await scene.get(Return, row.id)
    assert isinstance(done, Return) and done.status is R.RECEIVED

    used = await scene.run(returns.use_returned_stock, "TEE-M", 1, scene.order_id)
    assert isinstance(used, ReturnedStock) and used.condition is StockCondition.NEW and used.quantity == 0
    assert (
        await refused(scene.run(returns.use_returned_stock, "TEE-M", 2, scene.order_id))
        is E.INSUFFICIENT_RETURNED_STOCK
    )
    used = await scene.run(returns.use_returned_stock, "TEE-M", 1, scene.order_id)
    assert isinstance(used, ReturnedStock) and used.condition is StockCondition.USED and used.quantity == 0
    assert (
        await refused(scene.run(returns.use_returned_stock, "TEE-M", 1, scene.order_id))
        is E.INSUFFICIENT_RETURNED_STOCK
    )
    assert await refused(scene.run(returns.use_returned_stock, "NOPE\x00", 1, scene.order_id)) is E.INVALID
    assert (await scene.event_types()).count("returned_stock_used") == 2


# --- refunds --------------------------------------------------------------------------------------------


async def refund(scene: Scene, **kwargs: object) -> Refund:
    row = await scene.run(refunds.create_refund, scene.order_id, **kwargs)
    assert isinstance(row, Refund)
    return row


async def figures(scene: Scene) -> tuple[Decimal, Decimal, Decimal, FinancialStatus]:
    async with scene.db.read() as session:
        got = (await order_figures(session, [scene.order_id]))[scene.order_id]
        order = await session.get(Order, scene.order_id)
    assert order is not None
    return got.refunded, got.refundable, got.margin, order.financial_status


async def test_refunds_move_every_figure(scene: Scene) -> None:
    # Total 60.00 (3 x 10 + 25 + 5 shipping), supplier cost 20.00.
    assert await figures(scene) == (D(0), D(60), D(40), FinancialStatus.PAID)
    await refund(scene, amount=D("10.5"))
    assert await figures(scene) == (D("10.50"), D("49.50"), D("29.50"), FinancialStatus.PARTIALLY_REFUNDED)
    await refund(scene, lines=[RefundLineInput(scene.mug_line, 1)])
    assert await figures(scene) == (D("35.50"), D("24.50"), D("4.50"), FinancialStatus.PARTIALLY_REFUNDED)
    await refund(scene, amount=D("24.50"), note="the rest")
    assert await figures(scene) == (D(60), D(0), D(-20), FinancialStatus.REFUNDED)
    assert (await scene.event_types()).count("refund_created") == 3


async def test_refund_from_a_return_deducts_the_restocking_fee(scene: Scene) -> None:
    pk = await reach(scene, "RECEIVED")
    row = await refund(scene, return_id=pk)
    # 2 tees at 10.00 returned as too small: 20.00 less the 10% restocking fee.
    assert row.amount == D("18.00") and row.return_id == pk
    # The tees are refunded: the same return again has nothing left.
    assert await refused(refund(scene, return_id=pk)) is E.INVALID


REFUND_REFUSALS: dict[str, tuple[dict[str, object], ErrorCode]] = {
    "above refundable": ({"amount": D("60.01")}, E.EXCEEDS_REFUNDABLE_AMOUNT),
    "three decimals": ({"amount": D("1.005")}, E.INVALID),
    "negative": ({"amount": D("-1")}, E.INVALID),
    "zero": ({"amount": D(0)}, E.INVALID),
    "not a number": ({"amount": D("NaN")}, E.INVALID),
    "nothing to refund": ({}, E.REQUIRED),
    "NUL in note": ({"amount": D(1), "note": "\x00"}, E.INVALID),
    "lone surrogate in note": ({"amount": D(1), "note": "\udfff"}, E.INVALID),
    "unknown return": ({"amount": D(1), "return_id": 999_999}, E.NOT_FOUND),
    "unknown line": ({"lines": [RefundLineInput(-1, 1)]}, E.NOT_FOUND),
    "zero units": ({"lines": [RefundLineInput(-1, 0)]}, E.INVALID),
}


@pytest.mark.parametrize("case", list(REFUND_REFUSALS))
async def test_refund_refusal(scene: Scene, case: str) -> None:
    kwargs, code = REFUND_REFUSALS[case]
    assert await refused(refund(scene, **kwargs)) is code
    assert await scene.count(Refund, Refund.order_id == scene.order_id) == 0


async def test_refund_lines_never_exceed_ordered_less_refunded(scene: Scene) -> None:
    await refund(scene, lines=[RefundLineInput(scene.tee_line, 2)])
    assert (
        await refused(refund(scene, lines=[RefundLineInput(scene.tee_line, 2)]))
        is E.EXCEEDS_REFUNDABLE_QUANTITY
    )
    await refund(scene, lines=[RefundLineInput(scene.tee_line, 1)])


async def test_refund_of_a_declined_return_is_refused(scene: Scene) -> None:
    pk = await reach(scene, "DECLINED")
    assert await refused(refund(scene, amount=D(1), return_id=pk)) is E.INVALID_STATE


async def test_refund_due_of_a_fully_cancelled_order_is_paid_off_by_a_refund(
    db: Database, tenant: Tenant
) -> None:
    scene = await make_scene(db, tenant, SupplierOrderStatus.PLACE_ORDER_SUCCESS)

    async with db.read() as session:
        ids = list(
            await session.scalars(select(SupplierOrder.id).where(SupplierOrder.order_id == scene.order_id))
        )
    for pk in ids:
        async with db.write() as session:
            await request_cancellation(
                session,
                scene.merchant,
                pk,
                CancellationReason.CUSTOMER_CANCELLED,
                None,
                response_time=timedelta(hours=48),
            )
    async with db.read() as session:
        got = (await order_figures(session, [scene.order_id]))[scene.order_id]
    assert (got.refund_due, got.margin) == (D(60), D(0))
    await refund(scene, amount=D(60))
    async with db.read() as session:
        got = (await order_figures(session, [scene.order_id]))[scene.order_id]
    assert (got.refund_due, got.margin, got.refundable) == (D(0), D(0), D(0))


async def test_every_change_is_announced(scene: Scene) -> None:
    seen: list[tuple[Topic, str]] = []

    @reacts_to(TopicChanged)
    async def record(session: object, actor: Actor, event: TopicChanged) -> None:
        seen.append((event.topic, event.node_type))

    try:
        await reach(scene, "CLOSED")
        await refund(scene, amount=D(5))
    finally:
        _handlers[TopicChanged].remove(record)
    assert seen.count((Topic.RETURNS_UPDATED, "Return")) == 5
    assert (Topic.REFUNDS_CREATED, "Refund") in seen
    assert (Topic.ORDERS_UPDATED, "Order") in seen


# --- policies -------------------------------------------------------------------------------------------


POLICY_REFUSALS: dict[str, tuple[dict[str, object], ErrorCode]] = {
    "window too long": ({"return_window_days": 400}, E.INVALID),
    "negative window": ({"return_window_days": -1}, E.INVALID),
    "fee over 100": ({"restocking_fee_percent": D(101)}, E.INVALID),
    "fee with 3 decimals": ({"restocking_fee_percent": D("1.125")}, E.INVALID),
    "empty body": ({"body": "  "}, E.REQUIRED),
    "NUL body": ({"body": "a\x00"}, E.INVALID),
    "surrogate in address": ({"return_address": {"address1": "\ud800"}}, E.INVALID),
    "address without street": ({"return_address": {"city": "Leeds"}}, E.REQUIRED),
}


@pytest.mark.parametrize("case", list(POLICY_REFUSALS))
async def test_policy_refusal(db: Database, tenant: Tenant, case: str) -> None:
    overrides, code = POLICY_REFUSALS[case]
    data = {"body": "Returns.", **overrides}
    async with db.write() as session:
        assert (
            await refused(
                policies.update_policies(session, merchant(tenant), policies.ReturnPolicyInput(**data), None)  # type: ignore[arg-type]
            )
            is code
        )


async def test_policies_keep_versions(db: Database, tenant: Tenant) -> None:
    await set_policy(db, tenant, window=14)
    await set_policy(db, tenant, window=30, now=T0 + timedelta(days=1))
    async with db.read() as session:
        current = await policies.current_policies(session, tenant.shop_id)
        old = await policies.policy_in_force(
            session, tenant.shop_id, policies.PolicyKind.RETURN, T0 - timedelta(days=30)
        )
    assert {kind: p.version for kind, p in current.items()} == {
        policies.PolicyKind.REFUND: 2,
        policies.PolicyKind.RETURN: 2,
    }
    assert current[policies.PolicyKind.RETURN].return_window_days == 30
    assert (
        old is not None
        and old.version == 1
        and old.return_window_days == 14
        and old.superseded_at is not None
    )


async def test_draft_follows_the_suppliers_and_the_window(db: Database, tenant: Tenant) -> None:

    await set_policy(db, tenant, window=21, fee="15")
    async with db.write() as session:
        supplier = await session.get(Supplier, tenant.supplier_ids[1])
        assert supplier is not None
        supplier.accepts_returns, supplier.return_window_days = True, 15
    async with db.read() as session:
        text = await policies.policy_draft(session, merchant(tenant), policies.PolicyKind.RETURN)
        refund_text = await policies.policy_draft(session, merchant(tenant), policies.PolicyKind.REFUND)
    assert "21 days" in text and "1 Dock Road" in text and "15%" in text
    assert f"{supplier.name} may also be returned to that supplier within 15 days" in text
    assert "do not accept returns" in text
    assert "15%" in refund_text and f"{supplier.name} (15 days)" in refund_text
