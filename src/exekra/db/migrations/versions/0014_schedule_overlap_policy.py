"""Schedule triggers get an overlap policy (allow, skip, queue_one), the fire waiting under queue_one, and the
record of skipped fires

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 18:45:00.000000

Every existing trigger keeps today's behaviour (`allow`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("triggers", sa.Column("overlap_policy", sa.String(length=16), server_default="allow", nullable=False))
    op.create_check_constraint(
        op.f("ck_triggers_overlap_policy"), "triggers", "overlap_policy IN ('allow','skip','queue_one')"
    )
    op.add_column("triggers", sa.Column("waiting_fire_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("triggers", sa.Column("last_skipped_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("triggers", sa.Column("last_skip_reason", sa.Text(), nullable=True))
    op.add_column("trigger_fires", sa.Column("skip_reason", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_executions_live_triggered_by"),
        "executions",
        ["triggered_by"],
        unique=False,
        postgresql_where="status IN ('QUEUED','ASSIGNED','RUNNING')",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_executions_live_triggered_by"), table_name="executions")
    op.drop_column("trigger_fires", "skip_reason")
    op.drop_column("triggers", "last_skip_reason")
    op.drop_column("triggers", "last_skipped_at")
    op.drop_column("triggers", "waiting_fire_at")
    op.drop_constraint(op.f("ck_triggers_overlap_policy"), "triggers", type_="check")
    op.drop_column("triggers", "overlap_policy")
