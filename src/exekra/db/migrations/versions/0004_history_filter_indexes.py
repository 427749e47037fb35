"""History lists filtered by workflow or runner and status: indexes and planner statistics

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 03:00:00.000000

`(workflow_id, status, created_at, id)` and `(runner_id, status, created_at, id)` give a workflow's or a
runner's newest executions of one status in order, so that a filtered page reads only the rows it shows,
and a capped count reads only index entries. The runner index replaces `(runner_id, status)`, its prefix.

The statistics tell the planner which workflows run on which runners: without them it takes the two filters
as independent and, for a workflow that never ran on the runner, walks the workflow's whole history newest
first looking for rows that do not exist (145 ms at 1,000,000 executions instead of 11 ms).

Indexes are built and dropped CONCURRENTLY so that upgrading a hub with a large history does not block writes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATISTICS = "st_executions_workflow_id_runner_id"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for column in ("workflow_id", "runner_id"):
            op.create_index(
                f"ix_executions_{column}_status_created_at",
                "executions",
                [column, "status", "created_at", "id"],
                unique=False,
                postgresql_concurrently=True,
            )
        op.drop_index("ix_executions_runner_id_status", table_name="executions", postgresql_concurrently=True)
    op.execute(f"CREATE STATISTICS {_STATISTICS} (mcv) ON workflow_id, runner_id FROM executions")
    op.execute("ANALYZE executions")


def downgrade() -> None:
    op.execute(f"DROP STATISTICS {_STATISTICS}")
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_executions_runner_id_status",
            "executions",
            ["runner_id", "status"],
            unique=False,
            postgresql_concurrently=True,
        )
        for column in ("workflow_id", "runner_id"):
            op.drop_index(
                f"ix_executions_{column}_status_created_at", table_name="executions", postgresql_concurrently=True
            )
