"""What every ``dropdesk`` subcommand that touches the database shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from config.settings import Settings, get_settings
from db.engine import Database


def run_with_database(main: Callable[[Database, Settings], Awaitable[int]]) -> int:
    """Run ``main`` in a fresh event loop with a database that is disposed of afterwards."""
    settings = get_settings()

    async def wrapper() -> int:
        database = Database(settings.database_url)
        try:
            return await main(database, settings)
        finally:
            await database.dispose()

    return asyncio.run(wrapper())
