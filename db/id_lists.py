"""A list of ids as one bound parameter, so a statement over a thousand ids is compiled and prepared once.

An expanding ``IN`` renders one parameter per id at every execution, which costs more than the query when
an export reads a thousand orders at a time. PostgreSQL takes the list as an array (``= ANY``); SQLite takes
it as JSON text and reads it back with ``json_each``.

``rows_among`` runs such a statement on the driver's own connection and returns its rows as the driver gives
them (tuples, or asyncpg records): an export reads hundreds of thousands of rows this way, and building a
SQLAlchemy row for each was a large part of its time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ClauseElement, ColumnElement, Dialect, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection


def among(column: Any, dialect: str, name: str = "ids") -> ColumnElement[bool]:
    """``column`` is one of the ids given as the parameter ``name`` (see ``id_list``)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    listed = func.json_each(bindparam(name)).table_valued("value")
    return column.in_(select(listed.c.value))


def id_list(ids: Sequence[int], dialect: str) -> Any:
    """The parameter value for ``among``."""
    if dialect == "postgresql":
        return list(ids)
    return json.dumps(list(ids))


@functools.lru_cache(maxsize=64)
def _driver_statement(statement: ClauseElement, dialect: Dialect) -> tuple[str, list[Any], int]:
    """The SQL text, its positional parameters (the statement's own constants, processed for the driver as
    SQLAlchemy would) and the position of the ids among them."""
    compiled: Any = statement.compile(dialect=dialect)
    expanded = compiled.construct_expanded_state({"ids": id_list([], dialect.name)})
    processors = {**compiled._bind_processors, **expanded.processors}
    names = list(expanded.positiontup or ())
    values = [
        processors[name](value) if name in processors else value
        for name, value in zip(names, expanded.positional_parameters, strict=True)
    ]
    return expanded.statement, values, names.index("ids")


async def rows_among(connection: AsyncConnection, statement: ClauseElement, ids: Sequence[int]) -> list[Any]:
    """The rows of ``statement`` (ids given to it by ``among``) straight from the driver, in the
    connection's transaction: values as the database keeps them, with none of SQLAlchemy's type processing."""
    dialect = connection.dialect
    sql, parameters, ids_at = _driver_statement(statement, dialect)
    parameters = list(parameters)
    parameters[ids_at] = id_list(ids, dialect.name)
    driver = (await connection.get_raw_connection()).driver_connection
    if dialect.name == "postgresql":
        return list(await driver.fetch(sql, *parameters))  # type: ignore[union-attr]
    return list(await driver.execute_fetchall(sql, parameters))  # type: ignore[union-attr]
