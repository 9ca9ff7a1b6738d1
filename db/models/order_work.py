"""A merchant's daily work on orders: saved order views, bulk actions over matching orders, notes on orders."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import PK, Base, enum_column
from db.models.exports import ExportFormat
from db.models.orders import Order
from db.types import UTCDateTime, utcnow


class OrderSortKey(enum.StrEnum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    NUMBER = "NUMBER"
    TOTAL_PRICE = "TOTAL_PRICE"
    CUSTOMER_NAME = "CUSTOMER_NAME"


class SavedSearch(Base):
    """A named order view of a shop: a search query and a sort, shared by all its merchant tokens."""

    __tablename__ = "saved_searches"
    __table_args__ = (UniqueConstraint("shop_id", "name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text, default="")
    sort_key: Mapped[OrderSortKey] = mapped_column(enum_column(OrderSortKey), default=OrderSortKey.CREATED_AT)
    reverse: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BulkActionKind(enum.StrEnum):
    ADD_TAGS = "ADD_TAGS"
    REMOVE_TAGS = "REMOVE_TAGS"
    CANCEL_UNSHIPPED = "CANCEL_UNSHIPPED"
    EXPORT = "EXPORT"


class BulkActionStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class BulkAction(Base):
    """One action applied to every order matching a query (and/or a list of ids) by one background job."""

    __tablename__ = "bulk_actions"
    __table_args__ = (Index("ix_bulk_actions_shop", "shop_id", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    action: Mapped[BulkActionKind] = mapped_column(enum_column(BulkActionKind))
    status: Mapped[BulkActionStatus] = mapped_column(enum_column(BulkActionStatus))
    query: Mapped[str | None] = mapped_column(Text)
    order_ids: Mapped[list[int] | None] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    format: Mapped[ExportFormat | None] = mapped_column(enum_column(ExportFormat))
    email: Mapped[str | None] = mapped_column(String(320))
    # The requesting token's name and scopes: the job acts as that merchant, so the timeline names them.
    requested_by: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    total: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    export_id: Mapped[int | None] = mapped_column(ForeignKey("exports.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BulkActionResult(Base):
    """What a bulk action did to one order; the unique pair makes each order done at most once."""

    __tablename__ = "bulk_action_results"
    __table_args__ = (
        UniqueConstraint("bulk_action_id", "order_id"),
        Index("ix_bulk_action_results_outcome", "bulk_action_id", "ok", "id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey(Order.id, ondelete="CASCADE"), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    # [{"field": [...], "message": ..., "code": ...}] when not ok.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NoteVisibility(enum.StrEnum):
    STAFF = "STAFF"
    SUPPLIER = "SUPPLIER"


class OrderNote(Base):
    """A note on an order; a SUPPLIER note on a supplier order is shown to that supplier, a STAFF one never."""

    __tablename__ = "order_notes"
    __table_args__ = (Index("ix_order_notes_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey(Order.id, ondelete="CASCADE"))
    supplier_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="CASCADE"), index=True
    )
    visibility: Mapped[NoteVisibility] = mapped_column(enum_column(NoteVisibility))
    body: Mapped[str] = mapped_column(Text)
    author_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
