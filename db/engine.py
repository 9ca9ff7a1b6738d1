"""Engines and sessions for SQLite (embedded) and PostgreSQL (at scale), with one code path for both."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


@dataclass
class StatementCounter:
    """Counts SQL statements sent while it is active; tests assert on it to keep N+1 away."""

    count: int = 0
    statements: list[str] = field(default_factory=list)


statement_counter: contextvars.ContextVar[StatementCounter | None] = contextvars.ContextVar(
    "statement_counter", default=None
)


def _count_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    counter = statement_counter.get()
    # Transaction control is not a query (and PostgreSQL's driver sends it out of sight anyway).
    if counter is not None and not statement.startswith("BEGIN"):
        counter.count += 1
        counter.statements.append(statement)


SQLITE_CACHE_KIB = 65536


def _configure_sqlite(sync_engine: Engine, immediate: bool, cache_kib: int) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours (see "begin" below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Reads go through the OS page cache by memory map instead of a copy per page, and each connection
        # keeps up to 64 MiB of pages itself by default (SQLite's 2 MiB does not hold the orders of a large
        # shop).
        cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.execute(f"PRAGMA cache_size=-{cache_kib}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that upgrades later can fail with
        # SQLITE_BUSY instead of waiting its turn.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _skip_closed_connections(sync_engine: Engine) -> None:
    """Instead of the pool's pre-ping (one round trip per checkout): asyncpg notices at once when the server
    closes a connection (a restart, pg_terminate_backend), since the event loop reads its socket while it is
    idle, and marks it closed; such a connection is dropped at checkout and the pool hands out another."""

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_conn._connection.is_closed():
            raise exc.DisconnectionError("the server closed this connection")


def _make_engine(
    url: str, *, immediate: bool = False, sqlite_cache_kib: int = SQLITE_CACHE_KIB, **kwargs: Any
) -> AsyncEngine:
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine.sync_engine, immediate, sqlite_cache_kib)
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


class Database:
    """Holds the engines and hands out sessions.

    ``read()`` is for queries; ``write()`` opens a transaction that commits on success and rolls back on any
    error. On SQLite, writes go through a second engine whose transactions begin IMMEDIATE.
    """

    def __init__(self, url: str, *, pool_size: int = 10, sqlite_cache_kib: int = SQLITE_CACHE_KIB) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _make_engine(url, sqlite_cache_kib=sqlite_cache_kib)
            self.write_engine = _make_engine(url, immediate=True, sqlite_cache_kib=sqlite_cache_kib)
        else:
            # JIT compilation pays off for long analytical queries; for these short ones it cost more than the
            # query itself (hundreds of ms for one search count). A random page read costs about what a
            # sequential one does once the data is cached or on SSD: with the default (4) the planner scans a
            # whole shop's orders rather than look up the few hundred that a supplier-order list names.
            connect_args = (
                {"server_settings": {"jit": "off", "random_page_cost": "1.1"}} if "asyncpg" in url else {}
            )
            self.engine = _make_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping="asyncpg" not in url,
                connect_args=connect_args,
            )
            if "asyncpg" in url:
                _skip_closed_connections(self.engine.sync_engine)
            self.write_engine = self.engine
        # PostgreSQL reads at READ COMMITTED, where every statement takes its own snapshot anyway: in autocommit
        # a read sends no BEGIN and no ROLLBACK, two of the few round trips a short request makes. (SQLite's
        # read transaction does keep one snapshot for all its statements, so it stays.)
        reading = (
            self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._read_sessions = async_sessionmaker(reading, expire_on_commit=False, autoflush=False)
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False, autoflush=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read_session(self) -> AsyncSession:
        return self._read_sessions()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        async with self._write_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()
