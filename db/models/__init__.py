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
from db.models.disputes import (
    Dispute,
    DisputeAttachment,
    DisputeKind,
    DisputeMessage,
    DisputeMessageAuthor,
    DisputeOutcome,
    DisputeReason,
    DisputeResolutionAction,
    DisputeResponseAction,
    DisputeStatus,
)
from db.models.exports import Export, ExportFormat, ExportLayout, ExportStatus
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
from db.models.outbound_webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from db.models.policies import PolicyKind, ReturnShippingPayer, ShopPolicy
from db.models.refunds import Refund, RefundLine
from db.models.returns import (
    Return,
    ReturnDeclineReason,
    ReturnDisposition,
    ReturnedStock,
    ReturnLine,
    ReturnReason,
    ReturnReceipt,
    ReturnStatus,
    StockCondition,
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
    "DeliveryStatus",
    "Dispute",
    "DisputeAttachment",
    "DisputeKind",
    "DisputeMessage",
    "DisputeMessageAuthor",
    "DisputeOutcome",
    "DisputeReason",
    "DisputeResolutionAction",
    "DisputeResponseAction",
    "DisputeStatus",
    "Export",
    "ExportFormat",
    "ExportLayout",
    "ExportStatus",
    "FinancialStatus",
    "IdempotencyKey",
    "InboundWebhook",
    "MessageAuthor",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OrderStatus",
    "Package",
    "PolicyKind",
    "Refund",
    "RefundLine",
    "Return",
    "ReturnDeclineReason",
    "ReturnDisposition",
    "ReturnLine",
    "ReturnReason",
    "ReturnReceipt",
    "ReturnShippingPayer",
    "ReturnStatus",
    "ReturnedStock",
    "Shop",
    "ShopPolicy",
    "StockCondition",
    "Supplier",
    "SupplierOrder",
    "SupplierOrderStatus",
    "SupplierRefund",
    "TokenKind",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "enum_column",
]
