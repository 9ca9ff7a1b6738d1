"""GraphQL object types for shops, suppliers, orders and supplier orders."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from db import models
from domain import exports as export_cases
from domain import saved_searches as saved_search_cases
from domain.access import visible
from domain.actors import Scope
from domain.errors import ErrorCode
from domain.money import CURRENCY_EXPONENTS, quantize
from domain.supplier_orders import (
    can_open_dispute,
    can_request_cancellation,
    order_margin,
    supplier_cost,
)
from schema.context import context_of, require_merchant_data
from schema.errors import UserError
from schema.ids import to_global_id
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
        return Money.of(order_margin(self.model.total, await self._supplier_cost(info)), self.model.currency)

    async def _supplier_cost(self, info: Info) -> Decimal:
        rows = await context_of(info).loaders.supplier_orders_by_order.load(self.model.id)
        return supplier_cost((row.cost, row.end_reason) for row in rows)

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
        row = await context_of(info).loaders.order.load(self.model.order_id)
        return Order.of(row) if row else None

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
    "OrderNote": OrderNote,
    "SavedSearch": SavedSearch,
    "BulkAction": BulkAction,
    "BulkActionResult": BulkActionResult,
}
