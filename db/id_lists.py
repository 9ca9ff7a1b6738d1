"""A list of ids as one bound parameter, so a statement over a thousand ids is compiled and prepared once.

An expanding ``IN`` renders one parameter per id at every execution, which costs more than the query when
an export reads a thousand orders at a time. PostgreSQL takes the list as an array (``= ANY``); SQLite takes
it as JSON text and reads it back with ``json_each``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY


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
