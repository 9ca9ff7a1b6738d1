"""Cancellation requests a merchant sends a supplier, with their message threads."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import PK, Base, enum_column
from db.models.orders import SupplierOrderStatus
from db.types import UTCDateTime, utcnow


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
    status: Mapped[CancellationStatus] = mapped_column(enum_column(CancellationStatus))
    reason: Mapped[CancellationReason] = mapped_column(enum_column(CancellationReason))
    # The supplier order's own id while the request is open, NULL once it is not: the unique index makes a
    # second open request on one supplier order impossible even when two requests race.
    open_key: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # The supplier order status before IN_CANCEL, restored when the request is rejected or withdrawn.
    previous_status: Mapped[SupplierOrderStatus] = mapped_column(enum_column(SupplierOrderStatus))
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
    author: Mapped[MessageAuthor] = mapped_column(enum_column(MessageAuthor))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[CancellationRequest] = relationship(back_populates="messages", lazy="raise")
