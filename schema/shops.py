"""The viewer's shop, its suppliers, and fetching any object by global id."""

from __future__ import annotations

import asyncio

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry.types import Info

from db import models
from domain.access import visible
from schema.context import context_of, forbidden, require_reader
from schema.ids import from_global_id
from schema.types import NODE_TYPES, Node, Shop, Supplier

MAX_NODES = 250


async def _resolve_node(info: Info, id: strawberry.ID) -> Node | None:
    parsed = from_global_id(id)
    if parsed is None:
        return None
    type_name, pk = parsed
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
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await _resolve_node(info, id)

    @strawberry.field(description="Objects by global ids, in the order asked; null for those not found.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise GraphQLError(f"at most {MAX_NODES} ids", extensions={"code": "BAD_USER_INPUT"})
        # Gathered so that the loaders batch ids of one type into one statement.
        return list(await asyncio.gather(*(_resolve_node(info, id) for id in ids)))
