"""cancellations: requests and their messages, supplier refunds, handled inbound webhooks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 21:33:49.801090
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_webhooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("webhook_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_inbound_webhooks_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_inbound_webhooks_supplier_id_suppliers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_webhooks")),
        sa.UniqueConstraint(
            "supplier_id", "webhook_id", name=op.f("uq_inbound_webhooks_supplier_id_webhook_id")
        ),
    )
    with op.batch_alter_table("inbound_webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_webhooks_shop_id"), ["shop_id"], unique=False)

    op.create_table(
        "cancellation_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "INFO_REQUESTED",
                "APPROVED",
                "AUTO_APPROVED",
                "REJECTED",
                "WITHDRAWN",
                "CLOSED",
                name="cancellationstatus",
                native_enum=False,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column(
            "reason",
            sa.Enum(
                "WRONG_PRODUCT_ORDERED",
                "DUPLICATE_ORDER",
                "CUSTOMER_CANCELLED",
                "CHANGE_SHIPPING_ADDRESS",
                "SUPPLIER_OUT_OF_STOCK",
                "CANNOT_CONTACT_SUPPLIER",
                "SUPPLIER_REFUSES_TO_SHIP",
                "OTHER",
                name="cancellationreason",
                native_enum=False,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column("open_key", sa.BigInteger(), nullable=True),
        sa.Column(
            "previous_status",
            sa.Enum(
                "PLACE_ORDER_SUCCESS",
                "PAYMENT_PROCESSING",
                "RISK_CONTROL",
                "WAIT_SELLER_EXAMINE_MONEY",
                "WAIT_SELLER_SEND_GOODS",
                "SELLER_PART_SEND_GOODS",
                "WAIT_BUYER_ACCEPT_GOODS",
                "FUND_PROCESSING",
                "IN_CANCEL",
                "IN_ISSUE",
                "IN_FROZEN",
                "FINISH",
                name="supplierorderstatus",
                native_enum=False,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("respond_by", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_cancellation_requests_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_cancellation_requests_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["supplier_order_id"],
            ["supplier_orders.id"],
            name=op.f("fk_cancellation_requests_supplier_order_id_supplier_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellation_requests")),
        sa.UniqueConstraint("open_key", name=op.f("uq_cancellation_requests_open_key")),
    )
    with op.batch_alter_table("cancellation_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cancellation_requests_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            "ix_cancellation_requests_shop_status", ["shop_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_cancellation_requests_supplier_order_id"), ["supplier_order_id"], unique=False
        )

    op.create_table(
        "supplier_refunds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", db.types.Amount(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_supplier_refunds_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["supplier_order_id"],
            ["supplier_orders.id"],
            name=op.f("fk_supplier_refunds_supplier_order_id_supplier_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supplier_refunds")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_supplier_refunds_source_source_id")),
    )
    with op.batch_alter_table("supplier_refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supplier_refunds_shop_id"), ["shop_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_supplier_refunds_supplier_order_id"), ["supplier_order_id"], unique=False
        )

    op.create_table(
        "cancellation_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "author",
            sa.Enum("MERCHANT", "SUPPLIER", "SYSTEM", name="messageauthor", native_enum=False, length=40),
            nullable=False,
        ),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["cancellation_requests.id"],
            name=op.f("fk_cancellation_messages_request_id_cancellation_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_cancellation_messages_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellation_messages")),
    )
    with op.batch_alter_table("cancellation_messages", schema=None) as batch_op:
        batch_op.create_index("ix_cancellation_messages_request", ["request_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cancellation_messages_shop_id"), ["shop_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cancellation_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cancellation_messages_shop_id"))
        batch_op.drop_index("ix_cancellation_messages_request")

    op.drop_table("cancellation_messages")
    with op.batch_alter_table("supplier_refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supplier_refunds_supplier_order_id"))
        batch_op.drop_index(batch_op.f("ix_supplier_refunds_shop_id"))

    op.drop_table("supplier_refunds")
    with op.batch_alter_table("cancellation_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cancellation_requests_supplier_order_id"))
        batch_op.drop_index("ix_cancellation_requests_shop_status")
        batch_op.drop_index(batch_op.f("ix_cancellation_requests_order_id"))

    op.drop_table("cancellation_requests")
    with op.batch_alter_table("inbound_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_webhooks_shop_id"))

    op.drop_table("inbound_webhooks")
