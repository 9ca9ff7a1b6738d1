"""Store orders, the supplier orders behind them, their lines, packages, timeline and supplier refunds."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from db.models.base import PK, Base, enum_column
from db.models.shops import ActorKind
from db.types import Amount, UTCDateTime, utcnow


def search_key(value: str | None) -> str | None:
    """The lower-case copy kept beside SKUs and tracking numbers: search compares typed values with it
    through a plain B-tree index on both databases, and Python's lower() treats every alphabet alike."""
    return None if value is None else value.lower()


def _key_of(source: str) -> Any:
    """A column default that fills the key from ``source`` on every insert, ORM or Core."""

    def default(context: DefaultExecutionContext) -> str | None:
        return search_key(context.get_current_parameters().get(source))

    return default


def email_domain(email: str | None) -> str | None:
    """The lower-case part after the last '@', kept beside the email so that ``email:@gmail.com`` is an
    index lookup rather than a suffix match over every order."""
    if email is None or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].lower()


def _email_domain_default(context: DefaultExecutionContext) -> str | None:
    return email_domain(context.get_current_parameters().get("customer_email"))


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


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "number"),
        Index("ix_orders_shop_created", "shop_id", "created_at", "id"),
        Index("ix_orders_shop_updated", "shop_id", "updated_at", "id"),
        Index("ix_orders_shop_number_value", "shop_id", "number_value", "id"),
        Index("ix_orders_shop_total", "shop_id", "total", "id"),
        Index("ix_orders_shop_customer", "shop_id", "customer_name", "id"),
        Index("ix_orders_shop_status", "shop_id", "status", "created_at", "id"),
        Index("ix_orders_shop_financial_status", "shop_id", "financial_status", "created_at", "id"),
        Index("ix_orders_shop_email_domain", "shop_id", "customer_email_domain"),
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
        enum_column(FinancialStatus), default=FinancialStatus.PAID
    )
    status: Mapped[OrderStatus] = mapped_column(enum_column(OrderStatus), default=OrderStatus.OPEN)
    # Comma-separated; searched with a delimiter-anchored LIKE that works the same on both databases.
    tags: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Derived from customer_email on insert (column default) and on every change (validator below).
    customer_email_domain: Mapped[str | None] = mapped_column(String(255), default=_email_domain_default)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", lazy="raise", order_by="OrderLine.position", cascade="all, delete-orphan"
    )
    supplier_orders: Mapped[list[SupplierOrder]] = relationship(
        back_populates="order", lazy="raise", order_by="SupplierOrder.id", cascade="all, delete-orphan"
    )

    @validates("customer_email")
    def _keep_email_domain(self, _key: str, email: str | None) -> str | None:
        self.customer_email_domain = email_domain(email)
        return email

    @property
    def tag_list(self) -> list[str]:
        return [tag for tag in self.tags.split(",") if tag]


class SupplierOrder(Base):
    __tablename__ = "supplier_orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "aliexpress_order_id"),
        Index("ix_supplier_orders_shop_status_order", "shop_id", "status", "order_id"),
        Index("ix_supplier_orders_shop_supplier_order", "shop_id", "supplier_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    aliexpress_order_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[SupplierOrderStatus] = mapped_column(enum_column(SupplierOrderStatus), index=True)
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
    __table_args__ = (
        Index(
            "ix_order_lines_shop_sku_key",
            "shop_id",
            "sku_key",
            "order_id",
            postgresql_ops={"sku_key": "text_pattern_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    supplier_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(255))
    variant_title: Mapped[str | None] = mapped_column(String(255))
    sku: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Amount)
    image_url: Mapped[str | None] = mapped_column(String(1000))
    sku_key: Mapped[str | None] = mapped_column(String(100), default=_key_of("sku"))

    order: Mapped[Order] = relationship(back_populates="lines", lazy="raise")
    supplier_order: Mapped[SupplierOrder | None] = relationship(back_populates="lines", lazy="raise")


class Package(Base):
    __tablename__ = "packages"
    __table_args__ = (
        UniqueConstraint("supplier_order_id", "tracking_number"),
        Index(
            "ix_packages_shop_tracking_key",
            "shop_id",
            "tracking_key",
            "supplier_order_id",
            postgresql_ops={"tracking_key": "text_pattern_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    supplier_order_id: Mapped[int] = mapped_column(ForeignKey("supplier_orders.id", ondelete="CASCADE"))
    tracking_number: Mapped[str] = mapped_column(String(100))
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_status: Mapped[str | None] = mapped_column(String(60))
    # Carrier scan events, newest last: [{"time": iso8601, "status": ..., "location": ..., "description": ...}]
    tracking_events: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tracking_key: Mapped[str] = mapped_column(String(100), default=_key_of("tracking_number"))

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
    actor_kind: Mapped[ActorKind] = mapped_column(enum_column(ActorKind))
    actor_name: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
