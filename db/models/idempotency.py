"""Idempotency keys: the first answer to a mutation sent with an ``Idempotency-Key``, kept for replays."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import PK, Base
from db.types import UTCDateTime, utcnow


class IdempotencyKey(Base):
    """One key of one token. The row is inserted (and committed) before the request runs, so that a twin
    sent at the same time finds it and waits; ``status_code`` stays empty until the first answer is stored."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("access_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the request as canonical JSON: the same key with another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
