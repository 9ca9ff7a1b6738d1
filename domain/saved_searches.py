"""Saved order views: a name, a search query and a sort, shared by every merchant token of the shop.

A view's query is checked when it is saved; should the search syntax later stop accepting it, reading the view
reports the parse error (``query_error``) instead of quietly matching nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OrderSortKey, SavedSearch, Shop
from db.search import SearchSyntaxError, parse_query
from db.types import utcnow
from domain.access import lock_visible, require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.validation import Checker, unstorable

MAX_NAME_LENGTH = 100
MAX_PER_SHOP = 100


@dataclass(frozen=True)
class SavedSearchInput:
    name: str | None = None
    query: str | None = None
    sort_key: OrderSortKey | None = None
    reverse: bool | None = None


def query_error(query: str) -> str | None:
    """Why a saved query does not parse (with the position), or None when it does."""
    if not query.strip():
        return None
    try:
        parse_query(query)
    except SearchSyntaxError as error:
        return f"invalid search query: {error}"
    return None


def _check(data: SavedSearchInput, *, creating: bool) -> tuple[str | None, str | None]:
    check = Checker()
    name = data.name.strip() if data.name is not None else None
    query = data.query.strip() if data.query is not None else None
    if name is not None and unstorable(name):
        check.fail(("name",), "name must not contain NUL characters or lone surrogates")
    elif name is not None or creating:
        check.text(("name",), name, max_length=MAX_NAME_LENGTH, required=True)
    if query is not None and unstorable(query):
        check.fail(("query",), "query must not contain NUL characters or lone surrogates")
    elif query:
        error = query_error(query)
        if error is not None:
            check.fail(("query",), error, ErrorCode.INVALID_QUERY)
    check.raise_if_any()
    return name, query


async def create_saved_search(
    session: AsyncSession, actor: Actor, data: SavedSearchInput, *, now: datetime | None = None
) -> SavedSearch:
    require_scope(actor, Scope.WRITE_ORDERS)
    assert actor.shop_id is not None
    name, query = _check(data, creating=True)
    assert name is not None
    now = now or utcnow()
    # The shop's row serialises creations, so the per-shop limit holds under concurrent requests.
    await session.execute(select(Shop.id).where(Shop.id == actor.shop_id).with_for_update())
    count = await session.scalar(
        select(func.count()).select_from(SavedSearch).where(visible(SavedSearch, actor))
    )
    if (count or 0) >= MAX_PER_SHOP:
        raise DomainError.single(ErrorCode.TOO_MANY, f"a shop keeps at most {MAX_PER_SHOP} saved searches")
    await _refuse_taken_name(session, actor, name, None)
    saved = SavedSearch(
        shop_id=actor.shop_id,
        name=name,
        query=query or "",
        sort_key=data.sort_key or OrderSortKey.CREATED_AT,
        reverse=bool(data.reverse),
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    await _flush(session, saved)
    return saved


async def update_saved_search(
    session: AsyncSession,
    actor: Actor,
    saved_search_id: int,
    data: SavedSearchInput,
    *,
    now: datetime | None = None,
) -> SavedSearch:
    """Change the given fields only."""
    require_scope(actor, Scope.WRITE_ORDERS)
    name, query = _check(data, creating=False)
    saved = await _lock(session, actor, saved_search_id)
    if name is not None and name != saved.name:
        await _refuse_taken_name(session, actor, name, saved.id)
        saved.name = name
    if query is not None:
        saved.query = query
    if data.sort_key is not None:
        saved.sort_key = data.sort_key
    if data.reverse is not None:
        saved.reverse = data.reverse
    saved.updated_at = now or utcnow()
    await _flush(session, saved)
    return saved


async def delete_saved_search(session: AsyncSession, actor: Actor, saved_search_id: int) -> int:
    require_scope(actor, Scope.WRITE_ORDERS)
    saved = await _lock(session, actor, saved_search_id)
    await session.delete(saved)
    return saved_search_id


async def get_saved_search(session: AsyncSession, actor: Actor, saved_search_id: int) -> SavedSearch | None:
    return await session.scalar(
        select(SavedSearch).where(SavedSearch.id == saved_search_id, visible(SavedSearch, actor))
    )


async def _lock(session: AsyncSession, actor: Actor, saved_search_id: int) -> SavedSearch:
    return await lock_visible(session, SavedSearch, actor, saved_search_id, "saved search")


async def _refuse_taken_name(session: AsyncSession, actor: Actor, name: str, own_id: int | None) -> None:
    statement = select(SavedSearch.id).where(visible(SavedSearch, actor), SavedSearch.name == name)
    if own_id is not None:
        statement = statement.where(SavedSearch.id != own_id)
    if await session.scalar(statement) is not None:
        raise _name_taken()


async def _flush(session: AsyncSession, saved: SavedSearch) -> None:
    """Write now; a concurrent save under the same name loses on the unique index and is told so."""
    session.add(saved)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise _name_taken() from None


def _name_taken() -> DomainError:
    return DomainError.single(
        ErrorCode.ALREADY_EXISTS, "the shop already has a saved search with this name", "name"
    )
