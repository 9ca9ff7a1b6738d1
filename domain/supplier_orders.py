"""Supplier orders: the AliExpress status flow, packages and tracking, as reported by the supplier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from db.models import Order, OrderStatus, Package, SupplierOrder, SupplierOrderStatus
from db.types import utcnow
from domain.access import visible
from domain.actors import Actor
from domain.errors import DomainError, ErrorCode
from domain.events import record_event
from domain.reactions import DomainEvent, publish
from domain.topics import Topic, announce, announce_order_updated
from domain.validation import Checker

S = SupplierOrderStatus

# Where an AliExpress trade may go next. IN_CANCEL is entered and left through cancellation requests.
TRANSITIONS: dict[SupplierOrderStatus, frozenset[SupplierOrderStatus]] = {
    S.PLACE_ORDER_SUCCESS: frozenset(
        {
            S.PAYMENT_PROCESSING,
            S.RISK_CONTROL,
            S.WAIT_SELLER_EXAMINE_MONEY,
            S.WAIT_SELLER_SEND_GOODS,
            S.FINISH,
        }
    ),
    S.PAYMENT_PROCESSING: frozenset(
        {S.RISK_CONTROL, S.WAIT_SELLER_EXAMINE_MONEY, S.WAIT_SELLER_SEND_GOODS, S.FINISH}
    ),
    S.RISK_CONTROL: frozenset({S.WAIT_SELLER_EXAMINE_MONEY, S.WAIT_SELLER_SEND_GOODS, S.FINISH}),
    S.WAIT_SELLER_EXAMINE_MONEY: frozenset({S.WAIT_SELLER_SEND_GOODS, S.FINISH}),
    S.WAIT_SELLER_SEND_GOODS: frozenset(
        {S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS, S.IN_FROZEN, S.FINISH}
    ),
    S.SELLER_PART_SEND_GOODS: frozenset({S.WAIT_BUYER_ACCEPT_GOODS, S.IN_ISSUE, S.IN_FROZEN}),
    S.WAIT_BUYER_ACCEPT_GOODS: frozenset({S.FUND_PROCESSING, S.IN_ISSUE, S.IN_FROZEN, S.FINISH}),
    S.FUND_PROCESSING: frozenset({S.IN_ISSUE, S.FINISH}),
    # A supplier that ships while a cancellation is pending moves the trade on; the request then closes.
    S.IN_CANCEL: frozenset({S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS}),
    S.IN_ISSUE: frozenset({S.WAIT_BUYER_ACCEPT_GOODS, S.FUND_PROCESSING, S.FINISH}),
    S.IN_FROZEN: frozenset(
        {S.WAIT_SELLER_SEND_GOODS, S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS, S.FINISH}
    ),
    S.FINISH: frozenset(),
}

UNPAID = frozenset({S.PLACE_ORDER_SUCCESS, S.PAYMENT_PROCESSING, S.RISK_CONTROL})
SHIPPED = frozenset({S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS, S.FUND_PROCESSING, S.IN_ISSUE})
# States in which goods may be on their way, so packages and tracking make sense.
TRACKABLE = SHIPPED | {S.IN_FROZEN, S.FINISH, S.IN_CANCEL}

END_REASONS = frozenset(
    {
        "buyer_accept_goods",
        "buyer_accept_goods_timeout",
        "cancel_order_close_trade",
        "buyer_cancel_notpay_order",
        "buyer_pay_timeout",
        "seller_send_goods_timeout",
        "risk_reject_closed",
        "seller_accept_issue_no_goods_return",
        "buyer_issue_refund_success",
    }
)
DEFAULT_END_REASON = {
    **dict.fromkeys(UNPAID, "buyer_pay_timeout"),
    S.WAIT_SELLER_EXAMINE_MONEY: "risk_reject_closed",
    S.WAIT_SELLER_SEND_GOODS: "seller_send_goods_timeout",
    S.IN_FROZEN: "seller_send_goods_timeout",
}
MAX_PACKAGES = 20
# A supplier order cancelled before it shipped costs nothing: its payment was voided or refunded.
CANCELLED_TRADE = "cancel_order_close_trade"


MAX_TRACKING_EVENTS = 200


@dataclass(frozen=True)
class TrackingEventInput:
    time: datetime
    status: str
    description: str = ""
    location: str | None = None


@dataclass(frozen=True)
class PackageInput:
    tracking_number: str
    carrier: str | None = None
    tracking_status: str | None = None
    events: Sequence[TrackingEventInput] = ()


@dataclass(frozen=True)
class SupplierOrderChange:
    status: SupplierOrderStatus | None = None
    end_reason: str | None = None
    packages: Sequence[PackageInput] = ()


def check_packages(check: Checker, path: tuple[str | int, ...], packages: Sequence[PackageInput]) -> None:
    if len(packages) > MAX_PACKAGES:
        check.fail(path, f"at most {MAX_PACKAGES} packages", ErrorCode.TOO_MANY)
        return
    for index, package in enumerate(packages):
        check.text((*path, index, "trackingNumber"), package.tracking_number, max_length=100, required=True)
        check.text((*path, index, "carrier"), package.carrier, max_length=100)
        check.text((*path, index, "trackingStatus"), package.tracking_status, max_length=60)
        if len(package.events) > MAX_TRACKING_EVENTS:
            check.fail((*path, index, "events"), f"at most {MAX_TRACKING_EVENTS} events", ErrorCode.TOO_MANY)
        for event_index, event in enumerate(package.events):
            check.text(
                (*path, index, "events", event_index, "status"), event.status, max_length=60, required=True
            )
            check.text(
                (*path, index, "events", event_index, "description"), event.description, max_length=500
            )
            check.text((*path, index, "events", event_index, "location"), event.location, max_length=200)


def _event_json(event: TrackingEventInput) -> dict[str, Any]:
    return {
        "time": event.time.isoformat(),
        "status": event.status,
        "location": event.location,
        "description": event.description,
    }


@dataclass(frozen=True)
class PackageChanges:
    """Tracking numbers that were new, and those of known packages whose carrier, status or scans changed."""

    added: list[str]
    updated: list[str]


def merge_packages(
    supplier_order: SupplierOrder, packages: Sequence[PackageInput], now: datetime
) -> PackageChanges:
    """Add or update packages by tracking number, keeping each scan (time, status) once.

    The caller holds the supplier order's lock (see ``load_supplier_order``), so the packages it loaded are
    the current ones and a report sent twice, or by two senders at once, changes nothing the second time.
    """
    by_number = {package.tracking_number: package for package in supplier_order.packages}
    added: list[str] = []
    updated: list[str] = []
    for data in packages:
        package = by_number.get(data.tracking_number)
        changed = package is None
        if package is None:
            package = Package(
                shop_id=supplier_order.shop_id,
                tracking_number=data.tracking_number,
                created_at=now,
                tracking_events=[],
            )
            supplier_order.packages.append(package)
            by_number[data.tracking_number] = package
            added.append(data.tracking_number)
        if data.carrier is not None and data.carrier != package.carrier:
            package.carrier = data.carrier
            changed = True
        if data.tracking_status is not None and data.tracking_status != package.tracking_status:
            package.tracking_status = data.tracking_status
            changed = True
        if data.events:
            known = {(event["time"], event["status"]) for event in package.tracking_events}
            fresh: list[dict[str, Any]] = []
            for event in data.events:
                key = (event.time.isoformat(), event.status)
                if key not in known:
                    known.add(key)
                    fresh.append(_event_json(event))
            if fresh:
                package.tracking_events = sorted(
                    [*package.tracking_events, *fresh], key=lambda event: event["time"]
                )
                changed = True
        if changed:
            package.updated_at = now
            if data.tracking_number not in added and data.tracking_number not in updated:
                updated.append(data.tracking_number)
    return PackageChanges(added=added, updated=updated)


def apply_packages(
    supplier_order: SupplierOrder, packages: Sequence[PackageInput], now: datetime
) -> list[str]:
    """Add or update packages by tracking number; returns the tracking numbers that were new."""
    return merge_packages(supplier_order, packages, now).added


def supplier_order_event(
    session: AsyncSession,
    actor: Actor,
    supplier_order: SupplierOrder,
    type: str,
    message: str,
    data: dict[str, Any],
) -> None:
    """A timeline entry of the store order about one of its supplier orders."""
    record_event(
        session,
        actor,
        shop_id=supplier_order.shop_id,
        order_id=supplier_order.order_id,
        supplier_order_id=supplier_order.id,
        type=type,
        message=message,
        data=data,
    )


@dataclass(frozen=True)
class SupplierOrderStatusChanged(DomainEvent):
    """A supplier order moved from ``previous`` to the status it has now (the object, in this session)."""

    supplier_order: SupplierOrder
    previous: SupplierOrderStatus


async def record_status_change(
    session: AsyncSession,
    actor: Actor,
    supplier_order: SupplierOrder,
    previous: SupplierOrderStatus,
    now: datetime,
) -> None:
    """The one way a supplier order's status change is recorded: a timeline entry, then every reaction."""
    status = supplier_order.status
    supplier_order_event(
        session,
        actor,
        supplier_order,
        "supplier_order_status_changed",
        f"AliExpress order {supplier_order.aliexpress_order_id}: {previous} → {status}",
        {"from": previous.value, "to": status.value, "endReason": supplier_order.end_reason},
    )
    await publish(
        session,
        actor,
        SupplierOrderStatusChanged(
            shop_id=supplier_order.shop_id, occurred_at=now, supplier_order=supplier_order, previous=previous
        ),
    )


async def load_supplier_order(
    session: AsyncSession, actor: Actor, supplier_order_id: int, *, for_update: bool = False
) -> SupplierOrder:
    """The supplier order with its packages and store order, if the actor may see it.

    ``for_update`` locks the store order's row, then the supplier order's, and reads both afresh. Every
    writer takes them in that order (an import holds the store order while it rewrites its supplier orders),
    so writers of one store order queue up instead of deadlocking or overwriting each other's changes.
    """
    where = (SupplierOrder.id == supplier_order_id, visible(SupplierOrder, actor))
    statement = select(SupplierOrder).where(*where)
    if for_update:
        order_id = await session.scalar(select(SupplierOrder.order_id).where(*where))
        if order_id is None:
            raise DomainError.single(ErrorCode.NOT_FOUND, "supplier order not found", "id")
        await session.execute(select(Order.id).where(Order.id == order_id).with_for_update())
        statement = statement.with_for_update().execution_options(populate_existing=True)
    statement = statement.options(selectinload(SupplierOrder.packages), selectinload(SupplierOrder.order))
    supplier_order = (await session.execute(statement)).scalar_one_or_none()
    if supplier_order is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "supplier order not found", "id")
    return supplier_order


async def update_supplier_order(
    session: AsyncSession, actor: Actor, supplier_order_id: int, change: SupplierOrderChange
) -> SupplierOrder:
    """Move a supplier order along the AliExpress flow and record packages and tracking (supplier only)."""
    if not actor.is_supplier:
        raise DomainError.single(ErrorCode.FORBIDDEN, "only the supplier of this order may update it")
    check = Checker()
    check_packages(check, ("packages",), change.packages)
    if change.end_reason is not None and change.end_reason not in END_REASONS:
        check.fail(("endReason",), f"unknown end reason; one of {', '.join(sorted(END_REASONS))}")
    check.raise_if_any()
    supplier_order = await load_supplier_order(session, actor, supplier_order_id, for_update=True)
    now = utcnow()
    previous = supplier_order.status
    target = change.status or previous
    if target is not previous and target not in TRANSITIONS[previous]:
        raise DomainError.single(
            ErrorCode.INVALID_TRANSITION, f"a supplier order in {previous} cannot move to {target}", "status"
        )
    if change.end_reason is not None and target is not S.FINISH:
        raise DomainError.single(ErrorCode.INVALID, "endReason is only given with status FINISH", "endReason")
    if change.packages and target not in TRACKABLE:
        raise DomainError.single(
            ErrorCode.INVALID_STATE, f"no packages while the order is {target}", "packages"
        )
    if change.status is None and not change.packages:
        raise DomainError.single(ErrorCode.REQUIRED, "give a status or packages", "status")

    order = supplier_order.order
    if target is not previous:
        supplier_order.status = target
        if target in SHIPPED and supplier_order.shipped_at is None:
            supplier_order.shipped_at = now
        if target is S.FINISH:
            supplier_order.finished_at = now
            supplier_order.end_reason = change.end_reason or DEFAULT_END_REASON.get(
                previous, "buyer_accept_goods"
            )
        await record_status_change(session, actor, supplier_order, previous, now)
    changes = merge_packages(supplier_order, change.packages, now)
    ali_id = supplier_order.aliexpress_order_id
    for tracking_number in changes.added:
        supplier_order_event(
            session,
            actor,
            supplier_order,
            "package_added",
            f"Package {tracking_number} added to AliExpress order {ali_id}",
            {"trackingNumber": tracking_number},
        )
    if changes.updated and not changes.added:
        supplier_order_event(
            session,
            actor,
            supplier_order,
            "tracking_updated",
            f"Tracking updated for AliExpress order {ali_id}",
            {"trackingNumbers": changes.updated},
        )
    if target is not previous or changes.added or changes.updated:
        supplier_order.updated_at = now
        order.updated_at = now
    await refresh_order_status(session, actor, order, now)
    await announce(
        session,
        actor,
        Topic.SUPPLIER_ORDERS_UPDATED,
        shop_id=supplier_order.shop_id,
        node_type="SupplierOrder",
        node_id=supplier_order.id,
        now=now,
    )
    return supplier_order


def derived_order_status(order: Order, supplier_orders: Sequence[SupplierOrder]) -> OrderStatus:
    """CANCELLED once every supplier order is cancelled, CLOSED once every one has finished otherwise."""
    if order.status is OrderStatus.CANCELLED or not supplier_orders:
        return order.status
    finished = [so for so in supplier_orders if so.status is S.FINISH]
    if len(finished) < len(supplier_orders):
        return OrderStatus.OPEN
    if all(so.end_reason == "cancel_order_close_trade" for so in finished):
        return OrderStatus.CANCELLED
    return OrderStatus.CLOSED


async def refresh_order_status(session: AsyncSession, actor: Actor, order: Order, now: datetime) -> None:
    """Derive the store order's status from its supplier orders, and put a change on the timeline."""
    siblings = (await session.scalars(select(SupplierOrder).where(SupplierOrder.order_id == order.id))).all()
    status = derived_order_status(order, siblings)
    if status is order.status:
        return
    order.status = status
    if status is OrderStatus.CANCELLED:
        order.cancelled_at = now
        message = f"Order {order.number} cancelled: all its supplier orders were cancelled"
    else:
        message = f"Order {order.number} is now {status}"
    record_event(
        session,
        actor,
        shop_id=order.shop_id,
        order_id=order.id,
        type=f"order_{status.value.lower()}",
        message=message,
        data={"status": status.value},
    )
    await announce_order_updated(session, actor, order, now)


CANCELLABLE = UNPAID | {S.WAIT_SELLER_EXAMINE_MONEY, S.WAIT_SELLER_SEND_GOODS}
DISPUTABLE = SHIPPED - {S.IN_ISSUE}
DISPUTE_WINDOW = timedelta(days=15)


def can_request_cancellation(supplier_order: SupplierOrder) -> bool:
    """Before shipment, and not while a request is already open (IN_CANCEL)."""
    return supplier_order.status in CANCELLABLE


def can_open_dispute(
    supplier_order: SupplierOrder, *, now: datetime | None = None, window: timedelta = DISPUTE_WINDOW
) -> bool:
    """Once shipped, or finished within the protection window; never twice at once (IN_ISSUE)."""
    if supplier_order.status in DISPUTABLE:
        return True
    if supplier_order.status is S.FINISH and supplier_order.shipped_at is not None:
        finished = supplier_order.finished_at or supplier_order.updated_at
        return (now or utcnow()) - finished <= window
    return False
