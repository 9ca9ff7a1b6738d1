"""Tenants and who may act for them: shops, their suppliers and access tokens."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import PK, Base, enum_column
from db.types import UTCDateTime, utcnow


class TokenKind(enum.StrEnum):
    MERCHANT = "MERCHANT"
    SUPPLIER = "SUPPLIER"
    ADMIN = "ADMIN"


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
    kind: Mapped[TokenKind] = mapped_column(enum_column(TokenKind))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Null for a token that never expires.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
