"""The viewer's shop, its suppliers, and fetching any object by global id."""

from __future__ import annotations

import asyncio
from typing import Annotated

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry.types import Info

from db import models
from domain.access import visible
from schema.context import context_of, forbidden, require_reader
from schema.ids import id_argument
from schema.types import NODE_TYPES, Node, Shop, Supplier

MAX_NODES = 250


async def _resolve_node(info: Info, id: strawberry.ID, argument: str) -> Node | None:
    type_name, pk = id_argument(id, NODE_TYPES.keys(), argument)
    loader = context_of(info).loaders.by_type(type_name)
    if loader is None:
        return None
    row = await loader.load(pk)
    return NODE_TYPES[type_name].of(row) if row else None  # type: ignore[no-any-return]


@strawberry.type
class ShopsQuery:
    @strawberry.field(description="The shop the token belongs to.")
    async def shop(self, info: Info) -> Shop:
        context = context_of(info)
        if not context.actor.is_merchant or context.actor.shop_id is None:
            raise forbidden("shop is for merchant tokens")
        row = await context.loaders.shop.load(context.actor.shop_id)
        assert row is not None
        return Shop.of(row)

    @strawberry.field(description="Suppliers of the shop; a supplier sees itself.")
    async def suppliers(self, info: Info) -> list[Supplier]:
        context = context_of(info)
        actor = require_reader(info)
        async with context.reading() as session:
            rows = (
                await session.execute(
                    select(models.Supplier)
                    .where(visible(models.Supplier, actor))
                    .order_by(models.Supplier.id)
                )
            ).scalars()
            return [Supplier.of(row) for row in rows]

    @strawberry.field(description="Any object by its global id; null when it does not exist or is not yours.")
    async def node(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="A global id, gid://dropdesk/<Type>/<number>.")
        ],
    ) -> Node | None:
        return await _resolve_node(info, id, "id")

    @strawberry.field(description="Objects by global ids, in the order asked; null for those not found.")
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Up to 250 global ids.")],
    ) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise GraphQLError(f"at most {MAX_NODES} ids", extensions={"code": "BAD_USER_INPUT"})
        # Gathered so that the loaders batch ids of one type into one statement.
        for index, id in enumerate(ids):
            id_argument(id, NODE_TYPES.keys(), f"ids[{index}]")
        return list(await asyncio.gather(*(_resolve_node(info, id, f"ids[{i}]") for i, id in enumerate(ids))))
