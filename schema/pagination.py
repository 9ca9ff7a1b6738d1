"""Relay cursor connections paginated by keyset on (sort value, id), never by OFFSET."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

if TYPE_CHECKING:
    from schema.context import Context

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 50

# The Relay paging arguments, described once for every connection field.
First = Annotated[
    int | None,
    strawberry.argument(description="Page forward: at most this many items (up to 250; default 50)."),
]
After = Annotated[
    str | None,
    strawberry.argument(description="Page forward from this cursor (a previous pageInfo.endCursor)."),
]
Last = Annotated[
    int | None, strawberry.argument(description="Page backward: at most this many items (up to 250).")
]
Before = Annotated[
    str | None,
    strawberry.argument(description="Page backward from this cursor (a previous pageInfo.startCursor)."),
]
Reverse = Annotated[bool, strawberry.argument(description="Reverse the sort order.")]


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


@dataclass(frozen=True)
class SortColumn:
    """A column to sort by and how its value travels inside a cursor."""

    column: InstrumentedAttribute[Any]
    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any] = lambda value: value


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _datetime(value: Any) -> datetime:
    return datetime.fromisoformat(value)


def datetime_sort(column: InstrumentedAttribute[Any]) -> SortColumn:
    return SortColumn(column, _datetime, lambda value: value.isoformat())


def decimal_sort(column: InstrumentedAttribute[Any]) -> SortColumn:
    return SortColumn(column, _decimal, str)


def int_sort(column: InstrumentedAttribute[Any]) -> SortColumn:
    return SortColumn(column, int)


def str_sort(column: InstrumentedAttribute[Any]) -> SortColumn:
    return SortColumn(column, str)


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def encode_cursor(sort: SortColumn, row: Any) -> str:
    payload = json.dumps([sort.encode(getattr(row, sort.column.key)), row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(sort: SortColumn, cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, row_id = json.loads(raw)
        if not isinstance(row_id, int):
            raise ValueError(row_id)
        return sort.decode(value), row_id
    except (binascii.Error, ValueError, TypeError, InvalidOperation, UnicodeDecodeError) as error:
        raise bad_input(
            f"invalid cursor {cursor!r}: it does not come from this connection and sort"
        ) from error


@dataclass(frozen=True)
class PageRequest:
    first: int | None
    after: str | None
    last: int | None
    before: str | None
    reverse: bool = False

    def size(self, maximum: int) -> int:
        if self.first is not None and self.last is not None:
            raise bad_input("give first or last, not both")
        size = self.first if self.first is not None else self.last
        if size is None:
            return DEFAULT_PAGE_SIZE
        if size < 0:
            raise bad_input("first and last must not be negative")
        if size > maximum:
            raise bad_input(f"at most {maximum} items per page; ask for first: {maximum} or fewer")
        return size


async def keyset_page(
    context: Context,
    statement: Select[Any],
    sort: SortColumn,
    id_column: InstrumentedAttribute[Any],
    page: PageRequest,
    *,
    to_node: Callable[[Any], T],
    as_rows: bool = False,
) -> Connection[T]:
    """One page of ``statement`` (which selects one entity) ordered by (sort, id); with ``as_rows``, its
    table's columns as Core rows instead of ORM objects, for answers that only read them."""
    size = page.size(context.settings.page_size_max)
    backwards = page.last is not None
    descending = page.reverse != backwards  # walking backwards flips the order, then the page is flipped back

    def beyond(cursor: str, forward: bool) -> Any:
        value, row_id = decode_cursor(sort, cursor)
        if forward:
            return or_(sort.column > value, and_(sort.column == value, id_column > row_id))
        return or_(sort.column < value, and_(sort.column == value, id_column < row_id))

    if page.after is not None:
        statement = statement.where(beyond(page.after, forward=not page.reverse))
    if page.before is not None:
        statement = statement.where(beyond(page.before, forward=page.reverse))
    order = (sort.column.desc(), id_column.desc()) if descending else (sort.column.asc(), id_column.asc())
    async with context.reading() as session:
        statement = statement.order_by(*order).limit(size + 1)
        if as_rows:
            entity = id_column.class_
            statement = statement.with_only_columns(*entity.__table__.c)
            rows = list((await (await session.connection()).execute(statement)).all())
        else:
            rows = list((await session.execute(statement)).scalars())
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    edges = [Edge(cursor=encode_cursor(sort, row), node=to_node(row)) for row in rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_more if not backwards else page.before is not None,
            has_previous_page=has_more if backwards else page.after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
