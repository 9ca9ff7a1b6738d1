"""Disputes a merchant opens with a supplier after shipment, with their messages and evidence."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import PK, Base, enum_column
from db.models.orders import SupplierOrderStatus
from db.models.shops import ActorKind
from db.types import Amount, UTCDateTime, utcnow


class DisputeReason(enum.StrEnum):
    NOT_RECEIVED = "NOT_RECEIVED"
    NOT_AS_DESCRIBED = "NOT_AS_DESCRIBED"
    QUALITY_ISSUE = "QUALITY_ISSUE"
    DAMAGED = "DAMAGED"
    WRONG_ITEM = "WRONG_ITEM"
    MISSING_PARTS = "MISSING_PARTS"
    PAYMENT_PROBLEM = "PAYMENT_PROBLEM"
    OTHER = "OTHER"


class DisputeKind(enum.StrEnum):
    REFUND_ONLY = "REFUND_ONLY"
    RETURN_AND_REFUND = "RETURN_AND_REFUND"


class DisputeStatus(enum.StrEnum):
    AWAITING_SUPPLIER = "AWAITING_SUPPLIER"
    SUPPLIER_RESPONDED = "SUPPLIER_RESPONDED"
    ESCALATED = "ESCALATED"
    # A refund was agreed on a RETURN_AND_REFUND dispute; it is recorded once the merchant ships the return.
    AWAITING_RETURN = "AWAITING_RETURN"
    RESOLVED = "RESOLVED"
    CANCELLED = "CANCELLED"


class DisputeResponseAction(enum.StrEnum):
    PROPOSE_REFUND = "PROPOSE_REFUND"
    PROPOSE_RESEND = "PROPOSE_RESEND"
    REFUSE = "REFUSE"


class DisputeOutcome(enum.StrEnum):
    """Who the resolution favours: AGREED when the merchant accepted the supplier's proposal."""

    AGREED = "AGREED"
    MERCHANT = "MERCHANT"
    SUPPLIER = "SUPPLIER"


class DisputeResolutionAction(enum.StrEnum):
    REFUND = "REFUND"
    RESEND = "RESEND"
    NONE = "NONE"


class DisputeMessageAuthor(enum.StrEnum):
    MERCHANT = "MERCHANT"
    SUPPLIER = "SUPPLIER"
    PLATFORM = "PLATFORM"
    SYSTEM = "SYSTEM"


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (Index("ix_disputes_shop_status", "shop_id", "status", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    supplier_order_id: Mapped[int] = mapped_column(
        ForeignKey("supplier_orders.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[DisputeStatus] = mapped_column(enum_column(DisputeStatus))
    reason: Mapped[DisputeReason] = mapped_column(enum_column(DisputeReason))
    kind: Mapped[DisputeKind] = mapped_column(enum_column(DisputeKind))
    currency: Mapped[str] = mapped_column(String(3))
    requested_amount: Mapped[Decimal] = mapped_column(Amount)
    # The supplier order's own id while the dispute is open, NULL once it is not: the unique index makes a
    # second open dispute on one supplier order impossible even when two openings race.
    open_key: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # The supplier order status before IN_ISSUE, restored when the dispute ends.
    previous_status: Mapped[SupplierOrderStatus] = mapped_column(enum_column(SupplierOrderStatus))
    opened_by: Mapped[str] = mapped_column(String(200))
    respond_by: Mapped[datetime] = mapped_column(UTCDateTime)

    proposal_action: Mapped[DisputeResponseAction | None] = mapped_column(enum_column(DisputeResponseAction))
    proposal_amount: Mapped[Decimal | None] = mapped_column(Amount)
    proposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    outcome: Mapped[DisputeOutcome | None] = mapped_column(enum_column(DisputeOutcome))
    resolution_action: Mapped[DisputeResolutionAction | None] = mapped_column(
        enum_column(DisputeResolutionAction)
    )
    resolution_amount: Mapped[Decimal | None] = mapped_column(Amount)
    decided_by: Mapped[ActorKind | None] = mapped_column(enum_column(ActorKind))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    return_tracking_number: Mapped[str | None] = mapped_column(String(100))
    return_carrier: Mapped[str | None] = mapped_column(String(100))
    return_shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DisputeMessage(Base):
    __tablename__ = "dispute_messages"
    __table_args__ = (Index("ix_dispute_messages_dispute", "dispute_id", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id", ondelete="CASCADE"))
    author: Mapped[DisputeMessageAuthor] = mapped_column(enum_column(DisputeMessageAuthor))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    attachments: Mapped[list[DisputeAttachment]] = relationship(
        lazy="raise", order_by="DisputeAttachment.id", cascade="all, delete-orphan"
    )


class DisputeAttachment(Base):
    """Evidence: an uploaded file (``storage_key`` names it in the evidence store) or a URL given as is."""

    __tablename__ = "dispute_attachments"
    __table_args__ = (Index("ix_dispute_attachments_message", "message_id", "id"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("dispute_messages.id", ondelete="CASCADE"))
    url: Mapped[str | None] = mapped_column(String(1000))
    storage_key: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
