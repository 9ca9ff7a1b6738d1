"""Connections the server closed are not handed out again; SQLite connections keep the page cache they are given."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import Database

POSTGRES = os.environ.get("TEST_DATABASE_URL", "")


@pytest.mark.skipif("asyncpg" not in POSTGRES, reason="PostgreSQL (asyncpg) only")
async def test_a_connection_terminated_by_the_server_is_replaced_at_checkout() -> None:
    database = Database(POSTGRES, pool_size=1)
    other = Database(POSTGRES, pool_size=1)
    try:
        async with database.read() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with other.read() as session:
            assert (await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar()
            for _ in range(100):
                gone = (
                    await session.execute(
                        text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                    )
                ).scalar()
                if gone:
                    break
                await asyncio.sleep(0.02)
        # The pooled connection learns of it when the event loop reads the server's goodbye.
        await asyncio.sleep(0.1)
        async with database.read() as session:
            again = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await database.dispose()
        await other.dispose()


async def test_a_sqlite_connection_keeps_the_page_cache_it_is_given(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cache.sqlite3'}"
    for database, kib in ((Database(url), 65536), (Database(url, sqlite_cache_kib=2048), 2048)):
        try:
            async with database.read() as session:
                assert (await session.execute(text("PRAGMA cache_size"))).scalar_one() == -kib
        finally:
            await database.dispose()
