"""Demo data: two shops, their AliExpress suppliers, split store orders, parcels, timelines and cancellations.

The data is a pure function of ``seed`` and ``now`` so that tests, screenshots and benchmarks see the same
shops every time, and it is written with Core bulk inserts, one transaction per batch of orders, so that
100,000 orders load into SQLite in a minute or two without holding them all in memory. What the shops sell, to
whom and how their supplier orders tend to move is data in `demo.catalogue`; this module only draws from it.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import random
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Database
from db.jobs import DEFAULT_MAX_ATTEMPTS, Job, JobStatus
from db.models import (
    ActorKind,
    Base,
    CancellationMessage,
    CancellationReason,
    CancellationRequest,
    CancellationStatus,
    FinancialStatus,
    MessageAuthor,
    Order,
    OrderEvent,
    OrderLine,
    OrderSortKey,
    OrderStatus,
    Package,
    SavedSearch,
    Shop,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
    TokenKind,
)
from db.types import utcnow
from demo.catalogue import (
    ACCEPT_TABLE,
    CANCEL_END_REASONS,
    CANCEL_TABLE,
    CARRIER_TABLE,
    COUNTRIES,
    DELIVERED,
    DEMO_SHOPS,
    EXCEPTIONS,
    INFO_REQUESTED_SHARE,
    LIFECYCLE,
    LINE_COUNTS,
    NOTES,
    PAID,
    QUANTITIES,
    REASON_TABLE,
    SHIPPED,
    SPLITS,
    STATUS_EVENTS,
    STATUS_TABLES,
    SUPPLIER_QUESTIONS,
    TAG_COUNTS,
    TAGS,
    TRANSIT,
    UNPAID_CANCEL,
    Country,
    ShopProfile,
    SupplierProfile,
    cumulative,
)
from domain.actors import Scope
from domain.cancellations import AUTO_APPROVE_KIND
from domain.tokens import derive_token, issue_token

S = SupplierOrderStatus
DAY = 86_400.0
HOUR = 3_600.0
BATCH_SIZE = 1_000
HISTORY = timedelta(days=120)
ACTOR_NAME = "Demo data"
ADMIN_LABEL = "Demo admin"
# The default of Settings.cancellation_response_hours: what a request made through the API would get.
RESPONSE_TIME = timedelta(hours=48)
# Any constant works; it only has to be the same for every process that might seed at the same time.
_ADVISORY_LOCK_KEY = 0x44524F50444553

_ORDERS: Table = Base.metadata.tables[Order.__tablename__]
_SUPPLIER_ORDERS: Table = Base.metadata.tables[SupplierOrder.__tablename__]
_LINES: Table = Base.metadata.tables[OrderLine.__tablename__]
_PACKAGES: Table = Base.metadata.tables[Package.__tablename__]
_EVENTS: Table = Base.metadata.tables[OrderEvent.__tablename__]
_REQUESTS: Table = Base.metadata.tables[CancellationRequest.__tablename__]
_MESSAGES: Table = Base.metadata.tables[CancellationMessage.__tablename__]
_JOBS: Table = Base.metadata.tables[Job.__tablename__]


@dataclass(frozen=True)
class DemoSeed:
    """What `serve` and `seed` print: the demo shops and tokens that open them."""

    shop_ids: dict[str, int]
    merchant_tokens: dict[str, str]
    supplier_tokens: dict[str, str]
    admin_token: str
    created: bool
    orders: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Who the demo tokens act as.


def _staff_name(shop: str) -> str:
    """The name the demo merchant token acts under, so that seeded requests read as if made through the API."""
    return f"{shop} staff (demo)"


def _supplier_user(supplier: str) -> str:
    """The name the demo supplier token acts under."""
    return f"{supplier} (demo)"


# ---------------------------------------------------------------------------------------------------------------
# Random helpers and the supplier catalogue as items to buy.


def _pick(rng: random.Random, table: tuple[list[Any], list[int]]) -> Any:
    """A weighted draw; what ``rng.choices`` does for one item, without its per-call overhead."""
    values, totals = table
    return values[bisect.bisect(totals, rng.random() * totals[-1])]


def _money(cents: int) -> Decimal:
    return Decimal(f"{cents // 100}.{cents % 100:02d}")


def _cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


def _fill(rng: random.Random, pattern: str) -> str:
    """Expand '#' to a digit and '@' to a capital letter."""
    out = []
    for char in pattern:
        if char == "#":
            out.append(str(rng.randrange(10)))
        elif char == "@":
            out.append(chr(65 + rng.randrange(26)))
        else:
            out.append(char)
    return "".join(out)


@functools.cache
def _ascii(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def _sku_code(value: str) -> str:
    """A short SKU segment: "Black" -> "BLACK", "Midnight Blue" -> "MID", "iPhone 15" -> "IPH15"."""
    compact = _ascii(value).upper()
    return compact if len(compact) <= 6 else compact[:3] + "".join(char for char in compact if char.isdigit())


def _after(start: datetime, limit: datetime, seconds: float) -> datetime:
    """``start`` plus a duration, squeezed so that the result never passes ``limit`` (usually now)."""
    room = (limit - start).total_seconds()
    return start + timedelta(seconds=int(min(seconds, room * 0.6)))


_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def _tracking_number(rng: random.Random, kind: str) -> str:
    if kind == "LP":
        return f"LP00{rng.randrange(10**12):012d}"
    if kind == "YT":
        return f"YT{rng.randrange(10**16):016d}"
    # UPU S10 (China Post): two letters, eight digits, a weighted mod-11 check digit, the country.
    serial = f"{rng.randrange(10**8):08d}"
    check = 11 - sum(int(digit) * weight for digit, weight in zip(serial, _S10_WEIGHTS, strict=True)) % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    return f"R{chr(65 + rng.randrange(26))}{serial}{check}CN"


@dataclass(frozen=True)
class _Item:
    title: str
    cents: int
    image_url: str
    variants: tuple[tuple[str | None, str], ...]  # variant title, SKU


def _catalogue(supplier: SupplierProfile) -> list[_Item]:
    items = []
    for product in supplier.products:
        combos: list[tuple[str, ...]] = [()]
        for values in product.options:
            combos = [(*combo, value) for combo in combos for value in values]
        variants = tuple(
            (" / ".join(combo) or None, "-".join([product.code, *(_sku_code(value) for value in combo)]))
            for combo in combos
        )
        digest = hashlib.md5(product.code.encode(), usedforsecurity=False).hexdigest()
        image = f"https://ae01.alicdn.com/kf/S{digest}.jpg"
        items.append(_Item(product.title, _cents(product.price), image, variants))
    return items


# ---------------------------------------------------------------------------------------------------------------
# Generation: plain dicts for Core inserts, with the foreign keys filled in once the parents have ids.


@dataclass
class _PlannedCancellation:
    """An open request; its own id goes into its messages, events and deadline job once it is inserted."""

    row: dict[str, Any]
    messages: list[dict[str, Any]]
    # Timeline rows (also in the order's events) whose data names the request.
    events: list[dict[str, Any]]


@dataclass
class _PlannedSupplierOrder:
    row: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    packages: list[dict[str, Any]] = field(default_factory=list)
    cancellation: _PlannedCancellation | None = None


@dataclass
class _PlannedOrder:
    row: dict[str, Any]
    supplier_orders: list[_PlannedSupplierOrder]
    # (AliExpress order id or None, row), in timeline order
    events: list[tuple[str | None, dict[str, Any]]]


@dataclass
class _Timeline:
    placed: datetime
    last: datetime
    paid: datetime | None = None
    shipped: datetime | None = None
    delivered: datetime | None = None
    finished: datetime | None = None


class _ShopGenerator:
    """Plans one shop's orders in number order, a batch at a time."""

    def __init__(
        self,
        profile: ShopProfile,
        shop_id: int,
        supplier_ids: dict[str, int],
        count: int,
        rng: random.Random,
        now: datetime,
    ) -> None:
        self.profile = profile
        self.shop_id = shop_id
        self.staff = _staff_name(profile.name)
        self.count = count
        self.rng = rng
        self.now = now
        self.suppliers = [
            (supplier, supplier_ids[supplier.name], _catalogue(supplier)) for supplier in profile.suppliers
        ]
        self.countries = cumulative([(COUNTRIES[code], weight) for code, weight in profile.countries])
        self.start = now - HISTORY
        self.slot = (HISTORY - timedelta(minutes=30)).total_seconds() / max(count, 1)
        self.next_aliexpress_id = 8_180_000_000_000_000 + rng.randrange(10**13)
        # So that a small demo still shows every AliExpress status: the older the order, the later the status.
        chosen = sorted(rng.sample(range(count), min(count, len(LIFECYCLE))), reverse=True)
        self.forced = dict(zip(chosen, LIFECYCLE, strict=False))

    def batches(self, size: int) -> Iterator[list[_PlannedOrder]]:
        for begin in range(0, self.count, size):
            yield [self._order(index) for index in range(begin, min(begin + size, self.count))]

    def _event(
        self,
        when: datetime,
        type_: str,
        message: str,
        aliexpress_id: str | None = None,
        *,
        actor: tuple[ActorKind, str] = (ActorKind.SYSTEM, ACTOR_NAME),
        **data: Any,
    ) -> tuple[str | None, dict[str, Any]]:
        return aliexpress_id, {
            "shop_id": self.shop_id,
            "order_id": None,
            "supplier_order_id": None,
            "type": type_,
            "actor_kind": actor[0],
            "actor_name": actor[1],
            "message": message,
            "data": data,
            "created_at": when,
        }

    def _status_event(
        self, when: datetime, aliexpress_id: str, status: SupplierOrderStatus
    ) -> tuple[str | None, dict[str, Any]]:
        return self._event(
            when,
            "supplier_order_status_changed",
            f"Supplier order {aliexpress_id} is now {status.value}",
            aliexpress_id,
            status=status.value,
        )

    def _message(self, author: MessageAuthor, name: str, body: str, when: datetime) -> dict[str, Any]:
        return {
            "shop_id": self.shop_id,
            "request_id": None,
            "author": author,
            "author_name": name,
            "body": body,
            "created_at": when,
        }

    def _customer(self) -> tuple[str, str, str, dict[str, str]]:
        rng = self.rng
        country: Country = _pick(rng, self.countries)
        first, last = rng.choice(country.first_names), rng.choice(country.last_names)
        local = rng.choice(
            (
                f"{_ascii(first)}.{_ascii(last)}",
                f"{_ascii(first)}{_ascii(last)}{rng.randrange(1, 99)}",
                f"{_ascii(first)[0]}{_ascii(last)}",
                f"{_ascii(first)}_{_ascii(last)}{rng.randrange(70, 100)}",
            )
        )
        city, province, postcode, area = rng.choice(country.cities)
        street = country.street_format.format(
            number=rng.randrange(1, 240), street=rng.choice(country.streets)
        )
        address = {
            "name": f"{first} {last}",
            "address1": street,
            "city": city,
            "province": province,
            "zip": _fill(rng, postcode),
            "country_code": country.code,
        }
        phone = _fill(rng, country.phone.format(area=area))
        return f"{first} {last}", f"{local}@{rng.choice(country.email_domains)}", phone, address

    def _status(self, index: int, position: int, age_days: float) -> SupplierOrderStatus:
        if position == 0 and index in self.forced:
            return self.forced[index]
        for max_age, table in STATUS_TABLES:
            if age_days < max_age:
                return _pick(self.rng, table)  # type: ignore[no-any-return]
        raise AssertionError("the last age band is unbounded")

    def _timeline(self, status: SupplierOrderStatus, reason: str | None, created: datetime) -> _Timeline:
        rng, now = self.rng, self.now
        placed = _after(created, now, rng.uniform(120, 1800))
        times = _Timeline(placed=placed, last=placed)
        if status in PAID or (status is S.FINISH and reason != UNPAID_CANCEL):
            times.paid = times.last = _after(placed, now, rng.uniform(60, 3600))
        accepted = status is S.FINISH and reason not in CANCEL_END_REASONS
        if status in SHIPPED or accepted or (status is S.IN_ISSUE and rng.random() < 0.7):
            assert times.paid is not None
            times.shipped = times.last = _after(times.paid, now, rng.uniform(1, 5) * DAY)
            if status is S.FUND_PROCESSING or accepted or (status is S.IN_ISSUE and rng.random() < 0.5):
                times.delivered = times.last = _after(times.shipped, now, rng.uniform(7, 20) * DAY)
        if status is S.FINISH:
            times.finished = times.last = _after(
                times.last, now, rng.uniform(1, 10) * DAY if accepted else rng.uniform(0.2, 3) * DAY
            )
        elif status is S.IN_CANCEL:
            assert times.paid is not None
            times.last = self._requested_at(times.paid)
        elif status in STATUS_EVENTS:
            times.last = _after(times.last, now, rng.uniform(0.05, 4) * DAY)
        return times

    def _requested_at(self, paid: datetime) -> datetime:
        """A recent request, so that its deadline is still ahead; never before the payment it wants back."""
        rng, now = self.rng, self.now
        requested = now - timedelta(seconds=int(rng.uniform(1, 40) * HOUR))
        return requested if requested > paid else _after(paid, now, rng.uniform(60, 3600))

    def _cancellation(
        self,
        supplier: SupplierProfile,
        aliexpress_id: str,
        requested: datetime,
        events: list[tuple[str | None, dict[str, Any]]],
    ) -> _PlannedCancellation:
        """The open request that holds a supplier order IN_CANCEL, recorded as ``request_cancellation`` does.

        A few requests wait on the merchant after the supplier asked a question (INFO_REQUESTED); only the
        PENDING ones get the auto-approval job, as in the domain.
        """
        rng = self.rng
        reason: CancellationReason
        reason, texts = _pick(rng, REASON_TABLE)
        respond_by = requested + RESPONSE_TIME
        requested_event = self._event(
            requested,
            "cancellation_requested",
            f"Cancellation of AliExpress order {aliexpress_id} requested ({reason})",
            aliexpress_id,
            actor=(ActorKind.MERCHANT, self.staff),
            cancellationRequestId=None,
            status=CancellationStatus.PENDING.value,
            reason=reason.value,
            respondBy=respond_by.isoformat(),
        )
        events += (requested_event, self._status_event(requested, aliexpress_id, S.IN_CANCEL))
        planned = _PlannedCancellation(
            row={},
            messages=[self._message(MessageAuthor.MERCHANT, self.staff, rng.choice(texts), requested)],
            events=[requested_event[1]],
        )
        status, updated = CancellationStatus.PENDING, requested
        if rng.random() < INFO_REQUESTED_SHARE:
            status = CancellationStatus.INFO_REQUESTED
            updated = _after(requested, self.now, rng.uniform(0.5, 12) * HOUR)
            author = _supplier_user(supplier.name)
            planned.messages.append(
                self._message(MessageAuthor.SUPPLIER, author, rng.choice(SUPPLIER_QUESTIONS), updated)
            )
            asked = self._event(
                updated,
                "cancellation_info_requested",
                f"The supplier asks for more information about cancelling AliExpress order {aliexpress_id}",
                aliexpress_id,
                actor=(ActorKind.SUPPLIER, author),
                cancellationRequestId=None,
                status=status.value,
            )
            events.append(asked)
            planned.events.append(asked[1])
        planned.row = {
            "shop_id": self.shop_id,
            "order_id": None,
            "supplier_order_id": None,
            "status": status,
            "reason": reason,
            "open_key": None,
            "previous_status": S.WAIT_SELLER_SEND_GOODS,
            "requested_by": self.staff,
            "respond_by": respond_by,
            "decided_at": None,
            "created_at": requested,
            "updated_at": updated,
        }
        return planned

    def _package(
        self,
        status: SupplierOrderStatus,
        times: _Timeline,
        origin: str,
        address: dict[str, str],
    ) -> tuple[dict[str, Any], str, str]:
        rng = self.rng
        assert times.shipped is not None
        carrier, kind = _pick(rng, CARRIER_TABLE)
        tracking = _tracking_number(rng, kind)
        places = {
            "origin": origin,
            "city": f"{address['city']}, {address['country_code']}",
            "country": address["country_code"],
        }
        if times.delivered is not None:
            middle = sorted(rng.sample(range(1, len(TRANSIT)), rng.randint(1, 4)))
            steps = [TRANSIT[0], *(TRANSIT[i] for i in middle), DELIVERED]
            end = times.delivered
        else:
            days = (self.now - times.shipped).total_seconds() / DAY
            steps = list(TRANSIT[: min(6, 2 + int(days // 3))])
            if status is S.IN_ISSUE:
                steps = [*steps[:5], rng.choice(EXCEPTIONS)]
            end = self.now
        events, when = [], times.shipped
        for number, (scan, location, description) in enumerate(steps):
            if number == len(steps) - 1 and times.delivered is not None:
                when = times.delivered
            elif number:
                when = _after(when, end, rng.uniform(0.3, 2.5) * DAY)
            events.append(
                {
                    "time": when.isoformat(),
                    "status": scan,
                    "location": location.format(**places),
                    "description": description,
                }
            )
        row = {
            "shop_id": self.shop_id,
            "supplier_order_id": None,
            "tracking_number": tracking,
            "carrier": carrier,
            "tracking_status": steps[-1][0],
            "tracking_events": events,
            "created_at": times.shipped,
            "updated_at": when,
        }
        times.last = max(times.last, when)
        return row, tracking, carrier

    def _lines(
        self, catalogue: list[_Item], count: int, position: int
    ) -> tuple[list[dict[str, Any]], int, int]:
        """Lines bought from one supplier, with their retail and cost totals in cents."""
        rng = self.rng
        lines, retail, cost = [], 0, 0
        for offset in range(count):
            item: _Item = rng.choice(catalogue)
            variant_title, sku = rng.choice(item.variants)
            quantity: int = _pick(rng, QUANTITIES)
            retail += quantity * item.cents
            cost += quantity * max(1, round(item.cents * rng.uniform(0.32, 0.58)))
            lines.append(
                {
                    "shop_id": self.shop_id,
                    "order_id": None,
                    "supplier_order_id": None,
                    "position": position + offset,
                    "title": item.title,
                    "variant_title": variant_title,
                    "sku": sku,
                    "quantity": quantity,
                    "unit_price": _money(item.cents),
                    "image_url": item.image_url,
                }
            )
        return lines, retail, cost

    def _outcome(
        self, index: int, position: int, age_days: float, cancel_all: bool
    ) -> tuple[SupplierOrderStatus, str | None]:
        rng = self.rng
        if cancel_all:
            return S.FINISH, rng.choice(("cancel_order_close_trade", UNPAID_CANCEL))
        status = self._status(index, position, age_days)
        if status is not S.FINISH:
            return status, None
        if age_days < 6 or rng.random() < 0.04:
            return status, _pick(rng, CANCEL_TABLE)
        return status, _pick(rng, ACCEPT_TABLE)

    def _supplier_order(
        self,
        supplier: SupplierProfile,
        supplier_id: int,
        outcome: tuple[SupplierOrderStatus, str | None],
        created: datetime,
        cost: int,
        lines: list[dict[str, Any]],
        address: dict[str, str],
        events: list[tuple[str | None, dict[str, Any]]],
    ) -> _PlannedSupplierOrder:
        """One AliExpress order with its parcels; its timeline entries go to ``events``."""
        rng = self.rng
        status, reason = outcome
        self.next_aliexpress_id += rng.randint(1, 50_000)
        aliexpress_id = str(self.next_aliexpress_id)
        times = self._timeline(status, reason, created)
        planned = _PlannedSupplierOrder(row={}, lines=lines)
        events.append(
            self._event(
                times.placed,
                "supplier_order_placed",
                f"Supplier order {aliexpress_id} placed with {supplier.name}",
                aliexpress_id,
                aliexpress_order_id=aliexpress_id,
                supplier=supplier.name,
            )
        )
        if times.paid is not None:
            events.append(
                self._event(
                    times.paid, "supplier_order_paid", f"Supplier order {aliexpress_id} paid", aliexpress_id
                )
            )
        if times.shipped is not None:
            partial = status is S.SELLER_PART_SEND_GOODS
            parcels = 2 if not partial and len(lines) > 2 and rng.random() < 0.3 else 1
            for _ in range(parcels):
                package, tracking, carrier = self._package(status, times, supplier.origin, address)
                # A repeated random tracking number would break the (supplier order, tracking) uniqueness.
                if any(existing["tracking_number"] == tracking for existing in planned.packages):
                    continue
                planned.packages.append(package)
                verb = "partially shipped" if partial else "shipped"
                events.append(
                    self._event(
                        times.shipped,
                        "supplier_order_shipped",
                        f"Supplier order {aliexpress_id} {verb} with {carrier}, tracking {tracking}",
                        aliexpress_id,
                        tracking_number=tracking,
                        carrier=carrier,
                    )
                )
                if times.delivered is not None:
                    events.append(
                        self._event(
                            times.delivered,
                            "package_delivered",
                            f"Package {tracking} delivered",
                            aliexpress_id,
                            tracking_number=tracking,
                        )
                    )
        if status is S.IN_CANCEL:
            planned.cancellation = self._cancellation(supplier, aliexpress_id, times.last, events)
        elif status in STATUS_EVENTS:
            events.append(self._status_event(times.last, aliexpress_id, status))
        if times.finished is not None:
            cancelled = reason in CANCEL_END_REASONS
            events.append(
                self._event(
                    times.finished,
                    "supplier_order_cancelled" if cancelled else "supplier_order_completed",
                    f"Supplier order {aliexpress_id} {'cancelled' if cancelled else 'completed'} ({reason})",
                    aliexpress_id,
                    end_reason=reason,
                )
            )
        planned.row = {
            "shop_id": self.shop_id,
            "order_id": None,
            "supplier_id": supplier_id,
            "aliexpress_order_id": aliexpress_id,
            "status": status,
            "end_reason": reason,
            "currency": self.profile.currency,
            "cost": _money(cost),
            "paid_at": times.paid,
            "shipped_at": times.shipped,
            "finished_at": times.finished,
            "created_at": times.placed,
            "updated_at": times.last,
        }
        return planned

    def _order(self, index: int) -> _PlannedOrder:
        rng, profile = self.rng, self.profile
        number = f"#{1001 + index}"
        created = self.start + timedelta(seconds=int(self.slot * (index + rng.random())))
        age_days = (self.now - created).total_seconds() / DAY
        name, email, phone, address = self._customer()

        line_count: int = _pick(rng, LINE_COUNTS)
        split = min(line_count, _pick(rng, SPLITS))
        chosen = rng.sample(self.suppliers, split)
        groups = sorted([*range(split), *(rng.randrange(split) for _ in range(line_count - split))])
        cancel_all = index not in self.forced and rng.random() < 0.03

        events = [self._event(created, "order_imported", f"Order {number} imported from the store")]
        supplier_orders: list[_PlannedSupplierOrder] = []
        subtotal = 0
        for group, (supplier, supplier_id, catalogue) in enumerate(chosen):
            lines, retail, cost = self._lines(catalogue, groups.count(group), groups.index(group))
            subtotal += retail
            outcome = self._outcome(index, group, age_days, cancel_all)
            supplier_orders.append(
                self._supplier_order(supplier, supplier_id, outcome, created, cost, lines, address, events)
            )

        rows = [supplier_order.row for supplier_order in supplier_orders]
        updated = max(created, *(row["updated_at"] for row in rows))
        cancelled_at = None
        if all(row["end_reason"] in CANCEL_END_REASONS for row in rows):
            status, financial = OrderStatus.CANCELLED, FinancialStatus.VOIDED
            cancelled_at = max(row["finished_at"] for row in rows)
            events.append(self._event(cancelled_at, "order_cancelled", f"Order {number} cancelled"))
        elif all(row["status"] is S.FINISH for row in rows):
            status, financial = OrderStatus.CLOSED, FinancialStatus.PAID
            events.append(self._event(updated, "order_closed", f"Order {number} closed"))
        else:
            status, financial = OrderStatus.OPEN, FinancialStatus.PAID
        shipping = 0 if subtotal >= profile.free_shipping_over else rng.choice(profile.shipping_rates)
        tags = rng.sample(TAGS, _pick(rng, TAG_COUNTS))
        order_row = {
            "shop_id": self.shop_id,
            "number": number,
            "number_value": 1001 + index,
            "customer_name": name,
            "customer_email": email,
            "customer_phone": phone,
            "shipping_address": address,
            "currency": profile.currency,
            "subtotal": _money(subtotal),
            "shipping": _money(shipping),
            "total": _money(subtotal + shipping),
            "financial_status": financial,
            "status": status,
            "tags": ",".join(tags),
            "note": rng.choice(NOTES) if rng.random() < 0.08 else None,
            "created_at": created,
            "updated_at": updated,
            "cancelled_at": cancelled_at,
        }
        # Stable sort: events at the same instant keep the order they happened in.
        events.sort(key=lambda event: event[1]["created_at"])
        return _PlannedOrder(order_row, supplier_orders, events)


# ---------------------------------------------------------------------------------------------------------------
# Writing.


async def _insert_batch(session: AsyncSession, batch: list[_PlannedOrder]) -> None:
    """Parents first, mapping returned ids by natural key so that no row order is assumed."""
    result = await session.execute(
        insert(_ORDERS).returning(_ORDERS.c.id, _ORDERS.c.number), [planned.row for planned in batch]
    )
    order_ids = {number: order_id for order_id, number in result}
    supplier_rows = []
    for planned in batch:
        order_id = order_ids[planned.row["number"]]
        for supplier_order in planned.supplier_orders:
            supplier_order.row["order_id"] = order_id
            supplier_rows.append(supplier_order.row)
    result = await session.execute(
        insert(_SUPPLIER_ORDERS).returning(_SUPPLIER_ORDERS.c.id, _SUPPLIER_ORDERS.c.aliexpress_order_id),
        supplier_rows,
    )
    supplier_order_ids = {aliexpress_id: row_id for row_id, aliexpress_id in result}
    lines, packages, events = [], [], []
    cancellations: dict[int, _PlannedCancellation] = {}
    for planned in batch:
        order_id = order_ids[planned.row["number"]]
        for supplier_order in planned.supplier_orders:
            supplier_order_id = supplier_order_ids[supplier_order.row["aliexpress_order_id"]]
            for line in supplier_order.lines:
                line["order_id"] = order_id
                line["supplier_order_id"] = supplier_order_id
                lines.append(line)
            for package in supplier_order.packages:
                package["supplier_order_id"] = supplier_order_id
                packages.append(package)
            if supplier_order.cancellation is not None:
                supplier_order.cancellation.row.update(
                    order_id=order_id, supplier_order_id=supplier_order_id, open_key=supplier_order_id
                )
                cancellations[supplier_order_id] = supplier_order.cancellation
        for aliexpress_id, event in planned.events:
            event["order_id"] = order_id
            event["supplier_order_id"] = supplier_order_ids[aliexpress_id] if aliexpress_id else None
            events.append(event)
    messages, jobs = await _insert_cancellations(session, cancellations)
    for table, rows in ((_LINES, lines), (_PACKAGES, packages), (_EVENTS, events), (_MESSAGES, messages)):
        if rows:
            await session.execute(insert(table), rows)
    if jobs:
        # As ``enqueue`` does: a job already holding one of these keys is kept rather than duplicated.
        dialect_insert = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        await session.execute(dialect_insert(_JOBS).on_conflict_do_nothing(index_elements=["key"]), jobs)


async def _insert_cancellations(
    session: AsyncSession, cancellations: dict[int, _PlannedCancellation]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Insert the requests (keyed by supplier order id); returns their messages and auto-approval jobs.

    Both, and the timeline rows that name a request, need the request's new id, so they are filled in here.
    """
    if not cancellations:
        return [], []
    result = await session.execute(
        insert(_REQUESTS).returning(_REQUESTS.c.id, _REQUESTS.c.supplier_order_id),
        [planned.row for planned in cancellations.values()],
    )
    request_ids = {supplier_order_id: request_id for request_id, supplier_order_id in result}
    messages, jobs = [], []
    for supplier_order_id, planned in cancellations.items():
        request_id = request_ids[supplier_order_id]
        for message in planned.messages:
            message["request_id"] = request_id
            messages.append(message)
        for event in planned.events:
            event["data"]["cancellationRequestId"] = request_id
        row = planned.row
        if row["status"] is CancellationStatus.PENDING:
            jobs.append(
                {
                    "shop_id": row["shop_id"],
                    "kind": AUTO_APPROVE_KIND,
                    "key": f"{AUTO_APPROVE_KIND}:{request_id}",
                    "payload": {"requestId": request_id},
                    "status": JobStatus.QUEUED,
                    "attempts": 0,
                    "max_attempts": DEFAULT_MAX_ATTEMPTS,
                    "run_at": row["respond_by"],
                    "created_at": row["created_at"],
                }
            )
    return messages, jobs


def _tokens(
    secret_key: str, shops: Sequence[str], suppliers: Sequence[str]
) -> tuple[dict[str, str], dict[str, str], str]:
    merchant = {name: derive_token(secret_key, TokenKind.MERCHANT, name) for name in shops}
    supplier = {name: derive_token(secret_key, TokenKind.SUPPLIER, name) for name in suppliers}
    return merchant, supplier, derive_token(secret_key, TokenKind.ADMIN, ADMIN_LABEL)


async def _existing(session: AsyncSession, secret_key: str) -> DemoSeed | None:
    names = [profile.name for profile in DEMO_SHOPS]
    shops = (
        await session.execute(select(Shop.id, Shop.name).where(Shop.name.in_(names)).order_by(Shop.id))
    ).all()
    if not shops:
        return None
    known = {supplier.name for profile in DEMO_SHOPS for supplier in profile.suppliers}
    suppliers = (
        await session.scalars(
            select(Supplier.name)
            .where(Supplier.shop_id.in_([shop_id for shop_id, _ in shops]))
            .order_by(Supplier.id)
        )
    ).all()
    merchant, supplier, admin = _tokens(
        secret_key, [name for _, name in shops], [n for n in suppliers if n in known]
    )
    return DemoSeed(
        shop_ids={name: shop_id for shop_id, name in shops},
        merchant_tokens=merchant,
        supplier_tokens=supplier,
        admin_token=admin,
        created=False,
    )


async def _create_shops(
    session: AsyncSession, rng: random.Random, secret_key: str, now: datetime
) -> tuple[dict[str, Shop], dict[str, Supplier]]:
    shops = {
        profile.name: Shop(
            name=profile.name,
            currency=profile.currency,
            email=profile.email,
            return_address=dict(profile.return_address),
            created_at=now - HISTORY - timedelta(days=10),
        )
        for profile in DEMO_SHOPS
    }
    session.add_all(shops.values())
    await session.flush()
    suppliers: dict[str, Supplier] = {}
    for profile in DEMO_SHOPS:
        shop = shops[profile.name]
        shop.shop_id = shop.id
        for supplier in profile.suppliers:
            suppliers[supplier.name] = Supplier(
                shop_id=shop.id,
                name=supplier.name,
                aliexpress_store_id=supplier.store_id,
                store_url=f"https://www.aliexpress.com/store/{supplier.store_id}",
                accepts_returns=supplier.accepts_returns,
                return_window_days=supplier.return_window_days,
                webhook_secret="whsec_" + base64.b64encode(rng.randbytes(24)).decode(),
                created_at=now - HISTORY - timedelta(days=5),
            )
    session.add_all(suppliers.values())
    await session.flush()

    merchant, supplier_tokens, admin = _tokens(secret_key, list(shops), list(suppliers))
    issued = [
        issue_token(
            session,
            kind=TokenKind.MERCHANT,
            name=_staff_name(name),
            shop_id=shops[name].id,
            scopes=Scope.ALL,
            raw=raw,
        )
        for name, raw in merchant.items()
    ]
    issued += [
        issue_token(
            session, kind=TokenKind.SUPPLIER, name=_supplier_user(name), supplier=suppliers[name], raw=raw
        )
        for name, raw in supplier_tokens.items()
    ]
    issued.append(issue_token(session, kind=TokenKind.ADMIN, name=ADMIN_LABEL, raw=admin))
    for token in issued:
        token.token.created_at = now
    await session.flush()
    return shops, suppliers


# Saved order views every demo shop starts with, written in the search syntax of ``orders(query:)``. The syntax
# has no field for customer refunds or supplier end reasons, so "Refund due" says what it can: the customer's
# payment still stands in full on an order that was cancelled or whose goods are disputed with the supplier.
DEMO_SAVED_SEARCHES: tuple[tuple[str, str, OrderSortKey, bool], ...] = (
    (
        "Awaiting shipment over 7 days",
        "supplier_status:wait_seller_send_goods created_at:<-7d",
        OrderSortKey.CREATED_AT,
        False,
    ),
    ("Open disputes", "has:open_dispute", OrderSortKey.UPDATED_AT, True),
    (
        "Refund due",
        "financial_status:paid (status:cancelled OR has:open_dispute)",
        OrderSortKey.UPDATED_AT,
        True,
    ),
    ("Cancellation pending", "has:open_cancellation", OrderSortKey.CREATED_AT, False),
)


def _add_saved_searches(session: AsyncSession, shops: dict[str, Shop], now: datetime) -> None:
    for name, shop in shops.items():
        for view, query, sort_key, reverse in DEMO_SAVED_SEARCHES:
            session.add(
                SavedSearch(
                    shop_id=shop.id,
                    name=view,
                    query=query,
                    sort_key=sort_key,
                    reverse=reverse,
                    created_by=_staff_name(name),
                    created_at=now,
                    updated_at=now,
                )
            )


async def seed_demo(
    database: Database,
    *,
    orders: int = 200,
    seed: int = 1,
    secret_key: str,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoSeed:
    """Create the demo shops, suppliers, tokens and ``orders`` orders, unless the demo shops already exist.

    The shops and tokens are committed first and the orders in batches, so an interrupted run leaves the shops
    in place with fewer orders; a later call then reports ``created=False`` rather than doubling them.
    """
    if orders < 0:
        raise ValueError("orders must not be negative")
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
    rng = random.Random(seed)

    async with database.write() as session:
        if database.dialect == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        existing = await _existing(session, secret_key)
        if existing is not None:
            return existing
        shops, suppliers = await _create_shops(session, rng, secret_key, now)
        _add_saved_searches(session, shops, now)
        shop_ids = {name: shop.id for name, shop in shops.items()}
        supplier_ids = {name: supplier.id for name, supplier in suppliers.items()}

    first = round(orders * DEMO_SHOPS[0].share)
    counts = [first, orders - first]
    generators = [
        _ShopGenerator(
            profile, shop_ids[profile.name], supplier_ids, count, random.Random(rng.getrandbits(64)), now
        )
        for profile, count in zip(DEMO_SHOPS, counts, strict=True)
    ]
    done = 0
    for generator in generators:
        for batch in generator.batches(BATCH_SIZE):
            async with database.write() as session:
                await _insert_batch(session, batch)
            done += len(batch)
            if progress is not None:
                progress(done, orders)

    merchant, supplier_tokens, admin = _tokens(secret_key, list(shops), list(suppliers))
    return DemoSeed(
        shop_ids=shop_ids,
        merchant_tokens=merchant,
        supplier_tokens=supplier_tokens,
        admin_token=admin,
        created=True,
        orders=orders,
    )
