"""A shop's refund and return policies, each kept as a history of versions."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import PK, Base, enum_column
from db.types import Amount, UTCDateTime, utcnow


class PolicyKind(enum.StrEnum):
    REFUND = "REFUND"
    RETURN = "RETURN"


class ReturnShippingPayer(enum.StrEnum):
    CUSTOMER = "CUSTOMER"
    MERCHANT = "MERCHANT"


class ShopPolicy(Base):
    """One version of a policy; the newest of its kind is in force, the others are history."""

    __tablename__ = "shop_policies"
    __table_args__ = (
        UniqueConstraint("shop_id", "kind", "version"),
        Index("ix_shop_policies_shop_kind_effective", "shop_id", "kind", "effective_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    kind: Mapped[PolicyKind] = mapped_column(enum_column(PolicyKind))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    # Return policies only.
    return_window_days: Mapped[int | None] = mapped_column(Integer)
    restocking_fee_percent: Mapped[Decimal | None] = mapped_column(Amount)
    return_shipping_paid_by: Mapped[ReturnShippingPayer | None] = mapped_column(
        enum_column(ReturnShippingPayer)
    )
    return_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
