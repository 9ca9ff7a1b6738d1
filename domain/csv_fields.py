"""CSV fields rendered by the database: text exactly as ``CsvWriter`` writes ``text_cell(value)``.

A line-item CSV export reads most of its cells only to neutralise, quote and join them; the database does that
for each order's and each line's text columns in the same statement that reads them, and the export only
joins the few fields it computes itself in between. A test checks that the bytes are the same as the writer's
on awkward text (quotes, commas, line breaks, formula prefixes, non-ASCII, empty and missing values).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, String, case, func, literal_column, or_

from domain.spreadsheets import FORMULA_PREFIXES

# What makes the csv writer quote a field (QUOTE_MINIMAL): the delimiter, the quote character and the line end's
# characters.
QUOTED_IF_CONTAINS = ',"\n\r'


def _constant(text: str) -> ColumnElement[str]:
    """A string constant written into the statement (control characters included, as SQL allows)."""
    return literal_column("'" + text.replace("'", "''") + "'", String)


def _matches(value: Any, characters: str, dialect: str, *, first: bool) -> ColumnElement[bool]:
    """Whether ``value`` holds one of ``characters`` (only as its first character, with ``first``); a GLOB
    pattern would be several times slower on SQLite."""
    if first:
        return func.substr(value, 1, 1, type_=String).in_([_constant(character) for character in characters])
    position = func.instr if dialect == "sqlite" else func.strpos
    return or_(*(position(value, _constant(character), type_=Integer) > 0 for character in characters))


def _quoted(value: Any) -> ColumnElement[str]:
    quote = _constant('"')
    return quote + func.replace(value, quote, _constant('""'), type_=String) + quote


def text_field(value: Any, dialect: str) -> ColumnElement[str]:
    """A text column as its CSV field: NULL and '' empty, formula-like text behind an apostrophe, quoted when it
    holds a comma, a quote or a line break. The common case (neither) costs two tests."""
    neutralised = _constant("'") + value
    return case(
        (
            _matches(value, "".join(FORMULA_PREFIXES), dialect, first=True),
            case(
                (_matches(neutralised, QUOTED_IF_CONTAINS, dialect, first=False), _quoted(neutralised)),
                else_=neutralised,
            ),
        ),
        (_matches(value, QUOTED_IF_CONTAINS, dialect, first=False), _quoted(value)),
        else_=func.coalesce(value, _constant(""), type_=String),
    )


def time_field(value: Any, dialect: str) -> ColumnElement[str]:
    """A UTC time column as ``CsvWriter.time`` writes it ("YYYY-MM-DD HH:MM:SS +0000"), empty when NULL.

    SQLite keeps times as naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff").
    """
    if dialect == "sqlite":
        text = func.substr(value, 1, 19, type_=String)
    else:
        utc = func.timezone(literal_column("'UTC'", String), value)
        text = func.to_char(utc, literal_column("'YYYY-MM-DD HH24:MI:SS'", String), type_=String)
    return func.coalesce(
        text + literal_column("' +0000'", String), literal_column("''", String), type_=String
    )


def fields(*values: ColumnElement[str]) -> ColumnElement[str]:
    """Fields (none of them NULL) joined into part of a CSV record."""
    joined = values[0]
    for value in values[1:]:
        joined = joined + literal_column("','", String) + value
    return joined
