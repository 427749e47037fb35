"""The installation: this hub's id and its licence

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-03 14:10:00.000000

`installation` has one row: this hub's id, made on first use, and the installed licence sealed with the hub's
key (SPEC §10.7).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "installation",
        sa.Column("singleton", sa.Boolean(), nullable=False),
        sa.Column("hub_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("license_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("license_installed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("license_status", sa.String(length=16), server_default="community", nullable=False),
        sa.CheckConstraint("singleton", name=op.f("ck_installation_singleton")),
        sa.CheckConstraint(
            "license_status IN ('active','expired','community')", name=op.f("ck_installation_license_status")
        ),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_installation")),
    )


def downgrade() -> None:
    op.drop_table("installation")
