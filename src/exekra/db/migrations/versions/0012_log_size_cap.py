"""Each execution's log has a size cap: the bytes stored so far, and the lines dropped past the cap

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:50:00.000000

Both columns are added with a constant default, which PostgreSQL records in the catalogue without rewriting
the table. Executions from before count from zero.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("log_bytes", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("executions", sa.Column("log_dropped", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("executions", "log_dropped")
    op.drop_column("executions", "log_bytes")
