"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

import domain.subdomains  # noqa: F401  (registers reactions and job handlers)
from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.jobs import Job  # noqa: F401  (registers the job tables on the metadata)
from db.migrate import downgrade, upgrade
from db.models import Base
from tests.factories import Api, Tenant, make_tenant


def database_url(tmp_dir: Path) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp_dir / 'test.sqlite3'}"


async def reset_schema(database: Database) -> None:
    """Start from an empty database whatever an earlier run left behind."""
    if database.dialect == "postgresql":
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    else:
        await downgrade(database.engine, "base")


@pytest.fixture(scope="session")
async def database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    url = database_url(tmp_path_factory.mktemp("db"))
    database = Database(url)
    await reset_schema(database)
    await upgrade(database.engine)
    yield database
    await database.dispose()


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """A migrated database emptied after each test."""
    yield database
    async with database.write() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    """The HTTP app over the test database, spoken to in-process."""
    settings = replace(load_settings(), database_url=db.url)
    app = create_app(settings, db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dropdesk.test") as client:
        yield Api(client)


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db)


@pytest.fixture
async def other_tenant(db: Database) -> Tenant:
    return await make_tenant(db)
