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
from db.models.exports import Export, ExportFormat, ExportLayout, ExportStatus
from db.models.order_work import (
    BulkAction,
    BulkActionKind,
    BulkActionResult,
    BulkActionStatus,
    NoteVisibility,
    OrderNote,
    OrderSortKey,
    SavedSearch,
)
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
    "BulkAction",
    "BulkActionKind",
    "BulkActionResult",
    "BulkActionStatus",
    "CancellationMessage",
    "CancellationReason",
    "CancellationRequest",
    "CancellationStatus",
    "Export",
    "ExportFormat",
    "ExportLayout",
    "ExportStatus",
    "FinancialStatus",
    "InboundWebhook",
    "MessageAuthor",
    "NoteVisibility",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OrderNote",
    "OrderSortKey",
    "OrderStatus",
    "Package",
    "SavedSearch",
    "Shop",
    "Supplier",
    "SupplierOrder",
    "SupplierOrderStatus",
    "SupplierRefund",
    "TokenKind",
    "enum_column",
]
