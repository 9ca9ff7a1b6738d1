"""Customer returns to the merchant's own address, their receipts, and the returned stock they feed."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import PK, Base, enum_column
from db.types import UTCDateTime, utcnow


class ReturnStatus(enum.StrEnum):
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    RECEIVED = "RECEIVED"
    CLOSED = "CLOSED"
    CANCELED = "CANCELED"


class ReturnReason(enum.StrEnum):
    SIZE_TOO_SMALL = "SIZE_TOO_SMALL"
    SIZE_TOO_LARGE = "SIZE_TOO_LARGE"
    UNWANTED = "UNWANTED"
    NOT_AS_DESCRIBED = "NOT_AS_DESCRIBED"
    WRONG_ITEM = "WRONG_ITEM"
    DEFECTIVE = "DEFECTIVE"
    DAMAGED_IN_TRANSIT = "DAMAGED_IN_TRANSIT"
    STYLE = "STYLE"
    OTHER = "OTHER"


class ReturnDeclineReason(enum.StrEnum):
    FINAL_SALE = "FINAL_SALE"
    RETURN_PERIOD_ENDED = "RETURN_PERIOD_ENDED"
    OTHER = "OTHER"


class ReturnDisposition(enum.StrEnum):
    RESTOCK = "RESTOCK"
    RESELL = "RESELL"
    DISCARD = "DISCARD"


class StockCondition(enum.StrEnum):
    """What a returned unit can be sold as: NEW (restocked unopened), USED (resold as open box)."""

    NEW = "NEW"
    USED = "USED"


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (Index("ix_returns_shop_status", "shop_id", "status", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    status: Mapped[ReturnStatus] = mapped_column(enum_column(ReturnStatus))
    note: Mapped[str | None] = mapped_column(Text)
    # Requested after the return window of the policy in force had ended: the merchant may decline it.
    outside_return_window: Mapped[bool] = mapped_column(Boolean, default=False)
    # The return policy version in force when the customer asked, and the address the parcel goes to
    # (copied at approval, so a later change of address does not move parcels already on their way).
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("shop_policies.id", ondelete="SET NULL"))
    return_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decline_reason: Mapped[ReturnDeclineReason | None] = mapped_column(enum_column(ReturnDeclineReason))
    decline_note: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReturnLine(Base):
    __tablename__ = "return_lines"
    __table_args__ = (
        Index("ix_return_lines_return", "return_id", "id"),
        CheckConstraint("received_quantity >= 0 AND received_quantity <= quantity", name="received"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    received_quantity: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[ReturnReason] = mapped_column(enum_column(ReturnReason))
    note: Mapped[str | None] = mapped_column(Text)


class ReturnReceipt(Base):
    """Units of one return line that arrived at the merchant's address, and what was done with them."""

    __tablename__ = "return_receipts"
    __table_args__ = (Index("ix_return_receipts_return", "return_id", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"))
    return_line_id: Mapped[int] = mapped_column(ForeignKey("return_lines.id", ondelete="CASCADE"))
    quantity: Mapped[int] = mapped_column(Integer)
    disposition: Mapped[ReturnDisposition] = mapped_column(enum_column(ReturnDisposition))
    received_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReturnedStock(Base):
    """Units received back that can be sold again, by SKU and condition."""

    __tablename__ = "returned_stock"
    __table_args__ = (
        UniqueConstraint("shop_id", "sku", "condition"),
        # Taking units out is one conditional UPDATE; the database refuses to go below zero even if raced.
        CheckConstraint("quantity >= 0", name="not_negative"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(100))
    condition: Mapped[StockCondition] = mapped_column(enum_column(StockCondition))
    title: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
