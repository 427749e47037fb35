"""Log lines name their node, and mark a node's start and end: the execution graph is drawn from them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 17:30:00.000000

Both columns are nullable (lines from before, and lines outside any node, have none), so adding them rewrites
nothing. The partial index holds only the few lines per execution that carry an event (a node's start, end or
skip): the node states of an execution are one short index range, however long its log.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("execution_logs", sa.Column("node", sa.String(length=255), nullable=True))
    op.add_column("execution_logs", sa.Column("event", sa.String(length=16), nullable=True))
    op.create_index(
        "ix_execution_logs_node_events",
        "execution_logs",
        ["execution_id", "seq"],
        postgresql_where=sa.text("event IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_execution_logs_node_events", table_name="execution_logs")
    op.drop_column("execution_logs", "event")
    op.drop_column("execution_logs", "node")
