"""Bulk inserts that skip SQLAlchemy's per-row parameter processing.

A Core ``insert(table)`` with a list of dicts runs every value of every row through the column types' bind
processors, which cost more than the database's own work when loading hundreds of thousands of rows. Here
each column's conversion is worked out once per table, the rows become plain tuples, and the driver's
executemany sends them. Values come out exactly as the column types would store them, and column defaults
(including those computed from other columns of the row) are filled in the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Column, Table
from sqlalchemy import Enum as EnumType
from sqlalchemy.ext.asyncio import AsyncSession

from db.types import AMOUNT_SCALE, Amount, UTCDateTime

Converter = Callable[[Any], Any]


def _amount(value: Any) -> int | None:
    if value is None:
        return None
    scaled = Decimal(value) * AMOUNT_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount {value} has more than four decimal places")
    return int(scaled)


def _sqlite_time(value: datetime | None) -> str | None:
    # The text SQLAlchemy's SQLite DATETIME stores for the naive UTC value UTCDateTime hands it.
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _postgres_time(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    return value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _enum(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _same(value: Any) -> Any:
    return value


def _converter(column: Column[Any], dialect: str) -> Converter:
    kind = column.type
    if isinstance(kind, Amount):
        return _amount
    if isinstance(kind, UTCDateTime):
        return _sqlite_time if dialect == "sqlite" else _postgres_time
    if isinstance(kind, JSON):
        return _json
    if isinstance(kind, EnumType):
        return _enum
    return _same


class _Row:
    """What a context-sensitive column default reads: the row being inserted."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict[str, Any]:
        return self.row


def _filled(column: Column[Any], row: dict[str, Any]) -> Any:
    if column.key in row:
        return row[column.key]
    default = column.default
    if default is None:
        return None
    if default.is_callable:
        return default.arg(_Row(row))  # type: ignore[attr-defined]
    if default.is_scalar:
        return default.arg  # type: ignore[attr-defined]
    raise ValueError(f"{column} has a default that bulk inserts cannot compute")


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column name; missing columns get their defaults) in one executemany."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    columns = [
        column
        for column in table.columns
        if not (column.primary_key and column.autoincrement and column.key not in rows[0])
    ]
    # Columns the rows carry come out in one C-level itemgetter call; only those whose type changes the value
    # are converted, and the rest get their defaults.
    present = [column for column in columns if column.key in rows[0]]
    missing = [column for column in columns if column.key not in rows[0]]
    ordered = present + missing
    getter = itemgetter(*(column.key for column in present)) if present else None
    conversions = [
        (index, convert)
        for index, convert in enumerate(_converter(column, dialect) for column in present)
        if convert is not _same
    ]
    defaults = [(column, _converter(column, dialect)) for column in missing]
    names = ", ".join(column.name for column in ordered)
    if dialect == "postgresql":
        placeholders = ", ".join(f"${index}" for index in range(1, len(ordered) + 1))
    else:
        placeholders = ", ".join("?" for _ in ordered)
    statement = f"INSERT INTO {table.name} ({names}) VALUES ({placeholders})"
    values = []
    for row in rows:
        picked = getter(row) if getter is not None else ()
        value = list(picked) if len(present) > 1 else [picked]
        for index, convert in conversions:
            value[index] = convert(value[index])
        value.extend(convert(_filled(column, row)) for column, convert in defaults)
        values.append(tuple(value))
    connection = await session.connection()
    await connection.exec_driver_sql(statement, values)
