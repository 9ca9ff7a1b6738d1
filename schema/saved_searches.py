"""Saved order views: list, create, change and delete the shop's named searches."""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from db import models
from domain import saved_searches as saved_search_cases
from domain.access import visible
from domain.actors import Scope
from schema.context import context_of, require_scope
from schema.errors import UserError, run_on_id, run_use_case
from schema.pagination import After, Connection, First, PageRequest, keyset_page, str_sort
from schema.types import OrderSortKeys, SavedSearch


@strawberry.input
class SavedSearchCreateInput:
    name: str
    query: str = strawberry.field(default="", description="The search syntax of `orders(query:)`.")
    sort_key: OrderSortKeys = models.OrderSortKey.CREATED_AT  # type: ignore[valid-type]
    reverse: bool = False


@strawberry.input
class SavedSearchUpdateInput:
    id: strawberry.ID
    name: str | None = None
    query: str | None = None
    sort_key: OrderSortKeys | None = None  # type: ignore[valid-type]
    reverse: bool | None = None


@strawberry.input
class SavedSearchDeleteInput:
    id: strawberry.ID


@strawberry.type
class SavedSearchPayload:
    saved_search: SavedSearch | None
    user_errors: list[UserError]


@strawberry.type
class SavedSearchDeletePayload:
    deleted_saved_search_id: strawberry.ID | None
    user_errors: list[UserError]


def _node(row: models.SavedSearch | None) -> SavedSearch | None:
    return SavedSearch.of(row) if row else None


@strawberry.type
class SavedSearchesQuery:
    @strawberry.field(description="The shop's saved order views, by name; every merchant token sees them.")
    async def saved_searches(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[SavedSearch]:
        actor = require_scope(info, Scope.READ_ORDERS)
        statement = select(models.SavedSearch).where(visible(models.SavedSearch, actor))
        return await keyset_page(
            context_of(info),
            statement,
            str_sort(models.SavedSearch.name),
            models.SavedSearch.id,
            PageRequest(first, after, None, None),
            to_node=SavedSearch.of,
        )


@strawberry.type
class SavedSearchesMutation:
    @strawberry.mutation(
        description="Save an order view; its query must parse, its name is unique in the shop."
    )
    async def saved_search_create(
        self,
        info: Info,
        input: Annotated[
            SavedSearchCreateInput, strawberry.argument(description="The fields of the change.")
        ],
    ) -> SavedSearchPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        data = saved_search_cases.SavedSearchInput(
            name=input.name, query=input.query, sort_key=input.sort_key, reverse=input.reverse
        )
        row, errors = await run_use_case(
            info, lambda session, actor: saved_search_cases.create_saved_search(session, actor, data)
        )
        return SavedSearchPayload(saved_search=_node(row), user_errors=errors)

    @strawberry.mutation(description="Change a saved view's name, query or sort; fields left out stay.")
    async def saved_search_update(
        self,
        info: Info,
        input: Annotated[
            SavedSearchUpdateInput, strawberry.argument(description="The fields of the change.")
        ],
    ) -> SavedSearchPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        data = saved_search_cases.SavedSearchInput(
            name=input.name, query=input.query, sort_key=input.sort_key, reverse=input.reverse
        )
        row, errors = await run_on_id(
            info,
            input.id,
            "SavedSearch",
            "id",
            lambda session, actor, pk: saved_search_cases.update_saved_search(session, actor, pk, data),
        )
        return SavedSearchPayload(saved_search=_node(row), user_errors=errors)

    @strawberry.mutation(description="Delete a saved view of the shop.")
    async def saved_search_delete(
        self,
        info: Info,
        input: Annotated[
            SavedSearchDeleteInput, strawberry.argument(description="The fields of the change.")
        ],
    ) -> SavedSearchDeletePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        deleted, errors = await run_on_id(
            info,
            input.id,
            "SavedSearch",
            "id",
            lambda session, actor, pk: saved_search_cases.delete_saved_search(session, actor, pk),
        )
        return SavedSearchDeletePayload(
            deleted_saved_search_id=input.id if deleted is not None else None, user_errors=errors
        )
