"""Execution retries: a workflow's retry policy, and each retry's link to the execution it retries

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 22:40:00.000000

Existing workflows have no policy (no retries); existing executions are originals (`retry_attempt` 0).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workflows", sa.Column("retry_policy", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("executions", sa.Column("retry_of", sa.Uuid(), nullable=True))
    op.add_column("executions", sa.Column("retry_attempt", sa.Integer(), server_default="0", nullable=False))
    op.create_foreign_key(
        op.f("fk_executions_retry_of_executions"), "executions", "executions", ["retry_of"], ["id"], ondelete="SET NULL"
    )
    op.create_index(
        op.f("uq_executions_retry_of"),
        "executions",
        ["retry_of"],
        unique=True,
        postgresql_where="retry_of IS NOT NULL",
    )
    op.create_index(
        op.f("ix_executions_retry_candidates"),
        "executions",
        ["workflow_id", "completed_at"],
        unique=False,
        postgresql_where="status = 'FAILED'",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_executions_retry_candidates"), table_name="executions")
    op.drop_index(op.f("uq_executions_retry_of"), table_name="executions")
    op.drop_constraint(op.f("fk_executions_retry_of_executions"), "executions", type_="foreignkey")
    op.drop_column("executions", "retry_attempt")
    op.drop_column("executions", "retry_of")
    op.drop_column("workflows", "retry_policy")
