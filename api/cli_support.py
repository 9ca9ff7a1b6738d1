"""What every ``dropdesk`` subcommand that touches the database shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from config.settings import Settings, get_settings
from db.engine import Database


class DatabaseUnreachable(RuntimeError):
    """The database could not be reached or refused us; the message is one line, without the password."""


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    return text[:300]


def run_with_database(main: Callable[[Database, Settings], Awaitable[int]]) -> int:
    """Run ``main`` in a fresh event loop with a database that is disposed of afterwards."""
    settings = get_settings()

    async def wrapper() -> int:
        database = Database(settings.database_url)
        try:
            return await main(database, settings)
        finally:
            await database.dispose()

    try:
        return asyncio.run(wrapper())
    except (OSError, OperationalError, InterfaceError, DBAPIError) as error:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise DatabaseUnreachable(f"cannot use the database at {where}: {_reason(error)}") from error
