"""Who is acting: the identity behind a request, a webhook or a background job."""

from __future__ import annotations

from dataclasses import dataclass, field

from db.models import ActorKind


class Scope:
    READ_ORDERS = "read_orders"
    WRITE_ORDERS = "write_orders"
    WRITE_EXPORTS = "write_exports"
    WRITE_WEBHOOKS = "write_webhooks"
    WRITE_POLICIES = "write_policies"

    ALL: tuple[str, ...] = (READ_ORDERS, WRITE_ORDERS, WRITE_EXPORTS, WRITE_WEBHOOKS, WRITE_POLICIES)


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str
    shop_id: int | None = None
    supplier_id: int | None = None
    token_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_merchant(self) -> bool:
        return self.kind is ActorKind.MERCHANT

    @property
    def is_supplier(self) -> bool:
        return self.kind is ActorKind.SUPPLIER

    @property
    def is_admin(self) -> bool:
        return self.kind is ActorKind.ADMIN

    def has_scope(self, scope: str) -> bool:
        # Suppliers and admins act through their role, not merchant scopes.
        return not self.is_merchant or scope in self.scopes

    @classmethod
    def system(cls, shop_id: int | None = None, name: str = "Dropdesk") -> Actor:
        return cls(kind=ActorKind.SYSTEM, name=name, shop_id=shop_id)
