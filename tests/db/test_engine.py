"""Connections the server closed are not handed out again."""

from __future__ import annotations

import asyncio
import os

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
