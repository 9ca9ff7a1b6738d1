"""GraphQL object types for shops, suppliers, orders and supplier orders."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from db import models
from db.types import utcnow
from domain import exports as export_cases
from domain import saved_searches as saved_search_cases
from domain.access import visible
from domain.actors import Scope
from domain.errors import ErrorCode
from domain.evidence import audience_of, evidence_path
from domain.figures import OrderFigures
from domain.links import signed_url
from domain.money import CURRENCY_EXPONENTS, quantize
from domain.supplier_orders import can_open_dispute, can_request_cancellation
from schema.context import context_of, require_merchant_data
from schema.errors import UserError
from schema.ids import to_global_id
from schema.loaders import loaded_now_or_later
from schema.pagination import Connection, PageRequest, int_sort, keyset_page

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
ExportFormat = strawberry.enum(models.ExportFormat, name="ExportFormat")
ExportLayout = strawberry.enum(
    models.ExportLayout,
    name="ExportLayout",
    description="LINE_ITEM: one row per order line with the order's fields repeated; ORDER: one row per order.",
)
ExportStatus = strawberry.enum(models.ExportStatus, name="ExportStatus")
DisputeStatus = strawberry.enum(models.DisputeStatus, name="DisputeStatus")
DisputeReason = strawberry.enum(models.DisputeReason, name="DisputeReason")
DisputeKind = strawberry.enum(models.DisputeKind, name="DisputeKind")
DisputeResponseAction = strawberry.enum(models.DisputeResponseAction, name="DisputeResponseAction")
DisputeOutcome = strawberry.enum(models.DisputeOutcome, name="DisputeOutcome")
DisputeResolutionAction = strawberry.enum(models.DisputeResolutionAction, name="DisputeResolutionAction")
DisputeMessageAuthor = strawberry.enum(models.DisputeMessageAuthor, name="DisputeMessageAuthor")
NoteVisibility = strawberry.enum(
    models.NoteVisibility,
    name="NoteVisibility",
    description="STAFF: the merchant's staff only; SUPPLIER: also the supplier of the note's supplier order.",
)
BulkActionType = strawberry.enum(models.BulkActionKind, name="BulkActionType")
BulkActionStatus = strawberry.enum(models.BulkActionStatus, name="BulkActionStatus")
OrderSortKeys = strawberry.enum(models.OrderSortKey, name="OrderSortKeys")


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


def _visible_supplier(row: models.Supplier | None) -> Supplier:
    # A supplier order's supplier is in the same shop, so whoever sees the supplier order sees it.
    assert row is not None
    return Supplier.of(row)


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

    @strawberry.field(description="The refund and return policies in force, one of each kind at most.")
    async def policies(self, info: Info) -> list[Annotated[ShopPolicy, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.policies_by_shop.load(self.model.id)
        return [ShopPolicy.of(row) for row in rows if row.superseded_at is None]

    @strawberry.field(description="Superseded policy versions, newest first.")
    async def policy_history(
        self,
        info: Info,
        kind: PolicyKind | None = None,  # type: ignore[valid-type]
    ) -> list[Annotated[ShopPolicy, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.policies_by_shop.load(self.model.id)
        old = [row for row in rows if row.superseded_at is not None and (kind is None or row.kind == kind)]
        return [ShopPolicy.of(row) for row in sorted(old, key=lambda row: row.effective_at, reverse=True)]


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
    def unit_price(self, info: Info) -> Money | None:
        require_merchant_data(info)
        if self.currency is not None:
            return Money.of(self.model.unit_price, self.currency)
        unit_price = self.model.unit_price
        return loaded_now_or_later(
            context_of(info).loaders.order,
            self.model.order_id,
            lambda order: Money.of(unit_price, order.currency) if order else None,
        )

    @strawberry.field
    async def supplier_order(
        self, info: Info
    ) -> Annotated[SupplierOrder, strawberry.lazy("schema.types")] | None:
        return await _supplier_order(info, self.model.supplier_order_id)

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
    def supplier(self, info: Info) -> Supplier:
        return loaded_now_or_later(
            context_of(info).loaders.supplier, self.model.supplier_id, _visible_supplier
        )

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        rows = await context_of(info).loaders.lines_by_supplier_order.load(self.model.id)
        return [OrderLine.of(row, self.model.currency) for row in rows]

    @strawberry.field
    def packages(self, info: Info) -> list[Package]:
        return loaded_now_or_later(
            context_of(info).loaders.packages_by_supplier_order,
            self.model.id,
            lambda rows: [Package.of(row) for row in rows],
        )

    @strawberry.field(description="The store order it fulfils; merchants only.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.types")] | None:
        require_merchant_data(info)
        return await _order(info, self.model.order_id)

    @strawberry.field(description="Cancellation requests on this supplier order, oldest first.")
    def cancellation_requests(
        self, info: Info
    ) -> list[Annotated[CancellationRequest, strawberry.lazy("schema.types")]]:
        return loaded_now_or_later(
            context_of(info).loaders.cancellation_requests_by_supplier_order,
            self.model.id,
            lambda rows: [CancellationRequest.of(row) for row in rows],
        )

    @strawberry.field(description="True when a cancellation may be asked for now.")
    def can_request_cancellation(self) -> bool:
        return can_request_cancellation(self.model)

    @strawberry.field(description="True when a dispute may be opened now.")
    async def can_open_dispute(self, info: Info) -> bool:
        context = context_of(info)
        window = timedelta(days=context.settings.dispute_window_days)
        if not can_open_dispute(self.model, window=window):
            return False
        # Nothing left to ask for once the supplier has refunded everything paid.
        return self.model.cost > await context.loaders.supplier_refunded.load(self.model.id)

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

    @strawberry.field(description="Disputes on this supplier order, oldest first.")
    async def disputes(self, info: Info) -> list[Annotated[Dispute, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.disputes_by_supplier_order.load(self.model.id)
        return [Dispute.of(row) for row in rows]

    @strawberry.field(
        description="Notes on this supplier order, oldest first; its supplier sees only SUPPLIER notes."
    )
    async def notes(self, info: Info) -> list[Annotated[OrderNote, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.notes_by_supplier_order.load(self.model.id)
        return [OrderNote.of(row) for row in rows]


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
        return await _order(info, self.order_pk)

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

    @strawberry.field(
        description="What can still be refunded to the customer: the total less refunds (0 when voided)."
    )
    async def refundable_amount(self, info: Info) -> Money:
        return Money.of((await self._figures(info)).refundable, self.model.currency)

    @strawberry.field(
        description="What was paid for the supplier orders (those closed unpaid cost nothing); supplier "
        "refunds are not deducted here."
    )
    async def supplier_cost(self, info: Info) -> Money:
        require_merchant_data(info)
        return Money.of((await self._figures(info)).supplier_cost, self.model.currency)

    @strawberry.field(
        description="Total less refunds, less what is still owed to the customer (refundDue), less supplier "
        "cost net of supplier refunds."
    )
    async def margin(self, info: Info) -> Money:
        require_merchant_data(info)
        return Money.of((await self._figures(info)).margin, self.model.currency)

    async def _figures(self, info: Info) -> OrderFigures:
        figures = await context_of(info).loaders.order_figures.load(self.model.id)
        assert figures is not None
        return figures

    @strawberry.field
    def lines(self, info: Info) -> list[OrderLine]:
        currency = self.model.currency
        return loaded_now_or_later(
            context_of(info).loaders.lines_by_order,
            self.model.id,
            lambda rows: [OrderLine.of(row, currency) for row in rows],
        )

    @strawberry.field
    def supplier_orders(self, info: Info) -> list[SupplierOrder]:
        return loaded_now_or_later(
            context_of(info).loaders.supplier_orders_by_order,
            self.model.id,
            lambda rows: [SupplierOrder.of(row) for row in rows],
        )

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

    @strawberry.field(description="Returns of this order's items, oldest first.")
    async def returns(self, info: Info) -> list[Annotated[Return, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.returns_by_order.load(self.model.id)
        return [Return.of(row) for row in rows]

    @strawberry.field(description="Refunds given to the customer, oldest first.")
    async def refunds(self, info: Info) -> list[Annotated[Refund, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.refunds_by_order.load(self.model.id)
        return [Refund.of(row) for row in rows]

    @strawberry.field(
        description="What is still owed to the customer of an order cancelled because all its supplier "
        "orders were cancelled; 0 once refunded, and for every other order."
    )
    async def refund_due(self, info: Info) -> Money:
        return Money.of((await self._figures(info)).refund_due, self.model.currency)

    @strawberry.field(description="What the customer was refunded in all.")
    async def total_refunded(self, info: Info) -> Money:
        return Money.of((await self._figures(info)).refunded, self.model.currency)

    @strawberry.field(
        description="What suppliers gave back for this order's supplier orders (cancellations, disputes)."
    )
    async def supplier_refunds(self, info: Info) -> Money:
        return Money.of((await self._figures(info)).supplier_refunds, self.model.currency)

    @strawberry.field(description="Disputes on this order's supplier orders, oldest first.")
    async def disputes(self, info: Info) -> list[Annotated[Dispute, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.disputes_by_order.load(self.model.id)
        return [Dispute.of(row) for row in rows]

    @strawberry.field(description="Staff and supplier notes on the order, oldest first.")
    async def notes(self, info: Info) -> list[Annotated[OrderNote, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.notes_by_order.load(self.model.id)
        return [OrderNote.of(row) for row in rows]


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
        return await _supplier_order(info, self.model.supplier_order_id)

    @strawberry.field(description="The store order; merchants only.")
    async def order(self, info: Info) -> Order | None:
        require_merchant_data(info)
        return await _order(info, self.model.order_id)

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


@strawberry.type(description="How far an export got, in rows of its file.")
class ExportProgress:
    done: int
    total: int | None = strawberry.field(description="Null until the export has counted its rows.")


@strawberry.type(description="A CSV or Excel file of orders, built in the background and sent by email.")
class Export(Node):
    model: strawberry.Private[models.Export]
    format: ExportFormat  # type: ignore[valid-type]
    layout: ExportLayout  # type: ignore[valid-type]
    status: ExportStatus  # type: ignore[valid-type]
    row_count: int | None
    file_size: int | None = strawberry.field(description="Bytes.")
    error: str | None = strawberry.field(description="Why the export failed, or why an attempt is retried.")
    query: str | None
    email: str | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = strawberry.field(
        description="When the download link lapses and the file is deleted."
    )

    @strawberry.field
    def progress(self) -> ExportProgress:
        return ExportProgress(done=self.model.rows_done, total=self.model.rows_total)

    @strawberry.field(description="Signed link to the file while the export has one; no token needed.")
    def download_url(self, info: Info) -> str | None:
        context = context_of(info)
        if not context.actor.is_admin and not context.actor.has_scope(Scope.WRITE_EXPORTS):
            return None
        return export_cases.download_url(context.settings, self.model)

    @classmethod
    def of(cls, model: models.Export) -> Export:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Export", model.id)),
            format=model.format,
            layout=model.layout,
            status=model.status,
            row_count=model.row_count,
            file_size=model.file_size,
            error=model.error,
            query=model.query,
            email=model.email,
            created_at=model.created_at,
            finished_at=model.finished_at,
            expires_at=model.expires_at,
        )


ReturnStatus = strawberry.enum(models.ReturnStatus, name="ReturnStatus")
ReturnReason = strawberry.enum(models.ReturnReason, name="ReturnReason")
ReturnDeclineReason = strawberry.enum(models.ReturnDeclineReason, name="ReturnDeclineReason")
ReturnDisposition = strawberry.enum(
    models.ReturnDisposition,
    name="ReturnDisposition",
    description="RESTOCK: back to stock as new; RESELL: sold again as used or open box; DISCARD: thrown away.",
)
ReturnedStockCondition = strawberry.enum(models.StockCondition, name="ReturnedStockCondition")
PolicyKind = strawberry.enum(models.PolicyKind, name="PolicyKind")
ReturnShippingPayer = strawberry.enum(models.ReturnShippingPayer, name="ReturnShippingPayer")


@strawberry.type(description="One version of a shop's refund or return policy.")
class ShopPolicy(Node):
    model: strawberry.Private[models.ShopPolicy]
    kind: PolicyKind  # type: ignore[valid-type]
    version: int
    body: str
    effective_at: datetime = strawberry.field(description="When this version took effect.")
    superseded_at: datetime | None = strawberry.field(description="When a newer version replaced it.")
    return_window_days: int | None
    restocking_fee_percent: Decimal | None
    return_shipping_paid_by: ReturnShippingPayer | None  # type: ignore[valid-type]
    created_by: str

    @strawberry.field
    def return_address(self) -> MailingAddress | None:
        return MailingAddress.of(self.model.return_address)

    @classmethod
    def of(cls, model: models.ShopPolicy) -> ShopPolicy:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("ShopPolicy", model.id)),
            kind=model.kind,
            version=model.version,
            body=model.body,
            effective_at=model.effective_at,
            superseded_at=model.superseded_at,
            return_window_days=model.return_window_days,
            restocking_fee_percent=model.restocking_fee_percent,
            return_shipping_paid_by=model.return_shipping_paid_by,
            created_by=model.created_by,
        )


@strawberry.type(description="Units of one order line in a return.")
class ReturnLine(Node):
    model: strawberry.Private[models.ReturnLine]
    quantity: int
    received_quantity: int
    reason: ReturnReason  # type: ignore[valid-type]
    note: str | None

    @strawberry.field
    async def order_line(self, info: Info) -> OrderLine | None:
        row = await context_of(info).loaders.order_line.load(self.model.order_line_id)
        return OrderLine.of(row) if row else None

    @classmethod
    def of(cls, model: models.ReturnLine) -> ReturnLine:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("ReturnLine", model.id)),
            quantity=model.quantity,
            received_quantity=model.received_quantity,
            reason=model.reason,
            note=model.note,
        )


@strawberry.type(description="Units of a return line that arrived, and what was done with them.")
class ReturnReceipt:
    return_line_id: strawberry.ID
    quantity: int
    disposition: ReturnDisposition  # type: ignore[valid-type]
    received_by: str
    created_at: datetime

    @classmethod
    def of(cls, model: models.ReturnReceipt) -> ReturnReceipt:
        return cls(
            return_line_id=strawberry.ID(to_global_id("ReturnLine", model.return_line_id)),
            quantity=model.quantity,
            disposition=model.disposition,
            received_by=model.received_by,
            created_at=model.created_at,
        )


@strawberry.type(description="A customer's return of items to the merchant's own address.")
class Return(Node):
    model: strawberry.Private[models.Return]
    status: ReturnStatus  # type: ignore[valid-type]
    note: str | None
    outside_return_window: bool = strawberry.field(
        description="Asked for after the return window of the policy in force had ended."
    )
    decline_reason: ReturnDeclineReason | None  # type: ignore[valid-type]
    decline_note: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    declined_at: datetime | None
    received_at: datetime | None
    closed_at: datetime | None
    canceled_at: datetime | None

    @strawberry.field(description="Where the customer sends the items; set when the return is approved.")
    def return_address(self) -> MailingAddress | None:
        return MailingAddress.of(self.model.return_address)

    @strawberry.field(description="The return policy version in force when the return was asked for.")
    async def policy(self, info: Info) -> ShopPolicy | None:
        if self.model.policy_id is None:
            return None
        row = await context_of(info).loaders.shop_policy.load(self.model.policy_id)
        return ShopPolicy.of(row) if row else None

    @strawberry.field
    async def order(self, info: Info) -> Order | None:
        return await _order(info, self.model.order_id)

    @strawberry.field
    async def lines(self, info: Info) -> list[ReturnLine]:
        rows = await context_of(info).loaders.return_lines_by_return.load(self.model.id)
        return [ReturnLine.of(row) for row in rows]

    @strawberry.field(description="Receipts of items, oldest first.")
    async def receipts(self, info: Info) -> list[ReturnReceipt]:
        rows = await context_of(info).loaders.return_receipts_by_return.load(self.model.id)
        return [ReturnReceipt.of(row) for row in rows]

    @strawberry.field(description="Refunds that reference this return.")
    async def refunds(self, info: Info) -> list[Annotated[Refund, strawberry.lazy("schema.types")]]:
        rows = await context_of(info).loaders.refunds_by_return.load(self.model.id)
        return [Refund.of(row) for row in rows]

    @classmethod
    def of(cls, model: models.Return) -> Return:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Return", model.id)),
            status=model.status,
            note=model.note,
            outside_return_window=model.outside_return_window,
            decline_reason=model.decline_reason,
            decline_note=model.decline_note,
            requested_by=model.requested_by,
            created_at=model.created_at,
            updated_at=model.updated_at,
            approved_at=model.approved_at,
            declined_at=model.declined_at,
            received_at=model.received_at,
            closed_at=model.closed_at,
            canceled_at=model.canceled_at,
        )


@strawberry.type(description="Units of an order line that a refund pays back.")
class RefundLine:
    model: strawberry.Private[models.RefundLine]
    currency: strawberry.Private[str]
    quantity: int

    @strawberry.field(description="Unit price times quantity.")
    def amount(self) -> Money:
        return Money.of(self.model.amount, self.currency)

    @strawberry.field
    async def order_line(self, info: Info) -> OrderLine | None:
        row = await context_of(info).loaders.order_line.load(self.model.order_line_id)
        return OrderLine.of(row, self.currency) if row else None


@strawberry.type(description="Money given back to the customer of a store order.")
class Refund(Node):
    model: strawberry.Private[models.Refund]
    note: str | None
    created_by: str
    created_at: datetime
    dispute_id: strawberry.ID | None = strawberry.field(
        description="The dispute this refund settles, if any."
    )

    @strawberry.field
    def amount(self) -> Money:
        return Money.of(self.model.amount, self.model.currency)

    @strawberry.field
    async def order(self, info: Info) -> Order | None:
        return await _order(info, self.model.order_id)

    @strawberry.field(name="return", description="The return whose items this refund pays back, if any.")
    async def return_(self, info: Info) -> Return | None:
        if self.model.return_id is None:
            return None
        row = await context_of(info).loaders.return_.load(self.model.return_id)
        return Return.of(row) if row else None

    @strawberry.field
    async def lines(self, info: Info) -> list[RefundLine]:
        rows = await context_of(info).loaders.refund_lines_by_refund.load(self.model.id)
        return [RefundLine(model=row, currency=self.model.currency, quantity=row.quantity) for row in rows]

    @strawberry.field(description="The dispute this refund settles, if any (disputeId, resolved).")
    async def dispute(self, info: Info) -> Dispute | None:
        if self.model.dispute_id is None:
            return None
        row = await context_of(info).loaders.dispute.load(self.model.dispute_id)
        return Dispute.of(row) if row else None

    @classmethod
    def of(cls, model: models.Refund) -> Refund:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Refund", model.id)),
            note=model.note,
            created_by=model.created_by,
            created_at=model.created_at,
            dispute_id=strawberry.ID(to_global_id("Dispute", model.dispute_id)) if model.dispute_id else None,
        )


@strawberry.type(description="Returned units of one SKU in one condition, available to sell again.")
class ReturnedStockItem(Node):
    sku: str
    title: str
    condition: ReturnedStockCondition  # type: ignore[valid-type]
    quantity: int
    updated_at: datetime

    @classmethod
    def of(cls, model: models.ReturnedStock) -> ReturnedStockItem:
        return cls(
            id=strawberry.ID(to_global_id("ReturnedStockItem", model.id)),
            sku=model.sku,
            title=model.title,
            condition=model.condition,
            quantity=model.quantity,
            updated_at=model.updated_at,
        )


@strawberry.type(description="A piece of evidence: a link that works for a while, and what the file is.")
class DisputeAttachment:
    url: str = strawberry.field(
        description="For an upload, a signed link that expires (ask again for a fresh one); otherwise the URL "
        "given."
    )
    content_type: str | None = strawberry.field(
        description="Checked from the file's content for uploads; guessed from the name for URLs."
    )
    size: int | None = strawberry.field(description="Bytes of an uploaded file; null for a URL.")

    @classmethod
    def of(cls, info: Info, model: models.DisputeAttachment) -> DisputeAttachment:
        if model.url is not None:
            return cls(url=model.url, content_type=model.content_type, size=None)
        context = context_of(info)
        actor, settings = context.actor, context.settings
        path = evidence_path(model.id, audience_of(actor.kind.value, actor.shop_id, actor.supplier_id))
        expires_at = utcnow() + timedelta(minutes=settings.evidence_link_minutes)
        url = signed_url(settings.public_url, settings.secret_key, path, expires_at)
        return cls(url=url, content_type=model.content_type, size=model.size)


@strawberry.type(description="One message in a dispute's thread, with its evidence.")
class DisputeMessage:
    model: strawberry.Private[models.DisputeMessage]
    author: DisputeMessageAuthor  # type: ignore[valid-type]
    body: str
    created_at: datetime

    @strawberry.field
    async def attachments(self, info: Info) -> list[DisputeAttachment]:
        rows = await context_of(info).loaders.dispute_attachments_by_message.load(self.model.id)
        return [DisputeAttachment.of(info, row) for row in rows]

    @classmethod
    def of(cls, model: models.DisputeMessage) -> DisputeMessage:
        return cls(model=model, author=model.author, body=model.body, created_at=model.created_at)


@strawberry.type(
    description="What the supplier answered: a refund of an amount, a replacement, or a refusal."
)
class DisputeProposal:
    action: DisputeResponseAction  # type: ignore[valid-type]
    amount: Money | None
    created_at: datetime


@strawberry.type(description="How a dispute ended, and who decided it.")
class DisputeResolution:
    outcome: DisputeOutcome  # type: ignore[valid-type]
    action: DisputeResolutionAction  # type: ignore[valid-type]
    amount: Money | None = strawberry.field(description="The supplier refund agreed or ruled, if any.")
    decided_by: ActorKind = strawberry.field(  # type: ignore[valid-type]
        description="MERCHANT (accepted the supplier's answer), ADMIN (a ruling) or SYSTEM (the deadline)."
    )
    created_at: datetime


@strawberry.type(description="The goods the merchant sent back on a RETURN_AND_REFUND dispute.")
class DisputeReturnShipment:
    tracking_number: str
    carrier: str | None
    shipped_at: datetime


@strawberry.type(
    description="A merchant's claim against a supplier after shipment: evidence, the supplier's proposal, "
    "escalation to the platform, and the resolution."
)
class Dispute(Node):
    model: strawberry.Private[models.Dispute]
    status: DisputeStatus  # type: ignore[valid-type]
    reason: DisputeReason  # type: ignore[valid-type]
    kind: DisputeKind  # type: ignore[valid-type]
    respond_by: datetime = strawberry.field(
        description="When the dispute resolves for the merchant if the supplier has not responded."
    )
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    def requested_amount(self) -> Money:
        return Money.of(self.model.requested_amount, self.model.currency)

    @strawberry.field(description="The supplier's answer; null until it responds.")
    def proposal(self) -> DisputeProposal | None:
        model = self.model
        if model.proposal_action is None or model.proposed_at is None:
            return None
        amount = model.proposal_amount
        return DisputeProposal(
            action=model.proposal_action,
            amount=Money.of(amount, model.currency) if amount is not None else None,
            created_at=model.proposed_at,
        )

    @strawberry.field(
        description="How it ended; on a RETURN_AND_REFUND dispute the refund is decided here before the "
        "return ships (status AWAITING_RETURN)."
    )
    def resolution(self) -> DisputeResolution | None:
        model = self.model
        if model.outcome is None or model.resolution_action is None or model.decided_at is None:
            return None
        amount = model.resolution_amount
        return DisputeResolution(
            outcome=model.outcome,
            action=model.resolution_action,
            amount=Money.of(amount, model.currency) if amount is not None else None,
            decided_by=model.decided_by,
            created_at=model.decided_at,
        )

    @strawberry.field(description="The return's tracking, once the merchant shipped it.")
    def return_shipment(self) -> DisputeReturnShipment | None:
        model = self.model
        if model.return_tracking_number is None or model.return_shipped_at is None:
            return None
        return DisputeReturnShipment(
            tracking_number=model.return_tracking_number,
            carrier=model.return_carrier,
            shipped_at=model.return_shipped_at,
        )

    @strawberry.field(description="The thread between merchant, supplier, platform and system, oldest first.")
    async def messages(self, info: Info) -> list[DisputeMessage]:
        rows = await context_of(info).loaders.dispute_messages_by_dispute.load(self.model.id)
        return [DisputeMessage.of(row) for row in rows]

    @strawberry.field
    async def supplier_order(self, info: Info) -> SupplierOrder | None:
        return await _supplier_order(info, self.model.supplier_order_id)

    @strawberry.field(description="The store order; merchants only.")
    async def order(self, info: Info) -> Order | None:
        require_merchant_data(info)
        return await _order(info, self.model.order_id)

    @classmethod
    def of(cls, model: models.Dispute) -> Dispute:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("Dispute", model.id)),
            status=model.status,
            reason=model.reason,
            kind=model.kind,
            respond_by=model.respond_by,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )


@strawberry.type(description="A note on an order, written by a merchant token (its name is the author).")
class OrderNote(Node):
    body: str
    visibility: NoteVisibility  # type: ignore[valid-type]
    author_name: str
    created_at: datetime
    order_id: strawberry.ID
    supplier_order_id: strawberry.ID | None

    @classmethod
    def of(cls, model: models.OrderNote) -> OrderNote:
        return cls(
            id=strawberry.ID(to_global_id("OrderNote", model.id)),
            body=model.body,
            visibility=model.visibility,
            author_name=model.author_name,
            created_at=model.created_at,
            order_id=strawberry.ID(to_global_id("Order", model.order_id)),
            supplier_order_id=(
                strawberry.ID(to_global_id("SupplierOrder", model.supplier_order_id))
                if model.supplier_order_id
                else None
            ),
        )


@strawberry.type(description="A named order view of the shop: a search query and a sort.")
class SavedSearch(Node):
    name: str
    query: str
    sort_key: OrderSortKeys  # type: ignore[valid-type]
    reverse: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    @strawberry.field(
        description="Why the query no longer parses (the search syntax changed since it was saved); "
        "null when it parses."
    )
    def query_error(self) -> str | None:
        return saved_search_cases.query_error(self.query)

    @classmethod
    def of(cls, model: models.SavedSearch) -> SavedSearch:
        return cls(
            id=strawberry.ID(to_global_id("SavedSearch", model.id)),
            name=model.name,
            query=model.query,
            sort_key=model.sort_key,
            reverse=model.reverse,
            created_by=model.created_by,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )


@strawberry.type(description="How many of a bulk action's orders are done.")
class BulkActionProgress:
    done: int
    total: int | None = strawberry.field(description="Null until the job has counted the matching orders.")


@strawberry.type(description="What a bulk action did to one order.")
class BulkActionResult(Node):
    model: strawberry.Private[models.BulkActionResult]
    ok: bool
    created_at: datetime

    @strawberry.field
    async def order(self, info: Info) -> Order | None:
        return await _order(info, self.model.order_id)

    @strawberry.field(
        description="Why the action failed for this order (or for some of its supplier orders)."
    )
    def user_errors(self) -> list[UserError]:
        return [
            UserError(field=error["field"] or None, message=error["message"], code=ErrorCode(error["code"]))
            for error in self.model.errors
        ]

    @classmethod
    def of(cls, model: models.BulkActionResult) -> BulkActionResult:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("BulkActionResult", model.id)),
            ok=model.ok,
            created_at=model.created_at,
        )


@strawberry.type(description="One action applied by a background job to every order matching a query or ids.")
class BulkAction(Node):
    model: strawberry.Private[models.BulkAction]
    action: BulkActionType  # type: ignore[valid-type]
    status: BulkActionStatus  # type: ignore[valid-type]
    query: str | None
    tags: list[str]
    requested_by: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field
    def progress(self) -> BulkActionProgress:
        return BulkActionProgress(done=self.model.done, total=self.model.total)

    @strawberry.field(description="How many orders the action could not be applied to.")
    def failed_count(self) -> int:
        return self.model.failed

    @strawberry.field(description="The export an EXPORT action made, once its orders are all recorded.")
    async def export(self, info: Info) -> Export | None:
        if self.model.export_id is None:
            return None
        row = await context_of(info).loaders.export.load(self.model.export_id)
        return Export.of(row) if row else None

    @strawberry.field(
        description="Each order's outcome in the order handled; `ok` keeps only successes or failures."
    )
    async def results(
        self, info: Info, first: int | None = None, after: str | None = None, ok: bool | None = None
    ) -> Connection[BulkActionResult]:
        context = context_of(info)
        statement = select(models.BulkActionResult).where(
            models.BulkActionResult.bulk_action_id == self.model.id,
            visible(models.BulkActionResult, context.actor),
        )
        if ok is not None:
            statement = statement.where(models.BulkActionResult.ok.is_(ok))
        return await keyset_page(
            context,
            statement,
            int_sort(models.BulkActionResult.id),
            models.BulkActionResult.id,
            PageRequest(first, after, None, None),
            to_node=BulkActionResult.of,
        )

    @classmethod
    def of(cls, model: models.BulkAction) -> BulkAction:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("BulkAction", model.id)),
            action=model.action,
            status=model.status,
            query=model.query,
            tags=list(model.tags),
            requested_by=model.requested_by,
            error=model.error,
            created_at=model.created_at,
            started_at=model.started_at,
            finished_at=model.finished_at,
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
    "Export": Export,
    "Return": Return,
    "ReturnLine": ReturnLine,
    "Refund": Refund,
    "ShopPolicy": ShopPolicy,
    "ReturnedStockItem": ReturnedStockItem,
    "Dispute": Dispute,
    "OrderNote": OrderNote,
    "SavedSearch": SavedSearch,
    "BulkAction": BulkAction,
    "BulkActionResult": BulkActionResult,
}


async def _order(info: Info, order_id: int | None) -> Order | None:
    """The store order with this id, read through the request's loader; None for no id."""
    row = await context_of(info).loaders.order.load(order_id) if order_id is not None else None
    return Order.of(row) if row else None


async def _supplier_order(info: Info, supplier_order_id: int | None) -> SupplierOrder | None:
    """The supplier order with this id, read through the request's loader; None for no id."""
    if supplier_order_id is None:
        return None
    row = await context_of(info).loaders.supplier_order.load(supplier_order_id)
    return SupplierOrder.of(row) if row else None
