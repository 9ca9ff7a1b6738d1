"""GraphQL object types for shops, suppliers, orders and supplier orders."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from db import models
from domain.money import CURRENCY_EXPONENTS, quantize
from domain.supplier_orders import can_open_dispute, can_request_cancellation
from schema.context import context_of, require_merchant_data
from schema.ids import to_global_id

CurrencyCode = strawberry.enum(  # type: ignore[call-overload]
    enum.Enum("CurrencyCode", {code: code for code in sorted(CURRENCY_EXPONENTS)}),  # type: ignore[misc]
    description="ISO 4217 currency code",
)
OrderFinancialStatus = strawberry.enum(models.FinancialStatus, name="OrderFinancialStatus")
OrderStatus = strawberry.enum(models.OrderStatus, name="OrderStatus")
SupplierOrderStatus = strawberry.enum(
    models.SupplierOrderStatus, name="SupplierOrderStatus", description="AliExpress order status"
)
ActorKind = strawberry.enum(models.ActorKind, name="ActorKind")
CancellationRequestStatus = strawberry.enum(models.CancellationStatus, name="CancellationRequestStatus")
CancellationReason = strawberry.enum(models.CancellationReason, name="CancellationReason")
CancellationMessageAuthor = strawberry.enum(models.MessageAuthor, name="CancellationMessageAuthor")


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID


@strawberry.type(description="An exact amount of money; the amount is a decimal string, never a float.")
class Money:
    amount: Decimal
    currency_code: CurrencyCode  # type: ignore[valid-type]

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        return cls(amount=quantize(amount, currency), currency_code=CurrencyCode[currency])


@strawberry.type
class MailingAddress:
    name: str | None
    address1: str | None
    address2: str | None
    city: str | None
    province: str | None
    zip: str | None
    country_code: str | None
    phone: str | None

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> MailingAddress | None:
        if not data:
            return None
        return cls(
            name=data.get("name"),
            address1=data.get("address1"),
            address2=data.get("address2"),
            city=data.get("city"),
            province=data.get("province"),
            zip=data.get("zip"),
            country_code=data.get("country_code"),
            phone=data.get("phone"),
        )


@strawberry.type
class Customer:
    name: str
    email: str | None
    phone: str | None


@strawberry.type
class Supplier(Node):
    model: strawberry.Private[models.Supplier]
    name: str
    aliexpress_store_id: str
    store_url: str | None
    accepts_returns: bool
    return_window_days: int

    @classmethod
    def of(cls, model: models.Supplier) -> Supplier:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Supplier", model.id)),
            name=model.name,
            aliexpress_store_id=model.aliexpress_store_id,
            store_url=model.store_url,
            accepts_returns=model.accepts_returns,
            return_window_days=model.return_window_days,
        )


@strawberry.type
class Shop(Node):
    model: strawberry.Private[models.Shop]
    name: str
    currency_code: CurrencyCode  # type: ignore[valid-type]
    email: str | None

    @strawberry.field
    def return_address(self) -> MailingAddress | None:
        return MailingAddress.of(self.model.return_address)

    @strawberry.field(description="The suppliers this shop buys from.")
    async def suppliers(self, info: Info) -> list[Supplier]:
        rows = await context_of(info).loaders.suppliers_by_shop.load(self.model.id)
        return [Supplier.of(row) for row in rows]

    @classmethod
    def of(cls, model: models.Shop) -> Shop:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Shop", model.id)),
            name=model.name,
            currency_code=CurrencyCode[model.currency],
            email=model.email,
        )


@strawberry.type
class TrackingEvent:
    time: datetime
    status: str
    location: str | None
    description: str | None


@strawberry.type
class Package(Node):
    model: strawberry.Private[models.Package]
    tracking_number: str
    carrier: str | None
    tracking_status: str | None

    @strawberry.field(description="Carrier scans, oldest first.")
    def events(self) -> list[TrackingEvent]:
        return [
            TrackingEvent(
                time=datetime.fromisoformat(event["time"]),
                status=event["status"],
                location=event.get("location"),
                description=event.get("description"),
            )
            for event in self.model.tracking_events
        ]

    @classmethod
    def of(cls, model: models.Package) -> Package:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Package", model.id)),
            tracking_number=model.tracking_number,
            carrier=model.carrier,
            tracking_status=model.tracking_status,
        )


@strawberry.type
class OrderLine(Node):
    model: strawberry.Private[models.OrderLine]
    currency: strawberry.Private[str | None]
    title: str
    variant_title: str | None
    sku: str | None
    quantity: int
    image_url: str | None

    @strawberry.field(description="Retail price per unit; merchants only.")
    async def unit_price(self, info: Info) -> Money | None:
        require_merchant_data(info)
        currency = self.currency
        if currency is None:
            order = await context_of(info).loaders.order.load(self.model.order_id)
            currency = order.currency if order else None
        return Money.of(self.model.unit_price, currency) if currency else None

    @strawberry.field
    async def supplier_order(
        self, info: Info
    ) -> Annotated[SupplierOrder, strawberry.lazy("schema.types")] | None:
        if self.model.supplier_order_id is None:
            return None
        row = await context_of(info).loaders.supplier_order.load(self.model.supplier_order_id)
        return SupplierOrder.of(row) if row else None

    @classmethod
    def of(cls, model: models.OrderLine, currency: str | None = None) -> OrderLine:
        return cls(
            model=model,
            currency=currency,
            id=strawberry.ID(to_global_id("OrderLine", model.id)),
            title=model.title,
            variant_title=model.variant_title,
            sku=model.sku,
            quantity=model.quantity,
            image_url=model.image_url,
        )


@strawberry.type(
    description="One AliExpress order placed with a supplier to fulfil some lines of a store order."
)
class SupplierOrder(Node):
    model: strawberry.Private[models.SupplierOrder]
    aliexpress_order_id: str
    status: SupplierOrderStatus  # type: ignore[valid-type]
    end_reason: str | None
    paid_at: datetime | None
    shipped_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="What the merchant paid the supplier.")
    def cost(self) -> Money:
        return Money.of(self.model.cost, self.model.currency)

    @strawberry.field
    async def supplier(self, info: Info) -> Supplier:
        row = await context_of(info).loaders.supplier.load(self.model.supplier_id)
        assert row is not None
        return Supplier.of(row)

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        rows = await context_of(info).loaders.lines_by_supplier_order.load(self.model.id)
        return [OrderLine.of(row, self.model.currency) for row in rows]

    @strawberry.field
    async def packages(self, info: Info) -> list[Package]:
        rows = await context_of(info).loaders.packages_by_supplier_order.load(self.model.id)
        return [Package.of(row) for row in rows]

    @strawberry.field(description="The store order it fulfils; merchants only.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.types")] | None:
        require_merchant_data(info)
        row = await context_of(info).loaders.order.load(self.model.order_id)
        return Order.of(row) if row else None

    @strawberry.field(description="Cancellation requests on this supplier order, oldest first.")
    async def cancellation_requests(
        self, info: Info
    ) -> list[Annotated[CancellationRequest, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.cancellation_requests_by_supplier_order.load(self.model.id)
        return [CancellationRequest.of(row) for row in rows]

    @strawberry.field(description="True when a cancellation may be asked for now.")
    def can_request_cancellation(self) -> bool:
        return can_request_cancellation(self.model)

    @strawberry.field(description="True when a dispute may be opened now.")
    def can_open_dispute(self) -> bool:
        return can_open_dispute(self.model)

    @classmethod
    def of(cls, model: models.SupplierOrder) -> SupplierOrder:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("SupplierOrder", model.id)),
            aliexpress_order_id=model.aliexpress_order_id,
            status=model.status,
            end_reason=model.end_reason,
            paid_at=model.paid_at,
            shipped_at=model.shipped_at,
            finished_at=model.finished_at,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )


@strawberry.type(description="A step in an order's timeline.")
class OrderEvent(Node):
    type: str
    actor_kind: ActorKind  # type: ignore[valid-type]
    actor_name: str
    message: str
    data: JSON
    created_at: datetime
    supplier_order_id: strawberry.ID | None
    order_pk: strawberry.Private[int | None] = None

    @strawberry.field(description="The order this event is about.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.types")] | None:
        require_merchant_data(info)
        row = await context_of(info).loaders.order.load(self.order_pk) if self.order_pk else None
        return Order.of(row) if row else None

    @classmethod
    def of(cls, model: models.OrderEvent) -> OrderEvent:
        return cls(
            id=strawberry.ID(to_global_id("OrderEvent", model.id)),
            type=model.type,
            actor_kind=model.actor_kind,
            actor_name=model.actor_name,
            message=model.message,
            data=model.data,  # type: ignore[arg-type]
            created_at=model.created_at,
            supplier_order_id=(
                strawberry.ID(to_global_id("SupplierOrder", model.supplier_order_id))
                if model.supplier_order_id
                else None
            ),
            order_pk=model.order_id,
        )


@strawberry.type(description="A customer's store order, with the supplier orders that fulfil it.")
class Order(Node):
    model: strawberry.Private[models.Order]
    number: str
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None
    currency_code: CurrencyCode  # type: ignore[valid-type]
    financial_status: OrderFinancialStatus  # type: ignore[valid-type]
    status: OrderStatus  # type: ignore[valid-type]
    tags: list[str]
    note: str | None

    @strawberry.field
    def customer(self) -> Customer:
        return Customer(
            name=self.model.customer_name, email=self.model.customer_email, phone=self.model.customer_phone
        )

    @strawberry.field
    def shipping_address(self) -> MailingAddress | None:
        return MailingAddress.of(self.model.shipping_address)

    @strawberry.field
    def subtotal(self) -> Money:
        return Money.of(self.model.subtotal, self.model.currency)

    @strawberry.field
    def shipping(self) -> Money:
        return Money.of(self.model.shipping, self.model.currency)

    @strawberry.field
    def total(self) -> Money:
        return Money.of(self.model.total, self.model.currency)

    @strawberry.field(description="What can still be refunded to the customer.")
    def refundable_amount(self) -> Money:
        voided = self.model.financial_status is models.FinancialStatus.VOIDED
        return Money.of(Decimal(0) if voided else self.model.total, self.model.currency)

    @strawberry.field(description="What the supplier orders cost, less those cancelled.")
    async def supplier_cost(self, info: Info) -> Money:
        return Money.of(await self._supplier_cost(info), self.model.currency)

    @strawberry.field(description="Total less supplier cost.")
    async def margin(self, info: Info) -> Money:
        return Money.of(self.model.total - await self._supplier_cost(info), self.model.currency)

    async def _supplier_cost(self, info: Info) -> Decimal:
        rows = await context_of(info).loaders.supplier_orders_by_order.load(self.model.id)
        return sum(
            (row.cost for row in rows if row.end_reason != "cancel_order_close_trade"),
            Decimal(0),
        )

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        rows = await context_of(info).loaders.lines_by_order.load(self.model.id)
        return [OrderLine.of(row, self.model.currency) for row in rows]

    @strawberry.field
    async def supplier_orders(self, info: Info) -> list[SupplierOrder]:
        rows = await context_of(info).loaders.supplier_orders_by_order.load(self.model.id)
        return [SupplierOrder.of(row) for row in rows]

    @strawberry.field(description="Cancellation requests on this order's supplier orders, oldest first.")
    async def cancellation_requests(
        self, info: Info
    ) -> list[Annotated[CancellationRequest, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.cancellation_requests_by_order.load(self.model.id)
        return [CancellationRequest.of(row) for row in rows]

    @strawberry.field(description="The order's timeline, oldest first.")
    async def events(self, info: Info) -> list[OrderEvent]:
        rows = await context_of(info).loaders.events_by_order.load(self.model.id)
        return [OrderEvent.of(row) for row in rows]

    @classmethod
    def of(cls, model: models.Order) -> Order:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Order", model.id)),
            number=model.number,
            created_at=model.created_at,
            updated_at=model.updated_at,
            cancelled_at=model.cancelled_at,
            currency_code=CurrencyCode[model.currency],
            financial_status=model.financial_status,
            status=model.status,
            tags=model.tag_list,
            note=model.note,
        )


@strawberry.type(description="One message in a cancellation request's thread.")
class CancellationMessage:
    author: CancellationMessageAuthor  # type: ignore[valid-type]
    body: str
    created_at: datetime

    @classmethod
    def of(cls, model: models.CancellationMessage) -> CancellationMessage:
        return cls(author=model.author, body=model.body, created_at=model.created_at)


@strawberry.type(
    description="A merchant's request that the supplier cancel a supplier order before it ships."
)
class CancellationRequest(Node):
    model: strawberry.Private[models.CancellationRequest]
    status: CancellationRequestStatus  # type: ignore[valid-type]
    reason: CancellationReason  # type: ignore[valid-type]
    respond_by: datetime | None = strawberry.field(
        description="When the request is approved automatically if the supplier has not decided; "
        "null when the supplier had nothing to decide."
    )
    decided_at: datetime | None = strawberry.field(
        description="When the request reached its final status (decided, withdrawn or closed)."
    )
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The thread between merchant, supplier and system, oldest first.")
    async def messages(self, info: Info) -> list[CancellationMessage]:
        rows = await context_of(info).loaders.cancellation_messages_by_request.load(self.model.id)
        return [CancellationMessage.of(row) for row in rows]

    @strawberry.field
    async def supplier_order(self, info: Info) -> SupplierOrder | None:
        row = await context_of(info).loaders.supplier_order.load(self.model.supplier_order_id)
        return SupplierOrder.of(row) if row else None

    @strawberry.field(description="The store order; merchants only.")
    async def order(self, info: Info) -> Order | None:
        require_merchant_data(info)
        row = await context_of(info).loaders.order.load(self.model.order_id)
        return Order.of(row) if row else None

    @classmethod
    def of(cls, model: models.CancellationRequest) -> CancellationRequest:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("CancellationRequest", model.id)),
            status=model.status,
            reason=model.reason,
            respond_by=model.respond_by,
            decided_at=model.decided_at,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )


NODE_TYPES: dict[str, Any] = {
    "Order": Order,
    "SupplierOrder": SupplierOrder,
    "Supplier": Supplier,
    "Shop": Shop,
    "OrderLine": OrderLine,
    "Package": Package,
    "OrderEvent": OrderEvent,
    "CancellationRequest": CancellationRequest,
}
