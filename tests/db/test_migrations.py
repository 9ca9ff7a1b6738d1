"""The Alembic history and the models agree, and the history runs both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from db.engine import Database
from db.migrate import current_revision, downgrade, head_revision, upgrade
from db.models import Base
from db.search import is_dialect_search_object


@pytest.fixture
async def scratch(tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of the same kind as the test database, just for this test."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url is None:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'migrations.sqlite3'}")
        yield database
        await database.dispose()
        return
    name = f"{make_url(url).database}_migrations"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(make_url(url).set(database=name).render_as_string(hide_password=False))
    yield database
    await database.dispose()
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "render_as_batch": connection.dialect.name == "sqlite",
            "include_name": lambda name, _type, _parent: not is_dialect_search_object(name),
        },
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    names = set(inspect(connection).get_table_names()) - {"alembic_version"}
    return {name for name in names if not is_dialect_search_object(name)}


async def test_upgrade_matches_models_then_downgrade_empties(scratch: Database) -> None:
    await upgrade(scratch.engine)
    assert await current_revision(scratch.engine) == head_revision()
    async with scratch.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        assert await conn.run_sync(_tables) == set(Base.metadata.tables)

    await downgrade(scratch.engine, "base")
    async with scratch.engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()
    assert await current_revision(scratch.engine) is None

    # And up again: a downgrade must leave nothing that blocks the next upgrade.
    await upgrade(scratch.engine)
    assert await current_revision(scratch.engine) == head_revision()
