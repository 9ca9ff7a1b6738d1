"""search speed: PostgreSQL GIN index over each order's lower-cased tag array

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-26 17:00:00

``tag:vip`` on PostgreSQL tests ``string_to_array(lower(tags), ',') @> ARRAY['vip']``: this index answers it
exactly, and ANALYZE keeps statistics of the array's elements, so the planner knows a common tag from a rare
one. SQLite keeps answering tags from its FTS5 trigram table. Like the trigram index, it is no model object
(``db.search.DIALECT_SEARCH_OBJECTS`` names it).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_orders_tag_list ON orders USING gin ((string_to_array(lower(tags), ',')))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_orders_tag_list")
