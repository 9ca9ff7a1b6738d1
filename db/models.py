"""SQLAlchemy models. Every table carries ``shop_id`` so that data can be scoped and distributed by shop."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import Amount, UTCDateTime, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
PK = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native PostgreSQL enum) so that adding a value needs no type migration.
    return Enum(cls, native_enum=False, length=40, validate_strings=True)


class TokenKind(enum.StrEnum):
    MERCHANT = "MERCHANT"
    SUPPLIER = "SUPPLIER"
    ADMIN = "ADMIN"


class FinancialStatus(enum.StrEnum):
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"


class OrderStatus(enum.StrEnum):
    OPEN = "OPEN"
    CANCELLED = "CANCELLED"
    CLOSED = "CLOSED"


class SupplierOrderStatus(enum.StrEnum):
    """AliExpress order statuses, in the order the trade normally moves through them."""

    PLACE_ORDER_SUCCESS = "PLACE_ORDER_SUCCESS"
    PAYMENT_PROCESSING = "PAYMENT_PROCESSING"
    RISK_CONTROL = "RISK_CONTROL"
    WAIT_SELLER_EXAMINE_MONEY = "WAIT_SELLER_EXAMINE_MONEY"
    WAIT_SELLER_SEND_GOODS = "WAIT_SELLER_SEND_GOODS"
    SELLER_PART_SEND_GOODS = "SELLER_PART_SEND_GOODS"
    WAIT_BUYER_ACCEPT_GOODS = "WAIT_BUYER_ACCEPT_GOODS"
    FUND_PROCESSING = "FUND_PROCESSING"
    IN_CANCEL = "IN_CANCEL"
    IN_ISSUE = "IN_ISSUE"
    IN_FROZEN = "IN_FROZEN"
    FINISH = "FINISH"


class ActorKind(enum.StrEnum):
    MERCHANT = "MERCHANT"
    SUPPLIER = "SUPPLIER"
    ADMIN = "ADMIN"
    SYSTEM = "SYSTEM"


class Shop(Base):
    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    # A shop is its own tenant; the column keeps the "every table has shop_id" rule without exceptions.
    shop_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str | None] = mapped_column(String(320))
    return_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Supplier(Base):
    __tablename__ = "suppliers"
    __table_args__ = (UniqueConstraint("shop_id", "aliexpress_store_id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    aliexpress_store_id: Mapped[str] = mapped_column(String(40))
    store_url: Mapped[str | None] = mapped_column(String(500))
    accepts_returns: Mapped[bool] = mapped_column(Boolean, default=False)
    return_window_days: Mapped[int] = mapped_column(Integer, default=0)
    # Shared secret for inbound Standard Webhooks ("whsec_..."); needed in clear to verify signatures.
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessToken(Base):
    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    kind: Mapped[TokenKind] = mapped_column(_enum(TokenKind))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "number"),
        Index("ix_orders_shop_created", "shop_id", "created_at", "id"),
        Index("ix_orders_shop_updated", "shop_id", "updated_at", "id"),
        Index("ix_orders_shop_number_value", "shop_id", "number_value", "id"),
        Index("ix_orders_shop_total", "shop_id", "total", "id"),
        Index("ix_orders_shop_customer", "shop_id", "customer_name", "id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(40))
    # Digits of the number, so that #999 sorts before #1001.
    number_value: Mapped[int] = mapped_column(BigInteger, default=0)
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    customer_email: Mapped[str | None] = mapped_column(String(320), index=True)
    customer_phone: Mapped[str | None] = mapped_column(String(40))
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Amount)
    shipping: Mapped[Decimal] = mapped_column(Amount)
    total: Mapped[Decimal] = mapped_column(Amount)
    financial_status: Mapped[FinancialStatus] = mapped_column(
        _enum(FinancialStatus), default=FinancialStatus.PAID
    )
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.OPEN)
    # Comma-separated; searched with a delimiter-anchored LIKE that works the same on both databases.
    tags: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", lazy="raise", order_by="OrderLine.position", cascade="all, delete-orphan"
    )
    supplier_orders: Mapped[list[SupplierOrder]] = relationship(
        back_populates="order", lazy="raise", order_by="SupplierOrder.id", cascade="all, delete-orphan"
    )

    @property
    def tag_list(self) -> list[str]:
        return [tag for tag in self.tags.split(",") if tag]


class SupplierOrder(Base):
    __tablename__ = "supplier_orders"
    __table_args__ = (UniqueConstraint("shop_id", "aliexpress_order_id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    aliexpress_order_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[SupplierOrderStatus] = mapped_column(_enum(SupplierOrderStatus), index=True)
    end_reason: Mapped[str | None] = mapped_column(String(60))
    currency: Mapped[str] = mapped_column(String(3))
    cost: Mapped[Decimal] = mapped_column(Amount)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="supplier_orders", lazy="raise")
    lines: Mapped[list[OrderLine]] = relationship(back_populates="supplier_order", lazy="raise")
    packages: Mapped[list[Package]] = relationship(
        back_populates="supplier_order", lazy="raise", order_by="Package.id", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    supplier_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(255))
    variant_title: Mapped[str | None] = mapped_column(String(255))
    sku: Mapped[str | None] = mapped_column(String(100), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Amount)
    image_url: Mapped[str | None] = mapped_column(String(1000))

    order: Mapped[Order] = relationship(back_populates="lines", lazy="raise")
    supplier_order: Mapped[SupplierOrder | None] = relationship(back_populates="lines", lazy="raise")


class Package(Base):
    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("supplier_order_id", "tracking_number"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    supplier_order_id: Mapped[int] = mapped_column(ForeignKey("supplier_orders.id", ondelete="CASCADE"))
    tracking_number: Mapped[str] = mapped_column(String(100), index=True)
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_status: Mapped[str | None] = mapped_column(String(60))
    # Carrier scan events, newest last: [{"time": iso8601, "status": ..., "location": ..., "description": ...}]
    tracking_events: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    supplier_order: Mapped[SupplierOrder] = relationship(back_populates="packages", lazy="raise")


class OrderEvent(Base):
    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    supplier_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="SET NULL")
    )
    type: Mapped[str] = mapped_column(String(60))
    actor_kind: Mapped[ActorKind] = mapped_column(_enum(ActorKind))
    actor_name: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CancellationReason(enum.StrEnum):
    WRONG_PRODUCT_ORDERED = "WRONG_PRODUCT_ORDERED"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    CUSTOMER_CANCELLED = "CUSTOMER_CANCELLED"
    CHANGE_SHIPPING_ADDRESS = "CHANGE_SHIPPING_ADDRESS"
    SUPPLIER_OUT_OF_STOCK = "SUPPLIER_OUT_OF_STOCK"
    CANNOT_CONTACT_SUPPLIER = "CANNOT_CONTACT_SUPPLIER"
    SUPPLIER_REFUSES_TO_SHIP = "SUPPLIER_REFUSES_TO_SHIP"
    OTHER = "OTHER"


class CancellationStatus(enum.StrEnum):
    PENDING = "PENDING"
    INFO_REQUESTED = "INFO_REQUESTED"
    APPROVED = "APPROVED"
    AUTO_APPROVED = "AUTO_APPROVED"
    REJECTED = "REJECTED"
    WITHDRAWN = "WITHDRAWN"
    CLOSED = "CLOSED"


class MessageAuthor(enum.StrEnum):
    MERCHANT = "MERCHANT"
    SUPPLIER = "SUPPLIER"
    SYSTEM = "SYSTEM"


class CancellationRequest(Base):
    __tablename__ = "cancellation_requests"
    __table_args__ = (Index("ix_cancellation_requests_shop_status", "shop_id", "status", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    supplier_order_id: Mapped[int] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[CancellationStatus] = mapped_column(_enum(CancellationStatus))
    reason: Mapped[CancellationReason] = mapped_column(_enum(CancellationReason))
    # The supplier order's own id while the request is open, NULL once it is not: the unique index makes a
    # second open request on one supplier order impossible even when two requests race.
    open_key: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # The supplier order status before IN_CANCEL, restored when the request is rejected or withdrawn.
    previous_status: Mapped[SupplierOrderStatus] = mapped_column(_enum(SupplierOrderStatus))
    requested_by: Mapped[str] = mapped_column(String(200))
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    messages: Mapped[list[CancellationMessage]] = relationship(
        back_populates="request",
        lazy="raise",
        order_by="CancellationMessage.id",
        cascade="all, delete-orphan",
    )


class CancellationMessage(Base):
    __tablename__ = "cancellation_messages"
    __table_args__ = (Index("ix_cancellation_messages_request", "request_id", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("cancellation_requests.id", ondelete="CASCADE"))
    author: Mapped[MessageAuthor] = mapped_column(_enum(MessageAuthor))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[CancellationRequest] = relationship(back_populates="messages", lazy="raise")


class SupplierRefund(Base):
    """Money the supplier gave back for a supplier order (a cancellation, a dispute), in its currency."""

    __tablename__ = "supplier_refunds"
    # One refund per source object: a decision replayed or raced cannot refund twice.
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    supplier_order_id: Mapped[int] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundWebhook(Base):
    """A supplier webhook already handled, by its ``webhook-id``, with the answer given the first time."""

    __tablename__ = "inbound_webhooks"
    __table_args__ = (UniqueConstraint("supplier_id", "webhook_id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
