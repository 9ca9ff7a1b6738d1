"""Inbound supplier webhooks already handled, kept so that a replay gets the first answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import PK, Base
from db.types import UTCDateTime, utcnow


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
