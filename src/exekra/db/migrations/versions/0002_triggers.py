"""Schedule and webhook triggers, and the record of schedule fires

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 23:46:12.303994
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("cron_expression", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "type <> 'SCHEDULE' OR cron_expression IS NOT NULL", name=op.f("ck_triggers_schedule_has_cron")
        ),
        sa.CheckConstraint("type IN ('SCHEDULE','WEBHOOK')", name=op.f("ck_triggers_type")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_triggers_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_triggers_workflow_id_workflows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_triggers_token_hash")),
    )
    op.create_index(
        "ix_triggers_next_fire_at",
        "triggers",
        ["next_fire_at"],
        unique=False,
        postgresql_where="next_fire_at IS NOT NULL",
    )
    op.create_index("ix_triggers_workflow_id", "triggers", ["workflow_id"], unique=False)
    op.create_table(
        "trigger_fires",
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_trigger_fires_execution_id_executions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"], ["triggers.id"], name=op.f("fk_trigger_fires_trigger_id_triggers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trigger_id", "fire_time", name=op.f("pk_trigger_fires")),
    )
    op.create_index(op.f("ix_trigger_fires_execution_id"), "trigger_fires", ["execution_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_trigger_fires_execution_id"), table_name="trigger_fires")
    op.drop_table("trigger_fires")
    op.drop_index("ix_triggers_workflow_id", table_name="triggers")
    op.drop_index("ix_triggers_next_fire_at", table_name="triggers", postgresql_where="next_fire_at IS NOT NULL")
    op.drop_table("triggers")
