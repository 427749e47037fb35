"""Sub-workflows: a child execution's link to its parent and the key of the call that started it

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 10:00:00.000000

Existing executions are top-level (no parent) and have no children.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "status IN ('QUEUED','ASSIGNED','RUNNING')"


def upgrade() -> None:
    op.add_column("executions", sa.Column("parent_id", sa.Uuid(), nullable=True))
    op.add_column("executions", sa.Column("parent_key", sa.String(length=255), nullable=True))
    op.add_column("executions", sa.Column("has_children", sa.Boolean(), server_default="false", nullable=False))
    op.create_foreign_key(
        op.f("fk_executions_parent_id_executions"),
        "executions",
        "executions",
        ["parent_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("uq_executions_parent_key"),
        "executions",
        ["parent_id", "parent_key"],
        unique=True,
        postgresql_where="parent_id IS NOT NULL",
    )
    op.create_index(
        op.f("ix_executions_live_children"),
        "executions",
        ["parent_id"],
        unique=False,
        postgresql_where=f"parent_id IS NOT NULL AND {_LIVE}",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_executions_live_children"), table_name="executions")
    op.drop_index(op.f("uq_executions_parent_key"), table_name="executions")
    op.drop_constraint(op.f("fk_executions_parent_id_executions"), "executions", type_="foreignkey")
    op.drop_column("executions", "has_children")
    op.drop_column("executions", "parent_key")
    op.drop_column("executions", "parent_id")
