"""Indexes for retention: finished executions by completion time, heartbeat metrics by time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:00:00.000000

Built CONCURRENTLY so that upgrading a hub with a large history does not block writes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TERMINAL = "status IN ('COMPLETED','FAILED','STOPPED')"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_executions_terminal_completed_at",
            "executions",
            ["completed_at", "id"],
            unique=False,
            postgresql_where=_TERMINAL,
            postgresql_concurrently=True,
        )
        op.create_index(
            "ix_runner_metrics_ts",
            "runner_metrics",
            ["ts"],
            unique=False,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_runner_metrics_ts", table_name="runner_metrics", postgresql_concurrently=True)
        op.drop_index(
            "ix_executions_terminal_completed_at",
            table_name="executions",
            postgresql_where=_TERMINAL,
            postgresql_concurrently=True,
        )
