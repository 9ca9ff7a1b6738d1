"""Demo data: two shops, their AliExpress suppliers, split store orders, parcels, timelines and cancellations.

The data is a pure function of ``seed`` and ``now`` so that tests, screenshots and benchmarks see the same
shops every time. It is written in one transaction, a batch of orders at a time: a planner (for large seeds,
one process per shop, side by side) numbers and encodes the rows, the writer COPYs them (PostgreSQL) or
inserts them with one executemany per table (SQLite), and the tables' secondary indexes, SQLite's FTS5 table
and PostgreSQL's foreign keys are restored once at the end rather than kept up to date row by row. What the
shops sell, to whom and how their supplier orders tend to move is data in `demo.catalogue`; this module only
draws from it.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import contextlib
import functools
import gc
import hashlib
import hmac
import itertools
import multiprocessing
import random
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from queue import Empty
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.bulk import (
    RowEncoder,
    bulk_insert,
    indexes_and_foreign_keys_deferred,
    insert_encoded,
    next_id,
    set_next_id,
)
from db.engine import Database
from db.jobs import DEFAULT_MAX_ATTEMPTS, Job, JobStatus
from db.models import (
    ActorKind,
    Base,
    CancellationMessage,
    CancellationReason,
    CancellationRequest,
    CancellationStatus,
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
    FinancialStatus,
    MessageAuthor,
    Order,
    OrderEvent,
    OrderLine,
    OrderSortKey,
    OrderStatus,
    Package,
    PolicyKind,
    Refund,
    RefundLine,
    Return,
    ReturnDeclineReason,
    ReturnDisposition,
    ReturnedStock,
    ReturnLine,
    ReturnReason,
    ReturnReceipt,
    ReturnShippingPayer,
    ReturnStatus,
    SavedSearch,
    Shop,
    ShopPolicy,
    StockCondition,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
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
from domain.disputes import DEADLINE_KIND as DISPUTE_DEADLINE_KIND
from domain.disputes import OPEN as DISPUTE_OPEN
from domain.money import quantize
from domain.policies import draft_policy
from domain.refunds import CHANGE_OF_MIND
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
# Parents before children; the planner numbers the first three itself.
_NUMBERED = (_ORDERS, _SUPPLIER_ORDERS, _REQUESTS)
_WRITE_ORDER = (*_NUMBERED, _LINES, _PACKAGES, _EVENTS, _MESSAGES)


@dataclass(frozen=True)
class DemoSeed:
    """What `serve` and `seed` print: the demo shops and tokens that open them."""

    shop_ids: dict[str, int]
    merchant_tokens: dict[str, str]
    supplier_tokens: dict[str, str]
    admin_token: str
    created: bool
    orders: int = 0
    # By supplier name: its id and its webhook secret, so that signed webhooks can be tried on demo data.
    supplier_ids: dict[str, int] = field(default_factory=dict)
    webhook_secrets: dict[str, str] = field(default_factory=dict)


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


@functools.cache
def _money(cents: int) -> Decimal:
    # Cached: the same prices and totals come back thousands of times in a large seed.
    return Decimal(f"{cents // 100}.{cents % 100:02d}")


def _cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


def _fill(rng: random.Random, pattern: str) -> str:
    """Expand '#' to a digit and '@' to a capital letter."""
    randrange = rng.randrange
    return "".join(
        [
            _DIGITS[randrange(10)] if char == "#" else _LETTERS[randrange(26)] if char == "@" else char
            for char in pattern
        ]
    )


_DIGITS = "0123456789"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


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
    most = (limit - start).total_seconds() * 0.6
    return start + timedelta(seconds=int(most if most < seconds else seconds))


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


# The four shapes of a customer's email address, drawn with one ``choice`` among four.
_EMAIL_FORMS = (0, 1, 2, 3)


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
            f"Supplier order {aliexpress_id} is now {status._value_}",
            aliexpress_id,
            status=status._value_,
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
        ascii_first, ascii_last = _ascii(first), _ascii(last)
        # Both numbers are drawn whichever form is chosen, as they always have been, so the stream is unchanged.
        number, year = rng.randrange(1, 99), rng.randrange(70, 100)
        form = rng.choice(_EMAIL_FORMS)
        if form == 0:
            local = f"{ascii_first}.{ascii_last}"
        elif form == 1:
            local = f"{ascii_first}{ascii_last}{number}"
        elif form == 2:
            local = f"{ascii_first[0]}{ascii_last}"
        else:
            local = f"{ascii_first}_{ascii_last}{year}"
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
                    "location": location.format_map(places),
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
# Planning in step with writing.

# Below this many orders a helper process costs more to start than it saves.
PIPELINE_FROM = 5_000
# Batches planned ahead of the writer, bounding the memory the pipeline holds.
PIPELINE_DEPTH = 4
# Batches a shop's planner holds unnumbered while the shop before is still being planned (about 10 MB each):
# all of the second shop's at 100,000 orders, a bounded part of larger seeds.
HELD_AHEAD = 50


@dataclass(frozen=True)
class _ShopPlan:
    """One shop's orders to plan, picklable, so that a planner process can run it."""

    profile: ShopProfile
    shop_id: int
    supplier_ids: dict[str, int]
    count: int
    seed: int
    now: datetime
    dialect: str
    batch_size: int
    # Batches held unnumbered, at most, while the shop before is being planned.
    held_ahead: int

    def batches(self) -> Iterator[list[_PlannedOrder]]:
        generator = _ShopGenerator(
            self.profile, self.shop_id, self.supplier_ids, self.count, random.Random(self.seed), self.now
        )
        return generator.batches(self.batch_size)


def _plan_in_turn(plans: Sequence[_ShopPlan], first_ids: tuple[int, int, int]) -> Iterator[_EncodedBatch]:
    """Every shop's batches, numbered on from ``first_ids`` (the ids the next order, supplier order and
    cancellation request get): the planner numbers rows itself."""
    numbering = _Numbering(plans[0].dialect, *first_ids)
    for plan in plans:
        for batch in plan.batches():
            yield numbering.encode(batch)


@dataclass
class _EncodedBatch:
    """One batch of orders as the database stores them: by table, its columns and rows as tuples."""

    orders: int
    rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]
    jobs: list[dict[str, Any]]
    # The ids the next order, supplier order and cancellation request would get.
    next_ids: tuple[int, int, int]


class _Numbering:
    """Gives planned rows their ids and their parents', in the order inserts would have, and encodes them."""

    def __init__(self, dialect: str, order_id: int, supplier_order_id: int, request_id: int) -> None:
        self.dialect = dialect
        self.order_id, self.supplier_order_id, self.request_id = order_id, supplier_order_id, request_id
        self.encoders: dict[str, RowEncoder] = {}

    @property
    def next_ids(self) -> tuple[int, int, int]:
        """The ids the next order, supplier order and cancellation request would get."""
        return self.order_id, self.supplier_order_id, self.request_id

    def encode(self, batch: list[_PlannedOrder]) -> _EncodedBatch:
        by_table: dict[Table, list[dict[str, Any]]] = {table: [] for table in _WRITE_ORDER}
        jobs: list[dict[str, Any]] = []
        add_order, add_supplier_order = by_table[_ORDERS].append, by_table[_SUPPLIER_ORDERS].append
        add_line, add_package, add_event = (
            by_table[_LINES].append,
            by_table[_PACKAGES].append,
            by_table[_EVENTS].append,
        )
        for planned in batch:
            planned.row["id"] = order_id = self.order_id
            self.order_id += 1
            add_order(planned.row)
            supplier_order_ids = {}
            for supplier_order in planned.supplier_orders:
                row = supplier_order.row
                row["id"] = supplier_order_id = self.supplier_order_id
                self.supplier_order_id += 1
                row["order_id"] = order_id
                add_supplier_order(row)
                supplier_order_ids[row["aliexpress_order_id"]] = supplier_order_id
                for line in supplier_order.lines:
                    line["order_id"] = order_id
                    line["supplier_order_id"] = supplier_order_id
                    add_line(line)
                for package in supplier_order.packages:
                    package["supplier_order_id"] = supplier_order_id
                    add_package(package)
                if supplier_order.cancellation is not None:
                    self._cancellation(
                        supplier_order.cancellation, order_id, supplier_order_id, by_table, jobs
                    )
            for aliexpress_id, event in planned.events:
                event["order_id"] = order_id
                event["supplier_order_id"] = supplier_order_ids[aliexpress_id] if aliexpress_id else None
                add_event(event)
        rows = {}
        for table, dicts in by_table.items():
            if dicts:
                encoder = self.encoders.get(table.name)
                if encoder is None:
                    encoder = self.encoders[table.name] = RowEncoder(table, self.dialect, dicts[0].keys())
                rows[table.name] = (encoder.columns, list(map(encoder.encode, dicts)))
        return _EncodedBatch(len(batch), rows, jobs, self.next_ids)

    def _cancellation(
        self,
        planned: _PlannedCancellation,
        order_id: int,
        supplier_order_id: int,
        by_table: dict[Table, list[dict[str, Any]]],
        jobs: list[dict[str, Any]],
    ) -> None:
        """The request, its messages and (while it waits on the supplier) its auto-approval job, which, like
        the timeline rows that name it, need its id."""
        row = planned.row
        row.update(
            id=self.request_id,
            order_id=order_id,
            supplier_order_id=supplier_order_id,
            open_key=supplier_order_id,
        )
        request_id = self.request_id
        self.request_id += 1
        by_table[_REQUESTS].append(row)
        for message in planned.messages:
            message["request_id"] = request_id
            by_table[_MESSAGES].append(message)
        for event in planned.events:
            event["data"]["cancellationRequestId"] = request_id
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


def _plan_shop_into(plan: _ShopPlan, first_ids: Any, next_ids: Any, queue: Any) -> None:
    """A planner process: one shop's batches into ``queue``, then None (or the error that stopped it).

    A shop's ids follow on from the shop before's, which only its planner knows once it has planned every
    order; until ``first_ids`` delivers them this planner plans ahead and holds its batches unnumbered. Its
    own last ids go to ``next_ids``, for the next shop's planner (None after the last shop).
    """
    # The planned rows hold no reference cycles, so reference counting frees each batch; the cyclic
    # collector would only walk the millions of short-lived dicts and tuples, costing a good part of the CPU.
    gc.disable()
    try:
        numbering: _Numbering | None = None
        waiting: list[list[_PlannedOrder]] = []
        for batch in plan.batches():
            if numbering is None:
                try:
                    # Past a bound on the batches held, wait for the ids rather than hold more.
                    numbering = _Numbering(
                        plan.dialect, *first_ids.get(block=len(waiting) >= plan.held_ahead)
                    )
                except Empty:
                    waiting.append(batch)
                    continue
            while waiting:
                queue.put(numbering.encode(waiting.pop(0)))
            queue.put(numbering.encode(batch))
        if numbering is None:
            numbering = _Numbering(plan.dialect, *first_ids.get())
        while waiting:
            queue.put(numbering.encode(waiting.pop(0)))
        if next_ids is not None:
            next_ids.put(numbering.next_ids)
        queue.put(None)
    except BaseException as error:  # the writer re-raises it
        queue.put(error)
        raise


async def _planned_batches(
    plans: Sequence[_ShopPlan], first_ids: tuple[int, int, int], *, in_background: bool
) -> AsyncIterator[_EncodedBatch]:
    """The plans' batches, shop after shop, in order. Planning is pure Python and costs more than writing,
    so for large seeds one process per shop plans while this one writes; the data is the same either way
    (each shop's random stream is seeded the same and consumed in the same order, and rows are numbered in
    the same order)."""
    if not in_background:
        for batch in _plan_in_turn(plans, first_ids):
            yield batch
        return
    context = multiprocessing.get_context("spawn")
    starts = [context.Queue() for _ in plans]
    queues = [context.Queue(maxsize=PIPELINE_DEPTH) for _ in plans]
    planners = [
        context.Process(
            target=_plan_shop_into,
            args=(plan, starts[index], starts[index + 1] if index + 1 < len(plans) else None, queues[index]),
            daemon=True,
        )
        for index, plan in enumerate(plans)
    ]
    starts[0].put(first_ids)
    for planner in planners:
        planner.start()
    loop = asyncio.get_running_loop()
    try:
        for planner, queue in zip(planners, queues, strict=True):
            while True:
                try:
                    item = await loop.run_in_executor(None, functools.partial(queue.get, timeout=1.0))
                except Empty:
                    if not planner.is_alive():
                        raise RuntimeError("a demo planner process stopped unexpectedly") from None
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise RuntimeError("planning the demo orders failed") from item
                yield item
    finally:
        for planner in planners:
            if planner.is_alive():
                planner.terminate()
            planner.join()


# ---------------------------------------------------------------------------------------------------------------
# Writing.

# The tables the order batches fill, whose secondary indexes are built once at the end of the load.
_LOADED = (_ORDERS, _SUPPLIER_ORDERS, _LINES, _PACKAGES, _EVENTS, _REQUESTS, _MESSAGES, _JOBS)
# SQLite's page cache for the load (negative: KiB), so that the B-trees being filled stay in memory.
_SQLITE_LOAD_CACHE_KIB = 256 * 1024


@contextlib.asynccontextmanager
async def _bulk_load(session: AsyncSession, deferring: Sequence[Table]) -> AsyncIterator[None]:
    """Settings for loading many rows in one transaction: ``deferring``'s secondary indexes (and, on
    PostgreSQL, foreign keys) restored once at the end, no cyclic garbage collection while the batches
    come in (they hold no cycles, and the collector would walk every row tuple again and again) and, on
    SQLite, a large page cache for the connection while the load runs."""
    connection = await session.connection()
    previous_cache = None
    if connection.dialect.name == "sqlite":
        previous_cache = (await connection.exec_driver_sql("PRAGMA cache_size")).scalar_one()
        await connection.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_LOAD_CACHE_KIB}")
    collecting = gc.isenabled()
    gc.disable()
    try:
        async with indexes_and_foreign_keys_deferred(session, deferring):
            yield
    finally:
        if collecting:
            gc.enable()
        if previous_cache is not None:
            await connection.exec_driver_sql(f"PRAGMA cache_size = {int(previous_cache)}")


async def _insert_batch(session: AsyncSession, batch: _EncodedBatch) -> None:
    """Parents before children, as the foreign keys want."""
    for table in _WRITE_ORDER:
        if table.name in batch.rows:
            columns, values = batch.rows[table.name]
            await insert_encoded(session, table, columns, values)
    if batch.jobs:
        # As ``enqueue`` does: a job already holding one of these keys is kept rather than duplicated.
        dialect_insert = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        await session.execute(
            dialect_insert(_JOBS).on_conflict_do_nothing(index_elements=["key"]), batch.jobs
        )


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
    suppliers = [
        row
        for row in await session.execute(
            select(Supplier.id, Supplier.name, Supplier.webhook_secret)
            .where(Supplier.shop_id.in_([shop_id for shop_id, _ in shops]))
            .order_by(Supplier.id)
        )
        if row.name in known
    ]
    merchant, supplier, admin = _tokens(
        secret_key, [name for _, name in shops], [row.name for row in suppliers]
    )
    return DemoSeed(
        shop_ids={name: shop_id for shop_id, name in shops},
        merchant_tokens=merchant,
        supplier_tokens=supplier,
        admin_token=admin,
        created=False,
        supplier_ids={row.name: row.id for row in suppliers},
        webhook_secrets={row.name: row.webhook_secret for row in suppliers},
    )


def _webhook_secret(secret_key: str, supplier: str, drawn: bytes) -> str:
    """A demo supplier's webhook secret, derived from the installation's secret key like the demo tokens.

    ``drawn`` is what the random generator yields at this point; it is drawn (and dropped) so that every
    other demo value stays the same for a given seed.
    """
    del drawn
    digest = hmac.new(secret_key.encode(), f"webhook-secret:{supplier}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(digest[:24]).decode()


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
                webhook_secret=_webhook_secret(secret_key, supplier.name, rng.randbytes(24)),
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


# ---------------------------------------------------------------------------------------------------------------
# Returns, returned stock, refunds and shop policies, written on orders already seeded.

# What each shop's returns end up as; LATE is a request made after the return window.
RETURN_PLAN = (
    "REQUESTED",
    "REQUESTED",
    "LATE",
    "APPROVED",
    "PARTIAL",
    "RECEIVED",
    "CLOSED",
    "CLOSED",
    "DECLINED",
    "CANCELED",
)
ACCEPTED_END_REASONS = ("buyer_accept_goods", "buyer_accept_goods_timeout")
RETURN_NOTES = (
    "Customer says the fit runs small.",
    "Arrived scratched, photos in the email thread.",
    "Gift the recipient did not want.",
    None,
    None,
)
RESTOCKING_FEE = Decimal(10)
MERCHANT_FAULT = frozenset(ReturnReason) - CHANGE_OF_MIND
HOUR_DELTA = timedelta(hours=1)
CANDIDATE_ORDERS = 600


def _step(start: datetime, now: datetime, index: int) -> datetime:
    """The time of the index-th step of a return begun at ``start``: a day apart, never after ``now``."""
    return min(start + timedelta(days=index), now - timedelta(minutes=10 - index))


def _demo_event(order: Order, when: datetime, type_: str, message: str, **data: Any) -> OrderEvent:
    return OrderEvent(
        shop_id=order.shop_id,
        order_id=order.id,
        type=type_,
        actor_kind=ActorKind.SYSTEM,
        actor_name=ACTOR_NAME,
        message=message,
        data=data,
        created_at=when,
    )


async def _seed_after_sales(
    session: AsyncSession, shop_ids: dict[str, int], rng: random.Random, now: datetime
) -> None:
    """Policies, returns in every status with their stock, and refunds, for each demo shop."""
    await _seed_cancelled_trade_refunds(session, list(shop_ids.values()))
    for profile in DEMO_SHOPS:
        shop_id = shop_ids[profile.name]
        shop_rng = random.Random(rng.getrandbits(64))
        policies = await _seed_policies(session, shop_id, now)
        delivered = await _delivered_orders(session, shop_id)
        used = await _seed_returns(session, shop_id, profile.name, delivered, policies, shop_rng, now)
        remaining = [row for row in delivered if row[0] not in used]
        await _seed_refunds(session, shop_id, profile.name, remaining, shop_rng, now)


async def _seed_cancelled_trade_refunds(session: AsyncSession, shop_ids: list[int]) -> None:
    """The supplier refund of every paid supplier order the demo shows as cancelled, as approval records it."""
    paid_and_cancelled = select(
        SupplierOrder.shop_id,
        SupplierOrder.id,
        SupplierOrder.cost,
        SupplierOrder.currency,
        literal("cancelled_trade"),
        SupplierOrder.id,
        SupplierOrder.finished_at,
    ).where(
        SupplierOrder.shop_id.in_(shop_ids),
        SupplierOrder.end_reason == "cancel_order_close_trade",
        SupplierOrder.paid_at.is_not(None),
    )
    columns = ["shop_id", "supplier_order_id", "amount", "currency", "source", "source_id", "created_at"]
    await session.execute(insert(SupplierRefund).from_select(columns, paid_and_cancelled))


async def _seed_policies(session: AsyncSession, shop_id: int, now: datetime) -> tuple[ShopPolicy, ShopPolicy]:
    """A first return policy (14 days, no fee), the one in force now (30 days, 10% fee), one refund policy."""
    shop = await session.get(Shop, shop_id)
    assert shop is not None
    suppliers = (await session.scalars(select(Supplier).where(Supplier.shop_id == shop_id))).all()
    opened = now - HISTORY - timedelta(days=10)
    changed = now - timedelta(days=45)
    versions = []
    for version, (window, fee, start, end) in enumerate(
        ((14, Decimal(0), opened, changed), (30, RESTOCKING_FEE, changed, None)), start=1
    ):
        policy = ShopPolicy(
            shop_id=shop_id,
            kind=PolicyKind.RETURN,
            version=version,
            body="",
            return_window_days=window,
            restocking_fee_percent=fee,
            return_shipping_paid_by=ReturnShippingPayer.CUSTOMER,
            return_address=shop.return_address,
            created_by=_staff_name(shop.name),
            effective_at=start,
            superseded_at=end,
        )
        policy.body = draft_policy(PolicyKind.RETURN, shop, suppliers, policy)
        versions.append(policy)
    refund_policy = ShopPolicy(
        shop_id=shop_id,
        kind=PolicyKind.REFUND,
        version=1,
        body=draft_policy(PolicyKind.REFUND, shop, suppliers, versions[-1]),
        created_by=_staff_name(shop.name),
        effective_at=opened,
    )
    session.add_all([*versions, refund_policy])
    await session.flush()
    return versions[0], versions[1]


async def _delivered_orders(session: AsyncSession, shop_id: int) -> list[tuple[int, datetime]]:
    """Closed, paid orders whose every supplier order was delivered, with the last delivery, oldest first.

    Only the shop's latest orders are looked at, so the cost does not grow with the number seeded.
    """
    latest = (
        select(Order.id).where(Order.shop_id == shop_id).order_by(Order.id.desc()).limit(CANDIDATE_ORDERS)
    )
    other = aliased(SupplierOrder)
    undelivered = (
        select(other.id)
        .where(
            other.order_id == Order.id,
            or_(other.end_reason.is_(None), other.end_reason.not_in(ACCEPTED_END_REASONS)),
        )
        .exists()
    )
    rows = await session.execute(
        select(Order.id, func.max(SupplierOrder.finished_at))
        .join(SupplierOrder, SupplierOrder.order_id == Order.id)
        .where(
            Order.id.in_(latest),
            Order.shop_id == shop_id,
            Order.status == OrderStatus.CLOSED,
            Order.financial_status == FinancialStatus.PAID,
            ~undelivered,
        )
        .group_by(Order.id)
        .order_by(Order.id)
    )
    return [(order_id, delivered) for order_id, delivered in rows if delivered is not None]


async def _seed_returns(
    session: AsyncSession,
    shop_id: int,
    shop_name: str,
    delivered: list[tuple[int, datetime]],
    policies: tuple[ShopPolicy, ShopPolicy],
    rng: random.Random,
    now: datetime,
) -> set[int]:
    """One return per entry of RETURN_PLAN (as many as there are delivered orders); returns the orders used."""
    old = [row for row in delivered if row[1] < now - timedelta(days=40)]
    recent = [row for row in delivered if row not in old[:1]]
    pool = rng.sample(recent, len(recent))
    used: set[int] = set()
    plan: list[tuple[str, int, datetime]] = []
    for state in RETURN_PLAN:
        if state == "LATE":
            choice = old[0] if old and old[0][0] not in used else None
        else:
            choice = next((row for row in pool if row[0] not in used), None)
        if choice is not None:
            used.add(choice[0])
            plan.append((state, *choice))
    # Every order and line the plan touches, in two statements.
    orders = {order.id: order for order in await session.scalars(select(Order).where(Order.id.in_(used)))}
    lines_of: dict[int, list[OrderLine]] = {order_id: [] for order_id in used}
    for order_line in await session.scalars(
        select(OrderLine).where(OrderLine.order_id.in_(used)).order_by(OrderLine.order_id, OrderLine.position)
    ):
        lines_of[order_line.order_id].append(order_line)
    stock: dict[tuple[str, StockCondition], tuple[str, int]] = {}
    staff = _staff_name(shop_name)
    for state, order_id, delivered_at in plan:
        order, lines = orders[order_id], lines_of[order_id]
        start = (
            now - timedelta(days=1)
            if state == "LATE"
            else min(delivered_at + timedelta(days=2), now - HOUR_DELTA)
        )
        policy = policies[1] if start >= policies[1].effective_at else policies[0]
        window = policy.return_window_days or 0
        reason = (
            ReturnReason.DEFECTIVE
            if state == "CLOSED" and rng.random() < 0.5
            else rng.choice(list(ReturnReason))
        )
        picked = lines[: 2 if state == "PARTIAL" else 1]
        row = Return(
            shop_id=shop_id,
            order_id=order_id,
            status=ReturnStatus.REQUESTED,
            note=rng.choice(RETURN_NOTES),
            outside_return_window=start > delivered_at + timedelta(days=window),
            policy_id=policy.id,
            requested_by=staff,
            created_at=start,
            updated_at=start,
        )
        session.add(row)
        await session.flush()
        return_lines = [
            ReturnLine(
                shop_id=shop_id,
                return_id=row.id,
                order_line_id=line.id,
                quantity=min(line.quantity, 2),
                reason=reason,
                note=None,
            )
            for line in picked
        ]
        session.add_all(return_lines)
        await session.flush()
        units = sum(line.quantity for line in return_lines)
        events = [
            _demo_event(
                order,
                start,
                "return_requested",
                f"Return of {units} item{'s' if units != 1 else ''} requested"
                + (f" after the {window}-day return window" if row.outside_return_window else ""),
                status="REQUESTED",
                units=units,
                outsideReturnWindow=row.outside_return_window,
            )
        ]
        last = start
        if state == "DECLINED":
            last = _step(start, now, 1)
            row.status, row.declined_at = ReturnStatus.DECLINED, last
            row.decline_reason, row.decline_note = (
                ReturnDeclineReason.FINAL_SALE,
                "Clearance items are final sale.",
            )
            events.append(
                _demo_event(order, last, "return_declined", "Return declined (FINAL_SALE)", status="DECLINED")
            )
        elif state == "CANCELED":
            last = _step(start, now, 1)
            row.status, row.canceled_at = ReturnStatus.CANCELED, last
            events.append(_demo_event(order, last, "return_canceled", "Return canceled", status="CANCELED"))
        elif state in ("APPROVED", "PARTIAL", "RECEIVED", "CLOSED"):
            last = _step(start, now, 1)
            row.status, row.approved_at, row.return_address = (
                ReturnStatus.APPROVED,
                last,
                policy.return_address,
            )
            events.append(_demo_event(order, last, "return_approved", "Return approved", status="APPROVED"))
        if state in ("PARTIAL", "RECEIVED", "CLOSED"):
            last = _step(start, now, 4)
            disposition = (
                ReturnDisposition.DISCARD
                if reason is ReturnReason.DEFECTIVE
                else rng.choice((ReturnDisposition.RESTOCK, ReturnDisposition.RESELL))
            )
            arriving = return_lines[:1] if state == "PARTIAL" else return_lines
            received = 0
            for line in arriving:
                quantity = 1 if state == "PARTIAL" else line.quantity
                line.received_quantity = quantity
                received += quantity
                session.add(
                    ReturnReceipt(
                        shop_id=shop_id,
                        return_id=row.id,
                        return_line_id=line.id,
                        quantity=quantity,
                        disposition=disposition,
                        received_by=staff,
                        created_at=last,
                    )
                )
                condition = {
                    ReturnDisposition.RESTOCK: StockCondition.NEW,
                    ReturnDisposition.RESELL: StockCondition.USED,
                }.get(disposition)
                if condition is not None:
                    order_line = next(ol for ol in picked if ol.id == line.order_line_id)
                    sku = (order_line.sku or order_line.title)[:100]
                    title, held = stock.get((sku, condition), (order_line.title, 0))
                    stock[(sku, condition)] = (title, held + quantity)
            complete = all(line.received_quantity == line.quantity for line in return_lines)
            if complete:
                row.status, row.received_at = ReturnStatus.RECEIVED, last
            events.append(
                _demo_event(
                    order,
                    last,
                    "return_received" if complete else "return_partially_received",
                    f"{received} returned item{'s' if received != 1 else ''} received"
                    + ("; everything has arrived" if complete else "; more expected"),
                    status=row.status.value,
                    units=received,
                )
            )
        if state in ("RECEIVED", "CLOSED"):
            value = sum(
                (
                    next(ol for ol in picked if ol.id == line.order_line_id).unit_price
                    * line.received_quantity
                    for line in return_lines
                ),
                Decimal(0),
            )
            fee = (
                (policy.restocking_fee_percent or Decimal(0)) if reason not in MERCHANT_FAULT else Decimal(0)
            )
            amount = quantize(value - value * fee / 100, order.currency)
            last = _step(start, now, 5)
            refund = Refund(
                shop_id=shop_id,
                order_id=order_id,
                amount=amount,
                currency=order.currency,
                note="Refund for the returned items",
                return_id=row.id,
                created_by=staff,
                created_at=last,
            )
            session.add(refund)
            await session.flush()
            session.add_all(
                RefundLine(
                    shop_id=shop_id,
                    refund_id=refund.id,
                    order_line_id=line.order_line_id,
                    quantity=line.received_quantity,
                    amount=next(ol for ol in picked if ol.id == line.order_line_id).unit_price
                    * line.received_quantity,
                )
                for line in return_lines
            )
            order.financial_status = (
                FinancialStatus.PARTIALLY_REFUNDED if amount < order.total else FinancialStatus.REFUNDED
            )
            events.append(
                _demo_event(
                    order,
                    last,
                    "refund_created",
                    f"Refund of {amount} {order.currency} to the customer",
                    amount=str(amount),
                    currency=order.currency,
                    financialStatus=order.financial_status.value,
                )
            )
        if state == "CLOSED":
            last = _step(start, now, 6)
            row.status, row.closed_at = ReturnStatus.CLOSED, last
            events.append(_demo_event(order, last, "return_closed", "Return closed", status="CLOSED"))
        row.updated_at = last
        order.updated_at = max(order.updated_at, last)
        session.add_all(events)
    session.add_all(
        ReturnedStock(
            shop_id=shop_id,
            sku=sku,
            condition=condition,
            title=title,
            quantity=quantity,
            created_at=now - timedelta(days=1),
            updated_at=now - timedelta(days=1),
        )
        for (sku, condition), (title, quantity) in sorted(stock.items())
    )
    await session.flush()
    return used


async def _seed_refunds(
    session: AsyncSession,
    shop_id: int,
    shop_name: str,
    delivered: list[tuple[int, datetime]],
    rng: random.Random,
    now: datetime,
) -> None:
    """A goodwill partial refund, a full refund, and a cancelled order whose customer is still owed."""
    staff = _staff_name(shop_name)
    chosen = rng.sample(delivered, min(2, len(delivered)))
    for index, (order_id, delivered_at) in enumerate(chosen):
        order = await session.get(Order, order_id)
        assert order is not None
        full = index == 1
        amount = order.total if full else quantize(order.total / 10, order.currency)
        when = min(delivered_at + timedelta(days=3), now - timedelta(minutes=5))
        session.add(
            Refund(
                shop_id=shop_id,
                order_id=order_id,
                amount=amount,
                currency=order.currency,
                note="Parcel lost in transit: refunded in full"
                if full
                else "Goodwill credit for a late delivery",
                created_by=staff,
                created_at=when,
            )
        )
        order.financial_status = FinancialStatus.REFUNDED if full else FinancialStatus.PARTIALLY_REFUNDED
        order.updated_at = max(order.updated_at, when)
        session.add(
            _demo_event(
                order,
                when,
                "refund_created",
                f"Refund of {amount} {order.currency} to the customer",
                amount=str(amount),
                currency=order.currency,
                financialStatus=order.financial_status.value,
            )
        )
    # A cancelled order whose payment had been captured: the customer is owed the total (refundDue).
    captured = await session.scalar(
        select(Order)
        .where(Order.shop_id == shop_id, Order.status == OrderStatus.CANCELLED)
        .order_by(Order.id)
        .limit(1)
    )
    if captured is not None:
        captured.financial_status = FinancialStatus.PAID
    await session.flush()


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

    Everything is written in one transaction, so the demo is either all there or not there at all: a run that
    fails or is interrupted leaves nothing behind, and a later call seeds afresh. On PostgreSQL a second
    process seeding at the same time waits for the first to finish and then finds its demo (``created=False``).
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
        await session.flush()
        shop_ids = {name: shop.id for name, shop in shops.items()}
        supplier_ids = {name: supplier.id for name, supplier in suppliers.items()}

        first = round(orders * DEMO_SHOPS[0].share)
        async with _bulk_load(session, _LOADED):
            seeds = [rng.getrandbits(64) for _ in DEMO_SHOPS]
            plans = [
                _ShopPlan(
                    profile,
                    shop_ids[profile.name],
                    supplier_ids,
                    count,
                    shop_seed,
                    now,
                    database.dialect,
                    BATCH_SIZE,
                    HELD_AHEAD,
                )
                for profile, count, shop_seed in zip(DEMO_SHOPS, (first, orders - first), seeds, strict=True)
            ]
            first_ids = (
                await next_id(session, _ORDERS),
                await next_id(session, _SUPPLIER_ORDERS),
                await next_id(session, _REQUESTS),
            )
            done, next_ids = 0, first_ids
            async for batch in _planned_batches(plans, first_ids, in_background=orders >= PIPELINE_FROM):
                await _insert_batch(session, batch)
                done, next_ids = done + batch.orders, batch.next_ids
                if progress is not None:
                    progress(done, orders)
            for table, next_free in zip(_NUMBERED, next_ids, strict=True):
                await set_next_id(session, table, next_free)
        await _seed_disputes(session, shop_ids, random.Random(rng.getrandbits(64)), now)
        await _seed_after_sales(session, shop_ids, rng, now)

    merchant, supplier_tokens, admin = _tokens(secret_key, list(shops), list(suppliers))
    return DemoSeed(
        shop_ids=shop_ids,
        merchant_tokens=merchant,
        supplier_tokens=supplier_tokens,
        admin_token=admin,
        created=True,
        orders=orders,
        supplier_ids=supplier_ids,
        webhook_secrets={name: supplier.webhook_secret for name, supplier in suppliers.items()},
    )


# ---------------------------------------------------------------------------------------------------------------
# Disputes: one of every status in each shop, and an open one behind every IN_ISSUE supplier order.

_DISPUTES: Table = Base.metadata.tables[Dispute.__tablename__]
_DISPUTE_MESSAGES: Table = Base.metadata.tables[DisputeMessage.__tablename__]
_DISPUTE_ATTACHMENTS: Table = Base.metadata.tables[DisputeAttachment.__tablename__]
_SUPPLIER_REFUNDS: Table = Base.metadata.tables[SupplierRefund.__tablename__]
# The default of Settings.dispute_response_days.
DISPUTE_RESPONSE_TIME = timedelta(days=5)
_DISPUTE_COMPLAINTS = {
    DisputeReason.DAMAGED: "The parcel arrived crushed and the item is cracked; photos attached.",
    DisputeReason.NOT_AS_DESCRIBED: "The colour and size do not match the listing the customer ordered.",
    DisputeReason.QUALITY_ISSUE: "The stitching came apart after one day of use.",
    DisputeReason.WRONG_ITEM: "The customer received a different model from the one ordered.",
    DisputeReason.MISSING_PARTS: "The charger and the manual were missing from the box.",
    DisputeReason.NOT_RECEIVED: "Tracking has not moved for three weeks and the customer has nothing.",
}
_SUPPLIER_REPLIES = {
    DisputeResponseAction.PROPOSE_REFUND: "Sorry for the trouble, we can refund part of the order.",
    DisputeResponseAction.PROPOSE_RESEND: "We will send a new one with tracking this week.",
    DisputeResponseAction.REFUSE: "The item was checked before shipping and left our warehouse intact.",
}
# Statuses of the disputes that open fresh on shipped orders, and those that ended on older ones.
_FRESH_OPEN = (
    DisputeStatus.AWAITING_SUPPLIER,
    DisputeStatus.SUPPLIER_RESPONDED,
    DisputeStatus.ESCALATED,
    DisputeStatus.AWAITING_RETURN,
)
_ENDED = ("refund_accepted", "deadline", "resend", "cancelled", "ruled_for_supplier")
# Open statuses given in turn to IN_ISSUE orders older than a supplier's response time.
_OLDER_OPEN = (DisputeStatus.SUPPLIER_RESPONDED, DisputeStatus.ESCALATED, DisputeStatus.AWAITING_RETURN)
_DISPUTABLE_OPEN = frozenset({S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS, S.FUND_PROCESSING})


@dataclass
class _PlannedDispute:
    row: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    refund: dict[str, Any] | None = None
    evidence_url: str | None = None
    enters_issue: bool = False


class _DisputePlanner:
    """Plans one shop's disputes from its supplier orders as they were seeded."""

    def __init__(
        self, shop_id: int, staff: str, suppliers: dict[int, str], rng: random.Random, now: datetime
    ):
        self.shop_id, self.staff, self.suppliers, self.rng, self.now = shop_id, staff, suppliers, rng, now

    def plan(
        self, supplier_order: Any, status: DisputeStatus, opened: datetime, ending: str | None
    ) -> _PlannedDispute:
        rng, so = self.rng, supplier_order
        kind = (
            DisputeKind.RETURN_AND_REFUND
            if status is DisputeStatus.AWAITING_RETURN
            else DisputeKind.REFUND_ONLY
        )
        shipped = so.shipped_at is not None
        reason = rng.choice(list(_DISPUTE_COMPLAINTS)) if shipped else DisputeReason.PAYMENT_PROBLEM
        previous = (
            so.status
            if so.status is not S.IN_ISSUE
            else (S.WAIT_BUYER_ACCEPT_GOODS if shipped else S.WAIT_SELLER_SEND_GOODS)
        )
        cents = _cents(str(so.cost))
        requested = _money(max(1, cents * rng.choice((100, 60, 50, 35)) // 100))
        supplier = _supplier_user(self.suppliers[so.supplier_id])
        row: dict[str, Any] = {
            "shop_id": self.shop_id,
            "order_id": so.order_id,
            "supplier_order_id": so.id,
            "status": status,
            "reason": reason,
            "kind": kind,
            "currency": so.currency,
            "requested_amount": requested,
            "open_key": so.id,
            "previous_status": previous,
            "opened_by": self.staff,
            "respond_by": opened + DISPUTE_RESPONSE_TIME,
            "created_at": opened,
            "updated_at": opened,
        }
        for key in (
            "proposal_action",
            "proposal_amount",
            "proposed_at",
            "outcome",
            "resolution_action",
            "resolution_amount",
            "decided_by",
            "decided_at",
            "closed_at",
        ):
            row[key] = None
        planned = _PlannedDispute(row=row, enters_issue=so.status is not S.IN_ISSUE)
        if reason is not DisputeReason.PAYMENT_PROBLEM and rng.random() < 0.6:
            planned.evidence_url = f"https://photos.example.com/disputes/{so.aliexpress_order_id}.jpg"
        ali = so.aliexpress_order_id
        merchant = (ActorKind.MERCHANT, self.staff)
        body = _DISPUTE_COMPLAINTS.get(reason, "The payment was taken twice for this order.")
        self._message(planned, DisputeMessageAuthor.MERCHANT, self.staff, body, opened)
        self._event(
            planned,
            opened,
            "dispute_opened",
            f"Dispute opened on AliExpress order {ali} ({reason}, {kind}): {requested} {so.currency} requested",
            merchant,
            reason=reason.value,
            kind=kind.value,
            requestedAmount=str(requested),
            respondBy=row["respond_by"].isoformat(),
        )
        if planned.enters_issue:
            self._status(planned, opened, ali, previous, S.IN_ISSUE, merchant)
        if status is DisputeStatus.AWAITING_SUPPLIER:
            return planned

        if ending == "deadline":
            decided = row["respond_by"]
            system = (ActorKind.SYSTEM, "Dropdesk")
            self._message(
                planned,
                DisputeMessageAuthor.SYSTEM,
                "Dropdesk",
                "Resolved for the merchant: the supplier did not respond before the deadline.",
                decided,
            )
            self._event(
                planned,
                decided,
                "dispute_deadline_passed",
                f"The supplier did not respond in time on the dispute about AliExpress order {ali}; resolved for the merchant",
                system,
            )
            self._decide(
                planned,
                DisputeOutcome.MERCHANT,
                DisputeResolutionAction.REFUND,
                requested,
                ActorKind.SYSTEM,
                decided,
            )
            self._end(planned, ali, DisputeStatus.RESOLVED, decided, system)
            return planned
        if ending == "cancelled":
            cancelled = _after(opened, self.now, rng.uniform(0.1, 2) * DAY)
            self._event(
                planned,
                cancelled,
                "dispute_cancelled",
                f"The merchant cancelled the dispute about AliExpress order {ali}",
                merchant,
            )
            self._end(planned, ali, DisputeStatus.CANCELLED, cancelled, merchant)
            return planned

        action = {
            "resend": DisputeResponseAction.PROPOSE_RESEND,
            "ruled_for_supplier": DisputeResponseAction.REFUSE,
        }.get(ending or "", DisputeResponseAction.PROPOSE_REFUND)
        if status is DisputeStatus.ESCALATED:
            action = rng.choice([DisputeResponseAction.REFUSE, DisputeResponseAction.PROPOSE_REFUND])
        responded = _after(opened, self.now, rng.uniform(0.2, 2) * DAY)
        proposal = (
            _money(max(1, _cents(str(requested)) * 6 // 10))
            if action is DisputeResponseAction.PROPOSE_REFUND
            else None
        )
        row.update(
            proposal_action=action,
            proposal_amount=proposal,
            proposed_at=responded,
            status=DisputeStatus.SUPPLIER_RESPONDED,
            updated_at=responded,
        )
        self._message(planned, DisputeMessageAuthor.SUPPLIER, supplier, _SUPPLIER_REPLIES[action], responded)
        what = {
            DisputeResponseAction.PROPOSE_REFUND: f"proposes a refund of {proposal} {so.currency}",
            DisputeResponseAction.PROPOSE_RESEND: "proposes to send a replacement",
            DisputeResponseAction.REFUSE: "refuses",
        }[action]
        self._event(
            planned,
            responded,
            "dispute_supplier_responded",
            f"The supplier {what} on the dispute about AliExpress order {ali}",
            (ActorKind.SUPPLIER, supplier),
            action=action.value,
            amount=str(proposal) if proposal is not None else None,
        )
        if status is DisputeStatus.SUPPLIER_RESPONDED:
            return planned

        later = _after(responded, self.now, rng.uniform(0.1, 1.5) * DAY)
        if status is DisputeStatus.ESCALATED or ending == "ruled_for_supplier":
            self._message(
                planned,
                DisputeMessageAuthor.MERCHANT,
                self.staff,
                "The photos show the damage; please rule.",
                later,
            )
            self._event(
                planned,
                later,
                "dispute_escalated",
                f"The merchant escalated the dispute about AliExpress order {ali}",
                merchant,
            )
            row.update(status=DisputeStatus.ESCALATED, updated_at=later)
            if status is DisputeStatus.ESCALATED:
                return planned
            ruled = _after(later, self.now, rng.uniform(0.5, 2) * DAY)
            platform = (ActorKind.ADMIN, ADMIN_LABEL)
            self._message(
                planned,
                DisputeMessageAuthor.PLATFORM,
                ADMIN_LABEL,
                "Tracking shows delivery in good order; ruled for the supplier.",
                ruled,
            )
            self._event(
                planned,
                ruled,
                "dispute_ruled",
                f"The platform ruled for the supplier on the dispute about AliExpress order {ali}",
                platform,
                outcome="SUPPLIER",
            )
            self._decide(
                planned, DisputeOutcome.SUPPLIER, DisputeResolutionAction.NONE, None, ActorKind.ADMIN, ruled
            )
            self._end(planned, ali, DisputeStatus.RESOLVED, ruled, platform)
            return planned

        self._event(
            planned,
            later,
            "dispute_proposal_accepted",
            f"The merchant accepted the supplier's answer ({action}) on the dispute about AliExpress order {ali}",
            merchant,
            action=action.value,
        )
        if action is DisputeResponseAction.PROPOSE_RESEND:
            self._decide(
                planned,
                DisputeOutcome.AGREED,
                DisputeResolutionAction.RESEND,
                None,
                ActorKind.MERCHANT,
                later,
            )
            self._event(
                planned,
                later,
                "dispute_replacement_shipping",
                f"The supplier sends a replacement for AliExpress order {ali}; its package arrives with the supplier's tracking updates",
                merchant,
            )
            self._end(planned, ali, DisputeStatus.RESOLVED, later, merchant)
            return planned
        self._decide(
            planned,
            DisputeOutcome.AGREED,
            DisputeResolutionAction.REFUND,
            proposal,
            ActorKind.MERCHANT,
            later,
        )
        if status is DisputeStatus.AWAITING_RETURN:
            row["status"] = DisputeStatus.AWAITING_RETURN
            self._message(
                planned,
                DisputeMessageAuthor.SYSTEM,
                "Dropdesk",
                f"Refund of {proposal} {so.currency} agreed. Send the goods back to the supplier and give the return's tracking number (disputeReturnShipped); the refund is recorded then.",
                later,
            )
            self._event(
                planned,
                later,
                "dispute_return_requested",
                f"Refund of {proposal} {so.currency} agreed for AliExpress order {ali}; waiting for the return's tracking number",
                merchant,
                amount=str(proposal),
            )
            return planned
        self._end(planned, ali, DisputeStatus.RESOLVED, later, merchant)
        return planned

    def _message(
        self, planned: _PlannedDispute, author: DisputeMessageAuthor, name: str, body: str, when: datetime
    ) -> None:
        planned.messages.append(
            {
                "shop_id": self.shop_id,
                "dispute_id": None,
                "author": author,
                "author_name": name,
                "body": body,
                "created_at": when,
            }
        )

    def _event(
        self,
        planned: _PlannedDispute,
        when: datetime,
        type_: str,
        message: str,
        actor: tuple[ActorKind, str],
        **data: Any,
    ) -> None:
        row = planned.row
        planned.events.append(
            {
                "shop_id": self.shop_id,
                "order_id": row["order_id"],
                "supplier_order_id": row["supplier_order_id"],
                "type": type_,
                "actor_kind": actor[0],
                "actor_name": actor[1],
                "message": message,
                "data": {"disputeId": None, "status": row["status"].value, **data},
                "created_at": when,
            }
        )

    def _status(
        self,
        planned: _PlannedDispute,
        when: datetime,
        ali: str,
        old: SupplierOrderStatus,
        new: SupplierOrderStatus,
        actor: tuple[ActorKind, str],
    ) -> None:
        row = planned.row
        planned.events.append(
            {
                "shop_id": self.shop_id,
                "order_id": row["order_id"],
                "supplier_order_id": row["supplier_order_id"],
                "type": "supplier_order_status_changed",
                "actor_kind": actor[0],
                "actor_name": actor[1],
                "message": f"AliExpress order {ali}: {old} → {new}",
                "data": {"from": old.value, "to": new.value, "endReason": None},
                "created_at": when,
            }
        )

    def _decide(
        self,
        planned: _PlannedDispute,
        outcome: DisputeOutcome,
        action: DisputeResolutionAction,
        amount: Decimal | None,
        by: ActorKind,
        when: datetime,
    ) -> None:
        planned.row.update(
            outcome=outcome,
            resolution_action=action,
            resolution_amount=amount,
            decided_by=by,
            decided_at=when,
            updated_at=when,
        )

    def _end(
        self,
        planned: _PlannedDispute,
        ali: str,
        status: DisputeStatus,
        when: datetime,
        actor: tuple[ActorKind, str],
    ) -> None:
        row = planned.row
        amount = row["resolution_amount"]
        if status is DisputeStatus.RESOLVED and row["resolution_action"] is DisputeResolutionAction.REFUND:
            planned.refund = {
                "shop_id": self.shop_id,
                "supplier_order_id": row["supplier_order_id"],
                "amount": amount,
                "currency": row["currency"],
                "source": "dispute",
                "source_id": None,
                "created_at": when,
            }
            self._event(
                planned,
                when,
                "supplier_refund_recorded",
                f"Supplier refund of {amount} {row['currency']} recorded for AliExpress order {ali}",
                actor,
                amount=str(amount),
                currency=row["currency"],
            )
        row.update(status=status, open_key=None, closed_at=when, updated_at=when)
        if status is DisputeStatus.RESOLVED:
            self._event(
                planned,
                when,
                "dispute_resolved",
                f"Dispute about AliExpress order {ali} resolved: {row['outcome'].value.lower()}, {row['resolution_action'].value.lower()}",
                actor,
                outcome=row["outcome"].value,
                action=row["resolution_action"].value,
                amount=str(amount) if amount is not None else None,
            )
        self._status(planned, when, ali, S.IN_ISSUE, row["previous_status"], actor)


async def _seed_disputes(
    session: AsyncSession, shop_ids: dict[str, int], rng: random.Random, now: datetime
) -> None:
    """Every IN_ISSUE supplier order gets the open dispute behind it; each shop also gets a fresh dispute in
    every open status and older ones in every way a dispute ends, on shipped orders."""
    for shop_name, shop_id in sorted(shop_ids.items(), key=lambda item: item[1]):
        suppliers = dict(
            (
                await session.execute(select(Supplier.id, Supplier.name).where(Supplier.shop_id == shop_id))
            ).all()
        )
        planner = _DisputePlanner(shop_id, _staff_name(shop_name), suppliers, rng, now)
        planned, covered = [], set()
        older = itertools.cycle(_OLDER_OPEN)
        # Plain rows rather than ORM objects, and whole rows only for the supplier orders a dispute goes on:
        # the candidates are most of the shop's supplier orders, and only a few are used.
        columns = _SUPPLIER_ORDERS.c
        in_shop = columns.shop_id == shop_id
        for so in await session.execute(
            select(_SUPPLIER_ORDERS).where(in_shop, columns.status == S.IN_ISSUE).order_by(columns.id)
        ):
            # Young enough to be waiting on the supplier, or further along.
            fresh = now - so.updated_at < DISPUTE_RESPONSE_TIME - timedelta(hours=6)
            status = DisputeStatus.AWAITING_SUPPLIER if fresh else next(older)
            planned.append(planner.plan(so, status, so.updated_at, None))
            covered.add(status)

        # Shipped orders still on their way take the open statuses missing so far; one of each
        # AliExpress status is left alone so that small demos keep every one.
        on_the_way = list(
            await session.execute(
                select(columns.id, columns.status)
                .where(
                    in_shop,
                    columns.status.in_(sorted(_DISPUTABLE_OPEN)),
                    columns.shipped_at.is_not(None),
                    columns.shipped_at <= now - timedelta(days=5),
                )
                .order_by(columns.id)
            )
        )
        rng.shuffle(on_the_way)
        for status in _FRESH_OPEN:
            if status in covered:
                continue
            held = collections.Counter(so.status for so in on_the_way)
            spare = next((so for so in on_the_way if held[so.status] > 1), None)
            if spare is None:
                break
            on_the_way.remove(spare)
            hours = rng.uniform(2, 30) if status is DisputeStatus.AWAITING_SUPPLIER else rng.uniform(60, 100)
            planned.append(
                planner.plan(
                    await _supplier_order_row(session, spare.id), status, now - timedelta(hours=hours), None
                )
            )
        # Disputes that ended, on orders the customer accepted more than a week ago.
        finished = list(
            await session.scalars(
                select(columns.id)
                .where(
                    in_shop,
                    columns.status == S.FINISH,
                    columns.end_reason.in_(ACCEPTED_END_REASONS),
                    columns.shipped_at.is_not(None),
                    columns.finished_at.is_not(None),
                    columns.finished_at <= now - timedelta(days=8),
                )
                .order_by(columns.id)
            )
        )
        rng.shuffle(finished)
        for ending in _ENDED:
            if not finished:
                break
            so = await _supplier_order_row(session, finished.pop())
            opened = so.finished_at + timedelta(days=rng.uniform(0.5, 1))
            final = DisputeStatus.CANCELLED if ending == "cancelled" else DisputeStatus.RESOLVED
            planned.append(planner.plan(so, final, opened, ending))
        await _insert_disputes(session, planned, now)


async def _supplier_order_row(session: AsyncSession, supplier_order_id: int) -> Any:
    statement = select(_SUPPLIER_ORDERS).where(_SUPPLIER_ORDERS.c.id == supplier_order_id)
    return (await session.execute(statement)).one()


async def _insert_disputes(session: AsyncSession, planned: list[_PlannedDispute], now: datetime) -> None:
    if not planned:
        return
    result = await session.execute(
        insert(_DISPUTES).returning(_DISPUTES.c.id, _DISPUTES.c.supplier_order_id), [p.row for p in planned]
    )
    ids = {supplier_order_id: dispute_id for dispute_id, supplier_order_id in result}
    messages, events, refunds, jobs, first_messages = [], [], [], [], []
    for p in planned:
        dispute_id = ids[p.row["supplier_order_id"]]
        for message in p.messages:
            message["dispute_id"] = dispute_id
        first_messages.append(p.messages[0])
        messages.extend(p.messages[1:])
        for event in p.events:
            if "disputeId" in event["data"]:
                event["data"]["disputeId"] = dispute_id
            events.append(event)
        if p.refund is not None:
            p.refund["source_id"] = dispute_id
            refunds.append(p.refund)
        if p.row["status"] is DisputeStatus.AWAITING_SUPPLIER:
            jobs.append(
                {
                    "shop_id": p.row["shop_id"],
                    "kind": DISPUTE_DEADLINE_KIND,
                    "key": f"{DISPUTE_DEADLINE_KIND}:{dispute_id}",
                    "payload": {"disputeId": dispute_id},
                    "status": JobStatus.QUEUED,
                    "attempts": 0,
                    "max_attempts": DEFAULT_MAX_ATTEMPTS,
                    "run_at": p.row["respond_by"],
                    "created_at": p.row["created_at"],
                }
            )
    result = await session.execute(
        insert(_DISPUTE_MESSAGES).returning(_DISPUTE_MESSAGES.c.id, _DISPUTE_MESSAGES.c.dispute_id),
        first_messages,
    )
    opening = {dispute_id: message_id for message_id, dispute_id in result}
    attachments = [
        {
            "shop_id": p.row["shop_id"],
            "dispute_id": ids[p.row["supplier_order_id"]],
            "message_id": opening[ids[p.row["supplier_order_id"]]],
            "url": p.evidence_url,
            "content_type": "image/jpeg",
            "created_at": p.row["created_at"],
        }
        for p in planned
        if p.evidence_url
    ]
    for table, rows in (
        (_DISPUTE_MESSAGES, messages),
        (_DISPUTE_ATTACHMENTS, attachments),
        (_EVENTS, events),
        (_SUPPLIER_REFUNDS, refunds),
        (_JOBS, jobs),
    ):
        await bulk_insert(session, table, rows)
    # The supplier orders behind open disputes show IN_ISSUE from the moment the dispute opened.
    entering = [
        {"entering_id": p.row["supplier_order_id"], "entered_at": p.row["updated_at"]}
        for p in planned
        if p.enters_issue and p.row["status"] in DISPUTE_OPEN
    ]
    if entering:
        await session.execute(
            update(_SUPPLIER_ORDERS)
            .where(_SUPPLIER_ORDERS.c.id == bindparam("entering_id"))
            .values(status=S.IN_ISSUE, updated_at=bindparam("entered_at")),
            entering,
        )
