"""Concurrency limits per workflow: the limit and the key template, each execution's key value, and the slots

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 03:30:00.000000

Existing workflows have no limit; existing executions belong to no concurrency group (NULL key).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workflows", sa.Column("max_concurrent", sa.Integer(), nullable=True))
    op.add_column("workflows", sa.Column("concurrency_key", sa.String(length=500), nullable=True))
    op.create_check_constraint(op.f("ck_workflows_max_concurrent"), "workflows", "max_concurrent >= 1")
    op.add_column("executions", sa.Column("concurrency_key", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_executions_concurrency_queue"),
        "executions",
        ["workflow_id", "concurrency_key", sa.text("priority DESC"), "queued_at", "id"],
        unique=False,
        postgresql_where="status = 'QUEUED' AND concurrency_key IS NOT NULL",
    )
    op.create_table(
        "concurrency_slots",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("holders", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_concurrency_slots_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "key", name=op.f("pk_concurrency_slots")),
    )


def downgrade() -> None:
    op.drop_table("concurrency_slots")
    op.drop_index(op.f("ix_executions_concurrency_queue"), table_name="executions")
    op.drop_column("executions", "concurrency_key")
    op.drop_constraint(op.f("ck_workflows_max_concurrent"), "workflows", type_="check")
    op.drop_column("workflows", "concurrency_key")
    op.drop_column("workflows", "max_concurrent")
