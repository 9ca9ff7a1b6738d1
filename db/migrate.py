"""Run Alembic from code (the CLI, the server's start-up and the tests) on an async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate; when anything ran, refresh the planner's statistics (new indexes have none)."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    before = await current_revision(engine)
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
    if await current_revision(engine) != before:
        await refresh_statistics(engine)


async def refresh_statistics(engine: AsyncEngine, *, vacuum: bool = False) -> None:
    """ANALYZE, after migrations and bulk loads: SQLite has no statistics at all until something runs it,
    and PostgreSQL's autovacuum may not have caught up yet. ``vacuum`` (PostgreSQL) also sets the visibility
    map, without which a count cannot be answered from an index alone."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM (ANALYZE)" if vacuum else "ANALYZE"))
        return
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    def _downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_downgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(_current)
