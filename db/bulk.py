"""Bulk inserts that skip SQLAlchemy's per-row parameter processing.

A Core ``insert(table)`` with a list of dicts runs every value of every row through the column types' bind
processors, which cost more than the database's own work when loading hundreds of thousands of rows. Here
each column's conversion is worked out once per table, the rows become plain tuples, and the driver's
executemany sends them. Values come out exactly as the column types would store them, and column defaults
(including those computed from other columns of the row) are filled in the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Table, text
from sqlalchemy import Enum as EnumType
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.types import AMOUNT_SCALE, Amount, UTCDateTime

Converter = Callable[[Any], Any]


# Amounts already converted: loads repeat the same prices and totals many times.
_AMOUNTS: dict[Any, int] = {}
_AMOUNTS_KEPT = 100_000


def _amount(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return _AMOUNTS[value]
    except (KeyError, TypeError):
        pass
    scaled = Decimal(value) * AMOUNT_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount {value} has more than four decimal places")
    if len(_AMOUNTS) < _AMOUNTS_KEPT and isinstance(value, Decimal):
        _AMOUNTS[value] = int(scaled)
    return int(scaled)


# Texts of instants already converted: a load writes most instants more than once (a supplier order's
# payment time is also its "paid" event's). Equal aware datetimes are the same instant, hence the same text;
# a naive one never equals an aware one, so it is not found here and is refused below.
_SQLITE_TIMES: dict[datetime, str] = {}
_SQLITE_TIMES_KEPT = 200_000


def _sqlite_time(value: datetime | None) -> str | None:
    # The text SQLAlchemy's SQLite DATETIME stores for the naive UTC value UTCDateTime hands it.
    if value is None:
        return None
    # A lookup that misses is as common as one that hits, and a caught KeyError would cost more than it.
    known = _SQLITE_TIMES.get(value)
    if known is not None:
        return known
    if value.tzinfo is UTC:
        # The same text without the intermediate naive copy; the slice drops "+00:00".
        stored = value.isoformat(" ", "microseconds")[:26]
    elif value.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    else:
        stored = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if len(_SQLITE_TIMES) >= _SQLITE_TIMES_KEPT:
        _SQLITE_TIMES.clear()
    _SQLITE_TIMES[value] = stored
    return stored


def _postgres_time(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    return value


# What json.dumps(value) writes (same separators, ASCII only). Rows hold no reference cycles, so the
# circular-reference bookkeeping is skipped.
_JSON_ENCODER = json.JSONEncoder(check_circular=False)
# ``JSONEncoder.encode`` builds a new C encoder on every call, which costs more than encoding a small row's
# object; this one is built once, with the same settings, and used for every row.
_C_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # absent without the C accelerator
_JSON_CHUNKS = (
    _C_MAKE_ENCODER(
        None,
        _JSON_ENCODER.default,
        json.encoder.encode_basestring_ascii,
        None,
        _JSON_ENCODER.key_separator,
        _JSON_ENCODER.item_separator,
        False,
        False,
        True,
    )
    if _C_MAKE_ENCODER is not None
    else None
)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    # Many rows carry an empty object (most timeline entries' data).
    if value == {}:
        return "{}"
    if _JSON_CHUNKS is None or isinstance(value, str):
        return _JSON_ENCODER.encode(value)
    return "".join(_JSON_CHUNKS(value, 0))


def _enum(value: Any) -> Any:
    # An enum member's value without the descriptor behind ``.value``; other values pass through.
    return getattr(value, "_value_", value)


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


class RowEncoder:
    """Turns dicts with one set of keys into tuples of the values ``table``'s columns store, for one dialect.

    Encoding needs no connection, so a planning process can do it and hand over plain tuples, which also
    pickle far faster than dicts of Decimals, enums and datetimes.
    """

    def __init__(self, table: Table, dialect: str, keys: Collection[str]) -> None:
        self.table = table
        columns = [
            column
            for column in table.columns
            if not (column.primary_key and column.autoincrement and column.key not in keys)
        ]
        present = [column for column in columns if column.key in keys]
        missing = [column for column in columns if column.key not in keys]
        self.columns = [column.name for column in present + missing]
        self.encode: Callable[[dict[str, Any]], tuple[Any, ...]] = _tuple_maker(present, missing, dialect)


def _tuple_maker(
    present: Sequence[Column[Any]], missing: Sequence[Column[Any]], dialect: str
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function that builds one row's tuple in a single expression, written out for these columns: looping
    over columns and converters for every row costs more than most conversions do."""
    names: dict[str, Any] = {"_filled": _filled}
    parts = []
    for index, column in enumerate(present):
        convert = _converter(column, dialect)
        read = f"row[{column.key!r}]"
        if convert is _same:
            parts.append(read)
        else:
            names[f"convert_{index}"] = convert
            parts.append(f"convert_{index}({read})")
    for index, column in enumerate(missing):
        names[f"column_{index}"], names[f"default_{index}"] = column, _converter(column, dialect)
        parts.append(f"default_{index}(_filled(column_{index}, row))")
    source = f"def encode(row):\n    return ({', '.join(parts)}{',' if len(parts) == 1 else ''})\n"
    # The source holds only column keys (written with repr) and the names above.
    exec(source, names)
    encode: Callable[[dict[str, Any]], tuple[Any, ...]] = names["encode"]
    return encode


async def insert_encoded(
    session: AsyncSession, table: Table, columns: Sequence[str], values: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows a ``RowEncoder`` made: by COPY on PostgreSQL through asyncpg, else one executemany."""
    if not values:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        raw: Any = (await connection.get_raw_connection()).driver_connection
        if hasattr(raw, "copy_records_to_table"):
            # COPY skips parsing and planning an INSERT per row: several times cheaper on the server.
            await raw.copy_records_to_table(table.name, records=values, columns=list(columns))
            return
        placeholders = ", ".join(f"${index}" for index in range(1, len(columns) + 1))
    else:
        placeholders = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"
    await connection.exec_driver_sql(statement, list(values))


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column name; missing columns get their defaults)."""
    if not rows:
        return
    encoder = RowEncoder(table, session.get_bind().dialect.name, rows[0].keys())
    await insert_encoded(session, table, encoder.columns, [encoder.encode(row) for row in rows])


def _sequence(table: Table) -> str:
    (key,) = table.primary_key.columns
    return f"pg_get_serial_sequence('{table.name}', '{key.name}')"


async def next_id(session: AsyncSession, table: Table) -> int:
    """The primary key ``table``'s next insert would take, so that a loader can number rows itself (and
    give children their parents' ids) rather than read ids back from every insert.

    No one else can insert into ``table`` until the transaction ends (SQLite's write lock, and on PostgreSQL
    a table lock taken here), and the loader calls ``set_next_id`` once it has numbered its rows.
    """
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        # Inserts by others would take their ids from the sequence; this lock keeps them waiting until commit.
        await connection.exec_driver_sql(f"LOCK TABLE {table.name} IN SHARE ROW EXCLUSIVE MODE")
        result = await connection.exec_driver_sql(f"SELECT nextval({_sequence(table)})")
        return int(result.scalar_one())
    (key,) = table.primary_key.columns
    result = await connection.exec_driver_sql(f"SELECT coalesce(max({key.name}), 0) + 1 FROM {table.name}")
    return int(result.scalar_one())


async def set_next_id(session: AsyncSession, table: Table, next_free: int) -> None:
    """Tell the database the loader numbered ``table``'s rows below ``next_free`` (PostgreSQL's sequence moves
    on; SQLite takes the largest rowid plus one anyway)."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(f"SELECT setval({_sequence(table)}, {int(next_free)}, false)")


# ---------------------------------------------------------------------------------------------------------------
# Secondary indexes set aside while a load runs.

# An FTS5 table kept in step with another table's rows: ``USING fts5(..., content='orders', ...)``.
_FTS_CONTENT = re.compile(r"USING\s+fts5\s*\(.*\bcontent\s*=\s*['\"]?(\w+)", re.IGNORECASE | re.DOTALL)


async def _sqlite_deferrable(
    connection: AsyncConnection, tables: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(DROP statements, statements that bring everything back) for SQLite.

    Indexes made by CREATE INDEX that are not unique go; unique ones, and those behind primary keys and UNIQUE
    constraints, stay, since inserts rely on them. Triggers that feed an external-content FTS5 table from
    one of ``tables`` go too, and that table is rebuilt from its content in one pass afterwards.
    """
    drops, restores, rebuilds = [], [], []
    for table in tables:
        indexes = await connection.execute(
            text(
                "SELECT m.name, m.sql FROM pragma_index_list(:table) AS l "
                "JOIN sqlite_master AS m ON m.name = l.name "
                "WHERE l.origin = 'c' AND NOT l.\"unique\" AND m.sql IS NOT NULL ORDER BY m.name"
            ),
            {"table": table},
        )
        for name, sql in indexes:
            drops.append(f'DROP INDEX "{name}"')
            restores.append(sql)
    virtual = await connection.execute(
        text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' "
            "ORDER BY name"
        )
    )
    for fts_name, fts_sql in virtual.all():
        match = _FTS_CONTENT.search(fts_sql)
        if match is None or match.group(1) not in tables:
            continue
        triggers = await connection.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table ORDER BY name"
            ),
            {"table": match.group(1)},
        )
        feeding = [(name, sql) for name, sql in triggers if re.search(rf"\b{re.escape(fts_name)}\b", sql)]
        if feeding:
            drops += [f'DROP TRIGGER "{name}"' for name, _ in feeding]
            restores += [sql for _, sql in feeding]
            rebuilds.append(f'INSERT INTO "{fts_name}"("{fts_name}") VALUES (\'rebuild\')')
    return drops, restores + rebuilds


async def _postgres_deferrable(
    connection: AsyncConnection, tables: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(DROP statements, CREATE statements) for PostgreSQL's indexes that are neither unique nor behind a
    constraint (primary key, unique, exclusion), on ``tables`` in the current schema."""
    result = await connection.execute(
        text(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index AS x "
            "JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_class AS t ON t.oid = x.indrelid "
            "WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(:tables) "
            "AND NOT x.indisunique AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid) "
            "ORDER BY i.relname"
        ),
        {"tables": list(tables)},
    )
    rows = result.all()
    return [f'DROP INDEX "{name}"' for name, _ in rows], [definition for _, definition in rows]


async def _postgres_foreign_keys(
    connection: AsyncConnection, tables: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(DROP statements, ADD statements) for the foreign keys of ``tables`` (as the referencing side)."""
    result = await connection.execute(
        text(
            "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint AS c "
            "JOIN pg_class AS t ON t.oid = c.conrelid "
            "WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace "
            "AND t.relname = ANY(:tables) ORDER BY t.relname, c.conname"
        ),
        {"tables": list(tables)},
    )
    rows = result.all()
    return (
        [f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"' for table, name, _ in rows],
        [f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}' for table, name, definition in rows],
    )


@asynccontextmanager
async def indexes_and_foreign_keys_deferred(
    session: AsyncSession, tables: Sequence[Table]
) -> AsyncIterator[None]:
    """Drop ``tables``' secondary indexes (and SQLite's FTS5 feeding triggers) for the block, then build them
    again, each in one pass over the loaded rows: far cheaper than keeping them up to date row by row,
    above all PostgreSQL's trigram GIN index and SQLite's FTS5 table.

    On PostgreSQL the tables' foreign keys go too: each checks every inserted row with a query and a row lock
    on the parent, which costs the server more than the insert itself, whereas adding the key back checks all
    rows in one join. (SQLite's checks are a cheap lookup, and its foreign_keys setting cannot change inside
    a transaction.)

    The indexes and keys are read from the database's catalogue, so any an added migration creates are
    covered. Both databases' DDL is transactional, and the block must run inside the session's transaction:
    if anything fails, the rollback brings everything back with the rows gone, and no reader ever sees the
    tables without them (PostgreSQL locks the tables for the transaction; SQLite readers keep the last
    snapshot).
    """
    connection = await session.connection()
    names = [table.name for table in tables]
    if connection.dialect.name == "postgresql":
        drops, restores = await _postgres_deferrable(connection, names)
        key_drops, key_restores = await _postgres_foreign_keys(connection, names)
        drops, restores = key_drops + drops, restores + key_restores
    else:
        drops, restores = await _sqlite_deferrable(connection, names)
    for statement in drops:
        await connection.exec_driver_sql(statement)
    yield
    if connection.dialect.name == "postgresql":
        # Index builds sort in memory up to this much; the default (64 MB) spills a 100,000-order GIN build.
        await connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for statement in restores:
        await connection.exec_driver_sql(statement)
