"""Relay cursor connections paginated by keyset on (sort value, id), never by OFFSET."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from schema.kept import Kept

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


# Built once per key: building a statement costs about as much as running a small page.
PAGE_STATEMENTS: Kept[Hashable, Select[Any]] = Kept()


class RowEdge:
    """An edge over a Core row, for a compiled plan: its cursor is written only if the plan reads it."""

    __slots__ = ("node", "sort")

    def __init__(self, sort: SortColumn, node: Any) -> None:
        self.sort = sort
        self.node = node

    @property
    def cursor(self) -> str:
        return encode_cursor(self.sort, self.node)


@dataclass(frozen=True)
class RowPageInfo:
    has_next_page: bool
    has_previous_page: bool
    edges: list[RowEdge]

    @property
    def start_cursor(self) -> str | None:
        return self.edges[0].cursor if self.edges else None

    @property
    def end_cursor(self) -> str | None:
        return self.edges[-1].cursor if self.edges else None


@dataclass(frozen=True)
class RowPage:
    """A page of Core rows with what a compiled plan reads of a connection."""

    edges: list[RowEdge]
    page_info: RowPageInfo


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


async def _page_rows(
    context: Context,
    statement: Select[Any] | Callable[[], Select[Any]],
    sort: SortColumn,
    id_column: InstrumentedAttribute[Any],
    page: PageRequest,
    *,
    as_rows: bool,
    reuse: Hashable | None,
) -> tuple[list[Any], bool]:
    """The rows of one page in the order asked for, and whether there are more beyond it."""
    size = page.size(context.settings.page_size_max)
    backwards = page.last is not None
    descending = page.reverse != backwards  # walking backwards flips the order, then the page is flipped back

    def beyond(cursor: str, forward: bool) -> Any:
        value, row_id = decode_cursor(sort, cursor)
        if forward:
            return or_(sort.column > value, and_(sort.column == value, id_column > row_id))
        return or_(sort.column < value, and_(sort.column == value, id_column < row_id))

    def build() -> Select[Any]:
        paged = statement if isinstance(statement, Select) else statement()
        if page.after is not None:
            paged = paged.where(beyond(page.after, forward=not page.reverse))
        if page.before is not None:
            paged = paged.where(beyond(page.before, forward=page.reverse))
        order = (sort.column.desc(), id_column.desc()) if descending else (sort.column.asc(), id_column.asc())
        paged = paged.order_by(*order).limit(size + 1)
        return paged.with_only_columns(*id_column.class_.__table__.c) if as_rows else paged

    cursorless = page.after is None and page.before is None
    key = (reuse, sort.column.key, descending, size, as_rows) if reuse is not None and cursorless else None
    built = PAGE_STATEMENTS.get(key) if key is not None else None
    if built is None:
        built = build() if key is None else PAGE_STATEMENTS.put(key, build())
    async with context.reading() as session:
        if as_rows:
            rows = list((await (await session.connection()).execute(built)).all())
        else:
            rows = list((await session.execute(built)).scalars())
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    return rows, has_more


async def keyset_page(
    context: Context,
    statement: Select[Any] | Callable[[], Select[Any]],
    sort: SortColumn,
    id_column: InstrumentedAttribute[Any],
    page: PageRequest,
    *,
    to_node: Callable[[Any], T],
    reuse: Hashable | None = None,
) -> Connection[T]:
    """One page of ``statement`` (which selects one entity) ordered by (sort, id).

    With ``reuse``, the key of what ``statement`` (then a function that builds it) selects, a page without a
    cursor runs a statement built once for every request with that key."""
    rows, has_more = await _page_rows(context, statement, sort, id_column, page, as_rows=False, reuse=reuse)
    edges = [Edge(cursor=encode_cursor(sort, row), node=to_node(row)) for row in rows]
    backwards = page.last is not None
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_more if not backwards else page.before is not None,
            has_previous_page=has_more if backwards else page.after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


async def keyset_rows(
    context: Context,
    statement: Select[Any] | Callable[[], Select[Any]],
    sort: SortColumn,
    id_column: InstrumentedAttribute[Any],
    page: PageRequest,
    *,
    reuse: Hashable | None = None,
) -> RowPage:
    """The same page as ``keyset_page``, as its table's Core rows, for a compiled plan that only reads them."""
    rows, has_more = await _page_rows(context, statement, sort, id_column, page, as_rows=True, reuse=reuse)
    edges = [RowEdge(sort, row) for row in rows]
    backwards = page.last is not None
    return RowPage(
        edges,
        RowPageInfo(
            has_next_page=has_more if not backwards else page.before is not None,
            has_previous_page=has_more if backwards else page.after is not None,
            edges=edges,
        ),
    )
