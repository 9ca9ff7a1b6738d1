"""Who the bearer token acts for: a shop's staff, a supplier or the platform admin."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from db import models
from schema.context import context_of
from schema.types import ActorKind, Shop, Supplier


@strawberry.type(description="The identity behind the bearer token of this request.")
class Viewer:
    kind: ActorKind = strawberry.field(  # type: ignore[valid-type]
        description="MERCHANT (a shop's staff), SUPPLIER or ADMIN (the platform)."
    )
    name: str = strawberry.field(description="The token's name, as the audit trail shows it.")
    scopes: list[str] = strawberry.field(
        description="What a merchant token may do; suppliers and admins act through their role (empty)."
    )
    expires_at: datetime | None = strawberry.field(description="When the token expires; null when never.")
    shop: Shop | None = strawberry.field(description="The shop of a merchant token.")
    supplier: Supplier | None = strawberry.field(description="The supplier of a supplier token.")


@strawberry.type
class ViewerQuery:
    @strawberry.field(description="Who this token acts for; answers for every kind of token.")
    async def viewer(self, info: Info) -> Viewer:
        context = context_of(info)
        actor = context.actor
        shop = supplier = None
        if actor.is_merchant and actor.shop_id is not None:
            shop_row = await context.loaders.shop.load(actor.shop_id)
            shop = Shop.of(shop_row) if shop_row else None
        if actor.is_supplier and actor.supplier_id is not None:
            supplier_row = await context.loaders.supplier.load(actor.supplier_id)
            supplier = Supplier.of(supplier_row) if supplier_row else None
        expires_at = None
        if actor.token_id is not None:
            async with context.reading() as session:
                token = await session.get(models.AccessToken, actor.token_id)
                expires_at = token.expires_at if token else None
        return Viewer(
            kind=actor.kind,
            name=actor.name,
            scopes=sorted(actor.scopes),
            expires_at=expires_at,
            shop=shop,
            supplier=supplier,
        )
