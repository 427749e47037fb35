"""Execution artifacts: the files an execution attaches, their bytes in 1 MiB chunks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:00:00.000000

Both tables hang off `executions` by foreign keys with ON DELETE CASCADE, so an execution's files go with it
whoever deletes it. The chunks' `data` is stored EXTERNAL: out of line, uncompressed (screenshots, PDFs and
spreadsheets are compressed already; PostgreSQL would spend CPU to gain nothing).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "execution_artifacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("location", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_execution_artifacts_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_artifacts")),
        sa.UniqueConstraint(
            "execution_id", "attempt", "name", name=op.f("uq_execution_artifacts_execution_id_attempt_name")
        ),
    )
    op.create_table(
        "execution_artifact_chunks",
        sa.Column("artifact_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["execution_artifacts.id"],
            name=op.f("fk_execution_artifact_chunks_artifact_id_execution_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "seq", name=op.f("pk_execution_artifact_chunks")),
    )
    op.execute("ALTER TABLE execution_artifact_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("execution_artifact_chunks")
    op.drop_table("execution_artifacts")
