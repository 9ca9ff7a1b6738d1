"""Alembic environment: runs on a connection handed in by db.migrate, or opens its own from settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import db.jobs  # noqa: F401  (registers job tables on the metadata)
from db.models import Base
from db.search import is_dialect_search_object

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        # One-database search indexes (trigram GIN, FTS5 tables) live in migrations only.
        include_name=lambda name, _type, _parent: not is_dialect_search_object(name),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from config.settings import get_settings

        url = get_settings().database_url
    asyncio.run(_run_async(url))


main()
