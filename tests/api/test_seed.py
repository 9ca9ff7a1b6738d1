"""The demo data: complete, internally consistent, reproducible, seeded once, and openable with its tokens."""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import aliased

from db.engine import Database
from db.jobs import DEFAULT_MAX_ATTEMPTS, Job, JobStatus
from db.models import (
    AccessToken,
    ActorKind,
    Base,
    CancellationMessage,
    CancellationRequest,
    CancellationStatus,
    Dispute,
    DisputeMessage,
    DisputeStatus,
    FinancialStatus,
    MessageAuthor,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Package,
    Shop,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)
from db.search import order_filter
from demo import generator
from demo.catalogue import CANCEL_END_REASONS
from demo.generator import DemoSeed, seed_demo
from domain.actors import Actor, Scope
from domain.cancellations import AUTO_APPROVE_KIND, OPEN, auto_approve_cancellation
from domain.disputes import DEADLINE_KIND as DISPUTE_DEADLINE_KIND
from domain.disputes import OPEN as OPEN_DISPUTES
from domain.tokens import authenticate
from tests.factories import Api

SECRET = "test-secret-key"
NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
RESPONSE_TIME = timedelta(hours=48)
CANCELLATION_EVENTS = {"cancellation_requested", "cancellation_info_requested"}
SHIPPED = {
    SupplierOrderStatus.SELLER_PART_SEND_GOODS,
    SupplierOrderStatus.WAIT_BUYER_ACCEPT_GOODS,
    SupplierOrderStatus.FUND_PROCESSING,
}
UNPAID = {
    SupplierOrderStatus.PLACE_ORDER_SUCCESS,
    SupplierOrderStatus.PAYMENT_PROCESSING,
    SupplierOrderStatus.RISK_CONTROL,
}


async def seed(db: Database, orders: int = 60, seed: int = 1) -> DemoSeed:
    return await seed_demo(db, orders=orders, seed=seed, secret_key=SECRET, now=NOW)


async def empty(db: Database) -> None:
    async with db.write() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())


async def row_counts(db: Database) -> dict[str, int]:
    async with db.read() as session:
        return {
            table.name: (await session.execute(select(func.count()).select_from(table))).scalar_one()
            for table in Base.metadata.sorted_tables
        }


async def canonical_dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every seeded table by natural keys, without the database-assigned ids.

    Ids that rows carry in their data (a request's in its events and job) are replaced by the AliExpress
    order id of the request's supplier order, since a PostgreSQL sequence does not restart when rows go.
    """
    parent = aliased(SupplierOrder)
    async with db.read() as session:

        async def rows(statement: Any) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in (await session.execute(statement)).all()]

        request_keys = {
            request_id: aliexpress_id
            for request_id, aliexpress_id in await rows(
                select(CancellationRequest.id, SupplierOrder.aliexpress_order_id).join(
                    SupplierOrder, SupplierOrder.id == CancellationRequest.supplier_order_id
                )
            )
        }

        dispute_keys = {
            dispute_id: aliexpress_id
            for dispute_id, aliexpress_id in await rows(
                select(Dispute.id, SupplierOrder.aliexpress_order_id).join(
                    SupplierOrder, SupplierOrder.id == Dispute.supplier_order_id
                )
            )
        }

        def named(data: dict[str, Any]) -> dict[str, Any]:
            if "cancellationRequestId" in data:
                return {**data, "cancellationRequestId": request_keys[data["cancellationRequestId"]]}
            if "disputeId" in data:
                return {**data, "disputeId": dispute_keys[data["disputeId"]]}
            return data

        def job_payload(payload: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
            if "disputeId" in payload:
                return True, {**payload, "disputeId": dispute_keys[payload["disputeId"]]}
            return False, {**payload, "requestId": request_keys[payload["requestId"]]}

        jobs = [
            (
                shop,
                kind,
                key == f"{kind}:{payload.get('disputeId', payload.get('requestId'))}",
                job_payload(payload),
                *rest,
            )
            for shop, kind, key, payload, *rest in await rows(
                select(
                    Shop.name,
                    Job.kind,
                    Job.key,
                    Job.payload,
                    Job.status,
                    Job.attempts,
                    Job.max_attempts,
                    Job.run_at,
                    Job.created_at,
                )
                .join(Shop, Shop.id == Job.shop_id)
                .order_by(Job.id)
            )
        ]
        events = [
            (*head, named(data), created_at)
            for *head, data, created_at in await rows(
                select(
                    Order.currency,
                    Order.number,
                    parent.aliexpress_order_id,
                    OrderEvent.type,
                    OrderEvent.actor_kind,
                    OrderEvent.actor_name,
                    OrderEvent.message,
                    OrderEvent.data,
                    OrderEvent.created_at,
                )
                .join(Order, Order.id == OrderEvent.order_id)
                .outerjoin(parent, parent.id == OrderEvent.supplier_order_id)
                .order_by(Order.currency, Order.number_value, OrderEvent.id)
            )
        ]
        return {
            "shops": await rows(
                select(Shop.name, Shop.currency, Shop.email, Shop.return_address).order_by(Shop.name)
            ),
            "suppliers": await rows(
                select(
                    Shop.name,
                    Supplier.name,
                    Supplier.aliexpress_store_id,
                    Supplier.store_url,
                    Supplier.accepts_returns,
                    Supplier.return_window_days,
                    Supplier.webhook_secret,
                )
                .join(Shop, Shop.id == Supplier.shop_id)
                .order_by(Supplier.name)
            ),
            "orders": await rows(
                select(
                    Shop.name,
                    *(column for column in Order.__table__.columns if column.name not in {"id", "shop_id"}),
                )
                .join(Shop, Shop.id == Order.shop_id)
                .order_by(Shop.name, Order.number_value)
            ),
            "supplier_orders": await rows(
                select(
                    Order.number,
                    Supplier.name,
                    *(
                        column
                        for column in SupplierOrder.__table__.columns
                        if column.name not in {"id", "shop_id", "order_id", "supplier_id"}
                    ),
                )
                .join(Order, Order.id == SupplierOrder.order_id)
                .join(Supplier, Supplier.id == SupplierOrder.supplier_id)
                .order_by(SupplierOrder.aliexpress_order_id)
            ),
            "lines": await rows(
                select(
                    Order.currency,
                    Order.number,
                    SupplierOrder.aliexpress_order_id,
                    OrderLine.position,
                    OrderLine.title,
                    OrderLine.variant_title,
                    OrderLine.sku,
                    OrderLine.quantity,
                    OrderLine.unit_price,
                    OrderLine.image_url,
                )
                .join(Order, Order.id == OrderLine.order_id)
                .join(SupplierOrder, SupplierOrder.id == OrderLine.supplier_order_id)
                .order_by(Order.currency, Order.number_value, OrderLine.position)
            ),
            "packages": await rows(
                select(
                    SupplierOrder.aliexpress_order_id,
                    Package.tracking_number,
                    Package.carrier,
                    Package.tracking_status,
                    Package.tracking_events,
                    Package.created_at,
                    Package.updated_at,
                )
                .join(SupplierOrder, SupplierOrder.id == Package.supplier_order_id)
                .order_by(SupplierOrder.aliexpress_order_id, Package.id)
            ),
            "events": events,
            "cancellation_requests": await rows(
                select(
                    Order.number,
                    SupplierOrder.aliexpress_order_id,
                    CancellationRequest.open_key == SupplierOrder.id,
                    *(
                        column
                        for column in CancellationRequest.__table__.columns
                        if column.name not in {"id", "shop_id", "order_id", "supplier_order_id", "open_key"}
                    ),
                )
                .join(Order, Order.id == CancellationRequest.order_id)
                .join(SupplierOrder, SupplierOrder.id == CancellationRequest.supplier_order_id)
                .order_by(SupplierOrder.aliexpress_order_id)
            ),
            "cancellation_messages": await rows(
                select(
                    SupplierOrder.aliexpress_order_id,
                    CancellationMessage.author,
                    CancellationMessage.author_name,
                    CancellationMessage.body,
                    CancellationMessage.created_at,
                )
                .join(CancellationRequest, CancellationRequest.id == CancellationMessage.request_id)
                .join(SupplierOrder, SupplierOrder.id == CancellationRequest.supplier_order_id)
                .order_by(SupplierOrder.aliexpress_order_id, CancellationMessage.id)
            ),
            "jobs": jobs,
            "disputes": await rows(
                select(
                    SupplierOrder.aliexpress_order_id,
                    Dispute.open_key == SupplierOrder.id,
                    *(
                        column
                        for column in Dispute.__table__.columns
                        if column.name not in {"id", "shop_id", "order_id", "supplier_order_id", "open_key"}
                    ),
                )
                .join(SupplierOrder, SupplierOrder.id == Dispute.supplier_order_id)
                .order_by(SupplierOrder.aliexpress_order_id)
            ),
            "dispute_messages": await rows(
                select(
                    SupplierOrder.aliexpress_order_id,
                    DisputeMessage.author,
                    DisputeMessage.author_name,
                    DisputeMessage.body,
                    DisputeMessage.created_at,
                )
                .join(Dispute, Dispute.id == DisputeMessage.dispute_id)
                .join(SupplierOrder, SupplierOrder.id == Dispute.supplier_order_id)
                .order_by(SupplierOrder.aliexpress_order_id, DisputeMessage.id)
            ),
        }


async def test_seed_builds_a_consistent_demo(db: Database) -> None:
    calls: list[tuple[int, int]] = []
    result = await seed_demo(
        db, orders=60, seed=1, secret_key=SECRET, now=NOW, progress=lambda *a: calls.append(a)
    )

    assert result.created and result.orders == 60
    assert calls and calls[-1] == (60, 60)
    async with db.read() as session:
        shops = (await session.scalars(select(Shop).order_by(Shop.id))).all()
        suppliers = (await session.scalars(select(Supplier))).all()
        orders = (await session.scalars(select(Order))).all()
        supplier_orders = (await session.scalars(select(SupplierOrder))).all()
        lines = (await session.scalars(select(OrderLine))).all()
        packages = (await session.scalars(select(Package))).all()
        events = (await session.scalars(select(OrderEvent).order_by(OrderEvent.id))).all()

    assert [shop.name for shop in shops] == list(result.shop_ids)
    assert len(shops) == 2 and all(shop.return_address and shop.shop_id == shop.id for shop in shops)
    assert {shop.currency for shop in shops} == {"USD", "EUR"}
    assert len(suppliers) >= 6
    assert len(orders) == 60
    for supplier in suppliers:
        assert supplier.store_url == f"https://www.aliexpress.com/store/{supplier.aliexpress_store_id}"
        assert supplier.webhook_secret.startswith("whsec_")
        assert len(base64.b64decode(supplier.webhook_secret.removeprefix("whsec_"))) == 24
    assert sum(supplier.accepts_returns for supplier in suppliers) < len(suppliers) / 2

    supplier_shop = {supplier.id: supplier.shop_id for supplier in suppliers}
    by_order: dict[int, list[SupplierOrder]] = defaultdict(list)
    for supplier_order in supplier_orders:
        by_order[supplier_order.order_id].append(supplier_order)
    for shop in shops:
        statuses = {so.status for so in supplier_orders if so.shop_id == shop.id}
        assert statuses == set(SupplierOrderStatus), shop.name
        ids = [so.aliexpress_order_id for so in supplier_orders if so.shop_id == shop.id]
        assert len(set(ids)) == len(ids) and all(len(i) == 16 and i.isdigit() for i in ids)
        numbers = sorted(order.number_value for order in orders if order.shop_id == shop.id)
        assert numbers == list(range(1001, 1001 + len(numbers)))
    assert any(len(group) >= 2 for group in by_order.values())

    lines_by_order: dict[int, list[OrderLine]] = defaultdict(list)
    for line in lines:
        lines_by_order[line.order_id].append(line)
        assert line.supplier_order_id is not None and line.title and line.sku and line.image_url
    captured = {
        min(o.id for o in orders if o.shop_id == shop.id and o.status is OrderStatus.CANCELLED)
        for shop in shops
        if any(o.shop_id == shop.id and o.status is OrderStatus.CANCELLED for o in orders)
    }
    for order in orders:
        group = by_order[order.id]
        order_lines = lines_by_order[order.id]
        assert 1 <= len(order_lines) <= 5 and 1 <= len(group) <= 3
        assert len({so.supplier_id for so in group}) == len(group)
        assert all(supplier_shop[so.supplier_id] == order.shop_id for so in group)
        assert order.subtotal == sum(line.quantity * line.unit_price for line in order_lines)
        assert order.total == order.subtotal + order.shipping
        assert all(line.unit_price == line.unit_price.quantize(Decimal("0.01")) for line in order_lines)
        assert sum(so.cost for so in group) < order.subtotal
        assert NOW - timedelta(days=121) <= order.created_at <= order.updated_at <= NOW
        assert order.customer_name and order.customer_email and "@" in order.customer_email
        assert set(order.shipping_address or {}) == {
            "name",
            "address1",
            "city",
            "province",
            "zip",
            "country_code",
        }
        cancelled = all(so.end_reason in CANCEL_END_REASONS for so in group)
        assert (order.status is OrderStatus.CANCELLED) == cancelled
        # A cancelled order's payment is voided, but for the first of each shop's, whose payment was captured.
        owed = order.id in captured
        assert (order.financial_status is FinancialStatus.VOIDED) == (cancelled and not owed)
        assert (order.cancelled_at is not None) == cancelled
        if not cancelled and all(so.status is SupplierOrderStatus.FINISH for so in group):
            assert order.status is OrderStatus.CLOSED

    for so in supplier_orders:
        assert so.created_at <= so.updated_at <= NOW
        assert (so.paid_at is None) == (so.status in UNPAID or so.end_reason == "buyer_cancel_notpay_order")
        assert (
            (so.finished_at is not None)
            == (so.status is SupplierOrderStatus.FINISH)
            == (so.end_reason is not None)
        )
        if so.status in SHIPPED or so.end_reason in {"buyer_accept_goods", "buyer_accept_goods_timeout"}:
            assert so.shipped_at is not None
        if so.shipped_at is None:
            assert so.status not in SHIPPED
        else:
            assert so.paid_at is not None and so.paid_at <= so.shipped_at
    shipped_ids = {so.id for so in supplier_orders if so.shipped_at is not None}
    assert packages and {package.supplier_order_id for package in packages} == shipped_ids
    for package in packages:
        assert 2 <= len(package.tracking_events) <= 6
        assert package.tracking_status == package.tracking_events[-1]["status"]
        times = [datetime.fromisoformat(event["time"]) for event in package.tracking_events]
        assert times == sorted(times) and times[-1] <= NOW
        assert all(
            set(event) == {"time", "status", "location", "description"} for event in package.tracking_events
        )

    assert {event.order_id for event in events} == {order.id for order in orders}
    async with db.read() as session:
        disputed = set(await session.scalars(select(Dispute.supplier_order_id)))
    # Steps of disputes carry their real actors; they are checked in test_disputes_in_every_status.
    assert all(
        event.actor_kind is ActorKind.SYSTEM and event.actor_name == "Demo data"
        for event in events
        if event.type not in CANCELLATION_EVENTS and event.supplier_order_id not in disputed
    )
    assert all(event.created_at <= NOW for event in events)
    assert {"order_imported", "supplier_order_placed", "supplier_order_shipped"} <= {
        event.type for event in events
    }


@pytest.mark.parametrize("orders", [50, 137])
async def test_every_status_appears_in_each_shop(db: Database, orders: int) -> None:
    await seed(db, orders=orders, seed=orders)
    async with db.read() as session:
        rows = (await session.execute(select(SupplierOrder.shop_id, SupplierOrder.status).distinct())).all()
    per_shop: dict[int, set[SupplierOrderStatus]] = defaultdict(set)
    for shop_id, status in rows:
        per_shop[shop_id].add(status)
    assert len(per_shop) == 2
    assert all(statuses == set(SupplierOrderStatus) for statuses in per_shop.values())


async def test_same_seed_and_now_give_identical_data(db: Database) -> None:
    first_result = await seed(db)
    first = await canonical_dump(db)
    await empty(db)
    second_result = await seed(db)
    assert await canonical_dump(db) == first
    assert (first_result.merchant_tokens, first_result.supplier_tokens, first_result.admin_token) == (
        second_result.merchant_tokens,
        second_result.supplier_tokens,
        second_result.admin_token,
    )

    assert first["cancellation_requests"] and first["cancellation_messages"] and first["jobs"]

    await empty(db)
    await seed(db, seed=2)
    assert (await canonical_dump(db))["orders"] != first["orders"]


async def rows_digest(db: Database) -> dict[str, str]:
    """A digest of each table's rows, ids included, in primary-key order."""
    digests = {}
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            result = await session.execute(select(table).order_by(*table.primary_key.columns))
            digests[table.name] = hashlib.sha256(repr([tuple(row) for row in result]).encode()).hexdigest()
    return digests


async def empty_with_ids_restarted(db: Database) -> None:
    """Every table emptied, and the next row of each numbered from 1 again (SQLite does so by itself)."""
    if db.dialect == "postgresql":
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with db.write() as session:
            await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        await empty(db)


async def test_planner_processes_give_the_same_rows_as_planning_in_turn(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so that each shop's planner process has several, and the second plans one ahead of its
    # ids and then waits for them.
    monkeypatch.setattr(generator, "BATCH_SIZE", 40)
    monkeypatch.setattr(generator, "HELD_AHEAD", 1)
    await empty_with_ids_restarted(db)
    await seed(db, orders=300, seed=5)
    in_turn = await rows_digest(db)
    await empty_with_ids_restarted(db)
    monkeypatch.setattr(generator, "PIPELINE_FROM", 1)
    await seed(db, orders=300, seed=5)
    assert await rows_digest(db) == in_turn
    async with db.read() as session:
        shops = (await session.execute(select(Order.shop_id).distinct())).scalars().all()
    assert len(shops) == 2


async def test_second_call_inserts_nothing(db: Database) -> None:
    first = await seed(db)
    before = await row_counts(db)
    again = await seed_demo(db, orders=500, seed=9, secret_key=SECRET)
    assert not again.created and again.orders == 0
    assert await row_counts(db) == before
    assert again.shop_ids == first.shop_ids
    assert again.merchant_tokens == first.merchant_tokens
    assert again.supplier_tokens == first.supplier_tokens
    assert again.admin_token == first.admin_token


async def test_tokens_authenticate(db: Database) -> None:
    result = await seed(db, orders=0)
    async with db.read() as session:
        suppliers = {s.name: s for s in (await session.scalars(select(Supplier))).all()}
        for name, raw in result.merchant_tokens.items():
            actor = await authenticate(session, raw)
            assert actor is not None and actor.is_merchant
            assert actor.shop_id == result.shop_ids[name]
            assert actor.scopes == frozenset(Scope.ALL)
        assert {suppliers[name].shop_id for name in result.supplier_tokens} == set(result.shop_ids.values())
        for name, raw in result.supplier_tokens.items():
            actor = await authenticate(session, raw)
            assert actor is not None and actor.is_supplier
            assert actor.supplier_id == suppliers[name].id and actor.shop_id == suppliers[name].shop_id
        admin = await authenticate(session, result.admin_token)
        assert admin is not None and admin.is_admin
        assert await authenticate(session, result.admin_token + "x") is None
        stored = (await session.scalars(select(AccessToken.token_hash))).all()
    raws = [*result.merchant_tokens.values(), *result.supplier_tokens.values(), result.admin_token]
    assert not set(raws) & set(stored)


async def test_in_cancel_supplier_orders_wait_on_open_requests(db: Database) -> None:
    result = await seed(db, orders=300)
    staff = {shop_id: f"{name} staff (demo)" for name, shop_id in result.shop_ids.items()}
    async with db.read() as session:
        supplier_orders = {so.id: so for so in (await session.scalars(select(SupplierOrder))).all()}
        orders = {order.id: order for order in (await session.scalars(select(Order))).all()}
        suppliers = {supplier.id: supplier for supplier in (await session.scalars(select(Supplier))).all()}
        requests = (await session.scalars(select(CancellationRequest))).all()
        messages = (await session.scalars(select(CancellationMessage).order_by(CancellationMessage.id))).all()
        jobs = (await session.scalars(select(Job).where(Job.kind == AUTO_APPROVE_KIND))).all()
        events = (
            await session.scalars(select(OrderEvent).where(OrderEvent.type.in_(CANCELLATION_EVENTS)))
        ).all()

    in_cancel = {so_id for so_id, so in supplier_orders.items() if so.status is SupplierOrderStatus.IN_CANCEL}
    open_requests = [request for request in requests if request.status in OPEN]
    assert in_cancel and len(open_requests) == len(requests)
    assert sorted(request.open_key or 0 for request in open_requests) == sorted(in_cancel)
    assert {request.status for request in requests} == OPEN

    thread: dict[int, list[CancellationMessage]] = defaultdict(list)
    for message in messages:
        thread[message.request_id].append(message)
    jobs_by_key = {job.key: job for job in jobs}
    assert len(jobs_by_key) == len(jobs) == sum(r.status is CancellationStatus.PENDING for r in requests)
    timeline: dict[int, list[OrderEvent]] = defaultdict(list)
    for event in events:
        timeline[event.data["cancellationRequestId"]].append(event)

    for request in requests:
        so = supplier_orders[request.supplier_order_id]
        supplier_name = f"{suppliers[so.supplier_id].name} (demo)"
        assert (request.open_key, request.shop_id, request.order_id) == (so.id, so.shop_id, so.order_id)
        assert request.previous_status is SupplierOrderStatus.WAIT_SELLER_SEND_GOODS
        assert request.requested_by == staff[request.shop_id] and request.decided_at is None
        assert request.respond_by == request.created_at + RESPONSE_TIME and request.respond_by > NOW
        assert so.paid_at is not None and so.paid_at <= request.created_at == so.updated_at
        assert so.updated_at <= orders[so.order_id].updated_at <= NOW and request.updated_at <= NOW

        merchant, *rest = thread[request.id]
        assert (merchant.author, merchant.author_name) == (MessageAuthor.MERCHANT, request.requested_by)
        assert merchant.body and merchant.created_at == request.created_at
        requested = timeline[request.id][0]
        assert (requested.type, requested.actor_kind, requested.actor_name) == (
            "cancellation_requested",
            ActorKind.MERCHANT,
            request.requested_by,
        )
        assert (requested.order_id, requested.supplier_order_id) == (so.order_id, so.id)
        assert requested.created_at == request.created_at
        assert requested.message == (
            f"Cancellation of AliExpress order {so.aliexpress_order_id} requested ({request.reason})"
        )
        assert requested.data == {
            "cancellationRequestId": request.id,
            "status": "PENDING",
            "reason": request.reason.value,
            "respondBy": request.respond_by.isoformat(),
        }
        key = f"{AUTO_APPROVE_KIND}:{request.id}"
        if request.status is CancellationStatus.PENDING:
            assert rest == [] and len(timeline[request.id]) == 1
            job = jobs_by_key[key]
            assert (job.kind, job.payload, job.shop_id, job.run_at) == (
                AUTO_APPROVE_KIND,
                {"requestId": request.id},
                request.shop_id,
                request.respond_by,
            )
            assert (job.status, job.attempts, job.max_attempts) == (JobStatus.QUEUED, 0, DEFAULT_MAX_ATTEMPTS)
        else:
            assert key not in jobs_by_key
            [question] = rest
            assert (question.author, question.author_name) == (MessageAuthor.SUPPLIER, supplier_name)
            assert request.created_at < question.created_at == request.updated_at <= NOW
            asked = timeline[request.id][1]
            assert (asked.type, asked.actor_kind, asked.actor_name) == (
                "cancellation_info_requested",
                ActorKind.SUPPLIER,
                supplier_name,
            )
            assert asked.created_at == question.created_at
            assert asked.data == {"cancellationRequestId": request.id, "status": "INFO_REQUESTED"}

    # The job does what the domain's own would: at the deadline the request is approved automatically.
    job = min(jobs, key=lambda job: job.id)
    async with db.write() as session:
        approved = await auto_approve_cancellation(
            session, Actor.system(job.shop_id), int(job.payload["requestId"]), now=job.run_at
        )
        assert approved is not None and approved.status is CancellationStatus.AUTO_APPROVED
    async with db.read() as session:
        cancelled = await session.get(SupplierOrder, approved.supplier_order_id)
    assert cancelled is not None and cancelled.end_reason == "cancel_order_close_trade"


async def test_open_cancellation_search_matches_in_cancel_orders(api: Api, db: Database) -> None:
    result = await seed(db, orders=300)
    async with db.read() as session:
        rows = (
            await session.execute(
                select(SupplierOrder.shop_id, func.count(func.distinct(SupplierOrder.order_id)), func.count())
                .where(SupplierOrder.status == SupplierOrderStatus.IN_CANCEL)
                .group_by(SupplierOrder.shop_id)
            )
        ).all()
    in_cancel = {shop_id: (orders, supplier_orders) for shop_id, orders, supplier_orders in rows}
    assert set(in_cancel) == set(result.shop_ids.values())
    for name, token in result.merchant_tokens.items():
        data = await api.data(
            token,
            """{
                ordersCount(query: "has:open_cancellation")
                cancellationRequests(first: 250) { nodes { status respondBy } }
            }""",
        )
        orders, supplier_orders = in_cancel[result.shop_ids[name]]
        assert data["ordersCount"] == orders, name
        nodes = data["cancellationRequests"]["nodes"]
        assert len(nodes) == supplier_orders, name
        assert {node["status"] for node in nodes} <= {"PENDING", "INFO_REQUESTED"}
        assert all(datetime.fromisoformat(node["respondBy"]) > NOW for node in nodes)


@pytest.mark.parametrize("orders", [200, 1000])
async def test_disputes_in_every_status(db: Database, orders: int) -> None:
    result = await seed(db, orders=orders)
    async with db.read() as session:
        supplier_orders = {so.id: so for so in (await session.scalars(select(SupplierOrder))).all()}
        disputes = (await session.scalars(select(Dispute).order_by(Dispute.id))).all()
        messages = (await session.scalars(select(DisputeMessage))).all()
        refunds = (
            await session.scalars(select(SupplierRefund).where(SupplierRefund.source == "dispute"))
        ).all()
        jobs = (await session.scalars(select(Job).where(Job.kind == DISPUTE_DEADLINE_KIND))).all()
        events = (await session.scalars(select(OrderEvent).where(OrderEvent.type.like("dispute_%")))).all()

    for shop_id in result.shop_ids.values():
        assert {d.status for d in disputes if d.shop_id == shop_id} == set(DisputeStatus)
    # IN_ISSUE exactly while a dispute is open, one open dispute per supplier order.
    in_issue = {so_id for so_id, so in supplier_orders.items() if so.status is SupplierOrderStatus.IN_ISSUE}
    open_disputes = [d for d in disputes if d.status in OPEN_DISPUTES]
    assert sorted(d.open_key or 0 for d in open_disputes) == sorted(in_issue)
    assert all(d.open_key is None for d in disputes if d.status not in OPEN_DISPUTES)
    threads = {message.dispute_id for message in messages}
    for dispute in disputes:
        so = supplier_orders[dispute.supplier_order_id]
        assert (dispute.shop_id, dispute.order_id, dispute.currency) == (so.shop_id, so.order_id, so.currency)
        assert Decimal(0) < dispute.requested_amount <= so.cost
        assert dispute.created_at <= dispute.updated_at <= NOW and dispute.id in threads
        assert dispute.respond_by == dispute.created_at + timedelta(days=5)
        if dispute.status is DisputeStatus.AWAITING_SUPPLIER:
            assert dispute.respond_by > NOW
        assert (dispute.outcome is None) == (
            dispute.status
            in {
                DisputeStatus.AWAITING_SUPPLIER,
                DisputeStatus.SUPPLIER_RESPONDED,
                DisputeStatus.ESCALATED,
                DisputeStatus.CANCELLED,
            }
        )
    refunded = {refund.source_id: refund for refund in refunds}
    for dispute in disputes:
        refund = refunded.get(dispute.id)
        if dispute.status is DisputeStatus.RESOLVED and dispute.resolution_amount is not None:
            assert refund is not None and refund.amount == dispute.resolution_amount
        else:
            assert refund is None
    assert sorted(job.payload["disputeId"] for job in jobs) == sorted(
        d.id for d in disputes if d.status is DisputeStatus.AWAITING_SUPPLIER
    )
    assert all(event.created_at <= NOW for event in events)
    assert {event.data["disputeId"] for event in events} == {d.id for d in disputes}


async def _schema_objects(db: Database) -> list[tuple[str, str]]:
    """Every index and trigger with its definition, from the database's own catalogue."""
    async with db.read() as session:
        if db.dialect == "postgresql":
            query = (
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"
            )
        else:
            query = "SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY 1"
        return [(name, definition) for name, definition in await session.execute(text(query))]


async def test_seed_builds_the_indexes_it_set_aside_and_fills_the_text_index(db: Database) -> None:
    before = await _schema_objects(db)
    assert any(name == "ix_orders_shop_customer" for name, _ in before)
    await seed(db, orders=120)
    assert await _schema_objects(db) == before
    async with db.read() as session:
        order_id, customer = (
            await session.execute(select(Order.id, Order.customer_name).order_by(Order.id).limit(1))
        ).one()
        # Free text goes through PostgreSQL's trigram index or SQLite's FTS5 table.
        found = await session.scalars(select(Order.id).where(order_filter(customer.split()[-1], now=NOW)))
        assert order_id in set(found)
        if db.dialect == "sqlite":
            # The FTS5 table was rebuilt from the orders: it holds exactly their text.
            await session.execute(
                text("INSERT INTO orders_search(orders_search, rank) VALUES ('integrity-check', 1)")
            )


async def test_a_failed_seed_leaves_nothing_and_keeps_the_indexes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await _schema_objects(db)

    async def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("stopped half way")

    monkeypatch.setattr(generator, "_seed_disputes", fail)
    with pytest.raises(RuntimeError, match="half way"):
        await seed(db, orders=120)
    assert set((await row_counts(db)).values()) == {0}
    assert await _schema_objects(db) == before
    monkeypatch.undo()
    result = await seed(db, orders=120)
    assert result.created and result.orders == 120
