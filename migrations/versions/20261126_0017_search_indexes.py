"""search indexes: lower-case keys for SKUs and tracking numbers, email domains, trigram and FTS5 text indexes

Revision ID: 0017
Revises: 0015
Create Date: 2026-11-26 13:10:00

PostgreSQL gets the pg_trgm extension and one trigram GIN index over the orders' free-text columns; SQLite gets
an FTS5 trigram table over the same columns, kept in step with ``orders`` by triggers. Neither is a model
object (no declaration means the same thing on both databases); ``db.search.DIALECT_SEARCH_OBJECTS`` names them
so that the model comparison leaves them alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_COLUMNS = ("customer_name", "customer_email", "tags")

_SQLITE_UP = (
    "CREATE VIRTUAL TABLE orders_search USING fts5("
    + ", ".join(_TEXT_COLUMNS)
    + ", content='orders', content_rowid='id', tokenize='trigram')",
    # External content: the triggers feed every change of the orders' text columns to the index.
    "CREATE TRIGGER orders_search_insert AFTER INSERT ON orders BEGIN "
    "INSERT INTO orders_search(rowid, customer_name, customer_email, tags) "
    "VALUES (new.id, new.customer_name, new.customer_email, new.tags); END",
    "CREATE TRIGGER orders_search_delete AFTER DELETE ON orders BEGIN "
    "INSERT INTO orders_search(orders_search, rowid, customer_name, customer_email, tags) "
    "VALUES ('delete', old.id, old.customer_name, old.customer_email, old.tags); END",
    "CREATE TRIGGER orders_search_update AFTER UPDATE OF customer_name, customer_email, tags ON orders BEGIN "
    "INSERT INTO orders_search(orders_search, rowid, customer_name, customer_email, tags) "
    "VALUES ('delete', old.id, old.customer_name, old.customer_email, old.tags); "
    "INSERT INTO orders_search(rowid, customer_name, customer_email, tags) "
    "VALUES (new.id, new.customer_name, new.customer_email, new.tags); END",
    "INSERT INTO orders_search(orders_search) VALUES ('rebuild')",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS orders_search_update",
    "DROP TRIGGER IF EXISTS orders_search_delete",
    "DROP TRIGGER IF EXISTS orders_search_insert",
    "DROP TABLE IF EXISTS orders_search",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_email_domain", sa.String(length=255), nullable=True))
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sku_key", sa.String(length=100), nullable=True))
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracking_key", sa.String(length=100), nullable=True))

    # Existing rows: the database's lower() equals Python's for the ASCII codes these columns hold.
    op.execute("UPDATE order_lines SET sku_key = lower(sku)")
    op.execute("UPDATE packages SET tracking_key = lower(tracking_number)")
    if dialect == "postgresql":
        op.execute(
            "UPDATE orders SET customer_email_domain = lower(substring(customer_email from '@([^@]*)$')) "
            "WHERE customer_email LIKE '%@%'"
        )
    else:
        # SQLite has no regular expressions built in; emails hold one '@' (the import checks them).
        op.execute(
            "UPDATE orders SET customer_email_domain = lower(substr(customer_email, "
            "instr(customer_email, '@') + 1)) WHERE customer_email LIKE '%@%'"
        )
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.alter_column("tracking_key", existing_type=sa.String(length=100), nullable=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_shop_email_domain", ["shop_id", "customer_email_domain"], unique=False
        )
        batch_op.create_index(
            "ix_orders_shop_status", ["shop_id", "status", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_orders_shop_financial_status",
            ["shop_id", "financial_status", "created_at", "id"],
            unique=False,
        )
    # The keyed indexes below replace the plain ones, which no query used once search compared keys.
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_order_lines_sku")
        batch_op.create_index(
            "ix_order_lines_shop_sku_key",
            ["shop_id", "sku_key", "order_id"],
            unique=False,
            postgresql_ops={"sku_key": "text_pattern_ops"},
        )
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_index("ix_packages_tracking_number")
        batch_op.create_index(
            "ix_packages_shop_tracking_key",
            ["shop_id", "tracking_key", "supplier_order_id"],
            unique=False,
            postgresql_ops={"tracking_key": "text_pattern_ops"},
        )
    with op.batch_alter_table("supplier_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_supplier_orders_shop_status_order", ["shop_id", "status", "order_id"], unique=False
        )
        batch_op.create_index(
            "ix_supplier_orders_shop_supplier_order", ["shop_id", "supplier_id", "order_id"], unique=False
        )

    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_orders_search_trgm ON orders USING gin ("
            + ", ".join(f"{column} gin_trgm_ops" for column in _TEXT_COLUMNS)
            + ")"
        )
    elif dialect == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_orders_search_trgm")
        op.execute("DROP EXTENSION IF EXISTS pg_trgm")
    elif dialect == "sqlite":
        for statement in _SQLITE_DOWN:
            op.execute(statement)

    with op.batch_alter_table("supplier_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_supplier_orders_shop_supplier_order")
        batch_op.drop_index("ix_supplier_orders_shop_status_order")
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_index("ix_packages_shop_tracking_key")
        batch_op.drop_column("tracking_key")
        batch_op.create_index("ix_packages_tracking_number", ["tracking_number"], unique=False)
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_order_lines_shop_sku_key")
        batch_op.drop_column("sku_key")
        batch_op.create_index("ix_order_lines_sku", ["sku"], unique=False)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_shop_financial_status")
        batch_op.drop_index("ix_orders_shop_status")
        batch_op.drop_index("ix_orders_shop_email_domain")
        batch_op.drop_column("customer_email_domain")
