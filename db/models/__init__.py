"""SQLAlchemy models, one module per subdomain. Every table carries ``shop_id`` so that data can be scoped and
distributed by shop. Importing this package registers every table on ``Base.metadata``."""

from db.models.base import PK, Base, enum_column
from db.models.cancellations import (
    CancellationMessage,
    CancellationReason,
    CancellationRequest,
    CancellationStatus,
    MessageAuthor,
)
from db.models.idempotency import IdempotencyKey
from db.models.orders import (
    FinancialStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Package,
    SupplierOrder,
    SupplierOrderStatus,
    SupplierRefund,
)
from db.models.shops import AccessToken, ActorKind, Shop, Supplier, TokenKind
from db.models.webhooks import InboundWebhook

__all__ = [
    "PK",
    "AccessToken",
    "ActorKind",
    "Base",
    "CancellationMessage",
    "CancellationReason",
    "CancellationRequest",
    "CancellationStatus",
    "FinancialStatus",
    "IdempotencyKey",
    "InboundWebhook",
    "MessageAuthor",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OrderStatus",
    "Package",
    "Shop",
    "Supplier",
    "SupplierOrder",
    "SupplierOrderStatus",
    "SupplierRefund",
    "TokenKind",
    "enum_column",
]
