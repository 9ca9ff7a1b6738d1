"""Order exports: what a merchant asked for, how far the background job got, and the file it produced."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import PK, Base, enum_column
from db.types import UTCDateTime, utcnow


class ExportFormat(enum.StrEnum):
    CSV = "CSV"
    XLSX = "XLSX"


class ExportLayout(enum.StrEnum):
    LINE_ITEM = "LINE_ITEM"
    ORDER = "ORDER"


class ExportStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class Export(Base):
    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_shop_status", "shop_id", "status", "id"),
        Index("ix_exports_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    format: Mapped[ExportFormat] = mapped_column(enum_column(ExportFormat))
    layout: Mapped[ExportLayout] = mapped_column(enum_column(ExportLayout))
    status: Mapped[ExportStatus] = mapped_column(enum_column(ExportStatus), default=ExportStatus.PENDING)
    query: Mapped[str | None] = mapped_column(Text)
    # Primary keys of the orders asked for by id; NULL when the export is by query or of every order.
    order_ids: Mapped[list[int] | None] = mapped_column(JSON)
    email: Mapped[str | None] = mapped_column(String(320))
    requested_by: Mapped[str] = mapped_column(String(200))
    # The job that builds the file, and the attempt of it that owns the export now: an attempt whose
    # lease was taken over cannot overwrite what the newer attempt writes.
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    row_count: Mapped[int | None] = mapped_column(Integer)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    # Relative to the export directory.
    file_name: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
