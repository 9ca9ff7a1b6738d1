"""B1: the dashboard page answered by hand, the limit of this stack for what W1 asks.

A Starlette endpoint that runs the same six SQL statements the GraphQL server needs (orders, lines, supplier
orders, suppliers, packages, cancellation requests) as plain SQL text on a SQLAlchemy Core connection (no ORM
objects, no GraphQL), builds the answer as dicts in the order W1 selects its fields, and serialises it with
orjson. Tenancy is the shop id in every WHERE clause, as ``domain.access.visible`` does for a merchant.

    uvicorn --factory bench.baseline_endpoint:create_app   (DROPDESK_DATABASE_URL, DROPDESK_BASELINE_SHOP)

``GET /w1?first=100`` answers ``{"data": {"orders": {"nodes": [...]}}}``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.types import AMOUNT_SCALE
from domain.money import CURRENCY_EXPONENTS

ORDERS = text(
    "SELECT id, number, created_at, updated_at, status, financial_status, customer_name, customer_email,"
    " currency, total FROM orders WHERE shop_id = :shop ORDER BY created_at DESC, id DESC LIMIT :limit"
)
LINES = text(
    "SELECT order_id, title, sku, quantity, unit_price FROM order_lines"
    " WHERE shop_id = :shop AND order_id IN :ids ORDER BY order_id, position"
).bindparams(bindparam("ids", expanding=True))
SUPPLIER_ORDERS = text(
    "SELECT id, order_id, supplier_id, aliexpress_order_id, status FROM supplier_orders"
    " WHERE shop_id = :shop AND order_id IN :ids ORDER BY order_id, id"
).bindparams(bindparam("ids", expanding=True))
SUPPLIERS = text("SELECT id, name FROM suppliers WHERE shop_id = :shop AND id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
PACKAGES = text(
    "SELECT supplier_order_id, tracking_number, carrier, tracking_events FROM packages"
    " WHERE shop_id = :shop AND supplier_order_id IN :ids ORDER BY supplier_order_id, id"
).bindparams(bindparam("ids", expanding=True))
CANCELLATIONS = text(
    "SELECT supplier_order_id, status, reason, respond_by FROM cancellation_requests"
    " WHERE shop_id = :shop AND supplier_order_id IN :ids ORDER BY supplier_order_id, id"
).bindparams(bindparam("ids", expanding=True))


def _time(value: Any) -> str | None:
    """ISO 8601 in UTC to the second, as the DateTime scalar writes it; SQLite hands back naive text."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds")


def _amount(scaled: int, currency: str) -> str:
    exponent = CURRENCY_EXPONENTS[currency]
    return str((Decimal(int(scaled)) / AMOUNT_SCALE).quantize(Decimal(1).scaleb(-exponent)))


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def w1_page(engine: AsyncEngine, shop_id: int, first: int) -> dict[str, Any]:
    async with engine.connect() as connection:
        orders = (await connection.execute(ORDERS, {"shop": shop_id, "limit": first})).all()
        order_ids = [row.id for row in orders] or [0]
        lines: dict[int, list[dict[str, Any]]] = defaultdict(list)
        supplier_orders: dict[int, list[Any]] = defaultdict(list)
        currencies = {row.id: row.currency for row in orders}
        for row in await connection.execute(LINES, {"shop": shop_id, "ids": order_ids}):
            lines[row.order_id].append(
                {
                    "title": row.title,
                    "sku": row.sku,
                    "quantity": row.quantity,
                    "unitPrice": {"amount": _amount(row.unit_price, currencies[row.order_id])},
                }
            )
        supplier_order_rows = (
            await connection.execute(SUPPLIER_ORDERS, {"shop": shop_id, "ids": order_ids})
        ).all()
        for row in supplier_order_rows:
            supplier_orders[row.order_id].append(row)
        supplier_order_ids = [row.id for row in supplier_order_rows] or [0]
        supplier_ids = sorted({row.supplier_id for row in supplier_order_rows}) or [0]
        names = {
            row.id: row.name
            for row in await connection.execute(SUPPLIERS, {"shop": shop_id, "ids": supplier_ids})
        }
        packages: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in await connection.execute(PACKAGES, {"shop": shop_id, "ids": supplier_order_ids}):
            packages[row.supplier_order_id].append(
                {
                    "trackingNumber": row.tracking_number,
                    "carrier": row.carrier,
                    "events": [
                        {
                            "time": _time(event["time"]),
                            "status": event["status"],
                            "location": event.get("location"),
                        }
                        for event in _json(row.tracking_events)
                    ],
                }
            )
        cancellations: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in await connection.execute(CANCELLATIONS, {"shop": shop_id, "ids": supplier_order_ids}):
            cancellations[row.supplier_order_id].append(
                {"status": row.status, "reason": row.reason, "respondBy": _time(row.respond_by)}
            )
    nodes = [
        {
            "id": f"gid://dropdesk/Order/{order.id}",
            "number": order.number,
            "createdAt": _time(order.created_at),
            "updatedAt": _time(order.updated_at),
            "status": order.status,
            "financialStatus": order.financial_status,
            "customer": {"name": order.customer_name, "email": order.customer_email},
            "total": {"amount": _amount(order.total, order.currency), "currencyCode": order.currency},
            "lines": lines.get(order.id, []),
            "supplierOrders": [
                {
                    "aliexpressOrderId": supplier_order.aliexpress_order_id,
                    "status": supplier_order.status,
                    "supplier": {"name": names[supplier_order.supplier_id]},
                    "packages": packages.get(supplier_order.id, []),
                    "cancellationRequests": cancellations.get(supplier_order.id, []),
                }
                for supplier_order in supplier_orders.get(order.id, [])
            ],
        }
        for order in orders
    ]
    return {"data": {"orders": {"nodes": nodes}}}


def create_app(database_url: str | None = None, shop_id: int | None = None) -> Starlette:
    url = database_url or os.environ["DROPDESK_DATABASE_URL"]
    shop = shop_id if shop_id is not None else int(os.environ.get("DROPDESK_BASELINE_SHOP", "1"))
    engine = (
        create_async_engine(url, pool_size=10) if url.startswith("postgresql") else create_async_engine(url)
    )

    async def w1(request: Request) -> Response:
        first = min(int(request.query_params.get("first", "100")), 250)
        page = await w1_page(engine, shop, first)
        return Response(orjson.dumps(page), media_type="application/json")

    return Starlette(routes=[Route("/w1", w1)])
