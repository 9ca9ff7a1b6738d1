"""disputes: disputes, their messages and evidence attachments

Revision ID: 0011
Revises: 0014
Create Date: 2026-11-26 13:07:54.494133
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0011"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "AWAITING_SUPPLIER",
                "SUPPLIER_RESPONDED",
                "ESCALATED",
                "AWAITING_RETURN",
                "RESOLVED",
                "CANCELLED",
                name="disputestatus",
                native_enum=False,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column(
            "reason",
            sa.Enum(
                "NOT_RECEIVED",
                "NOT_AS_DESCRIBED",
                "QUALITY_ISSUE",
                "DAMAGED",
                "WRONG_ITEM",
                "MISSING_PARTS",
                "PAYMENT_PROBLEM",
                "OTHER",
                name="disputereason",
                native_enum=False,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum("REFUND_ONLY", "RETURN_AND_REFUND", name="disputekind", native_enum=False, length=40),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("requested_amount", db.types.Amount(), nullable=False),
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
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("respond_by", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "proposal_action",
            sa.Enum(
                "PROPOSE_REFUND",
                "PROPOSE_RESEND",
                "REFUSE",
                name="disputeresponseaction",
                native_enum=False,
                length=40,
            ),
            nullable=True,
        ),
        sa.Column("proposal_amount", db.types.Amount(), nullable=True),
        sa.Column("proposed_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum("AGREED", "MERCHANT", "SUPPLIER", name="disputeoutcome", native_enum=False, length=40),
            nullable=True,
        ),
        sa.Column(
            "resolution_action",
            sa.Enum("REFUND", "RESEND", "NONE", name="disputeresolutionaction", native_enum=False, length=40),
            nullable=True,
        ),
        sa.Column("resolution_amount", db.types.Amount(), nullable=True),
        sa.Column(
            "decided_by",
            sa.Enum(
                "MERCHANT", "SUPPLIER", "ADMIN", "SYSTEM", name="actorkind", native_enum=False, length=40
            ),
            nullable=True,
        ),
        sa.Column("decided_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("return_tracking_number", sa.String(length=100), nullable=True),
        sa.Column("return_carrier", sa.String(length=100), nullable=True),
        sa.Column("return_shipped_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_disputes_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_disputes_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["supplier_order_id"],
            ["supplier_orders.id"],
            name=op.f("fk_disputes_supplier_order_id_supplier_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("open_key", name=op.f("uq_disputes_open_key")),
    )
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disputes_order_id"), ["order_id"], unique=False)
        batch_op.create_index("ix_disputes_shop_status", ["shop_id", "status", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_disputes_supplier_order_id"), ["supplier_order_id"], unique=False
        )

    op.create_table(
        "dispute_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dispute_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "author",
            sa.Enum(
                "MERCHANT",
                "SUPPLIER",
                "PLATFORM",
                "SYSTEM",
                name="disputemessageauthor",
                native_enum=False,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["disputes.id"],
            name=op.f("fk_dispute_messages_dispute_id_disputes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_dispute_messages_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_messages")),
    )
    with op.batch_alter_table("dispute_messages", schema=None) as batch_op:
        batch_op.create_index("ix_dispute_messages_dispute", ["dispute_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispute_messages_shop_id"), ["shop_id"], unique=False)

    op.create_table(
        "dispute_attachments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dispute_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=True),
        sa.Column("storage_key", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["disputes.id"],
            name=op.f("fk_dispute_attachments_dispute_id_disputes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["dispute_messages.id"],
            name=op.f("fk_dispute_attachments_message_id_dispute_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_dispute_attachments_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_attachments")),
    )
    with op.batch_alter_table("dispute_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispute_attachments_dispute_id"), ["dispute_id"], unique=False)
        batch_op.create_index("ix_dispute_attachments_message", ["message_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispute_attachments_shop_id"), ["shop_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dispute_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispute_attachments_shop_id"))
        batch_op.drop_index("ix_dispute_attachments_message")
        batch_op.drop_index(batch_op.f("ix_dispute_attachments_dispute_id"))

    op.drop_table("dispute_attachments")
    with op.batch_alter_table("dispute_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispute_messages_shop_id"))
        batch_op.drop_index("ix_dispute_messages_dispute")

    op.drop_table("dispute_messages")
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disputes_supplier_order_id"))
        batch_op.drop_index("ix_disputes_shop_status")
        batch_op.drop_index(batch_op.f("ix_disputes_order_id"))

    op.drop_table("disputes")
