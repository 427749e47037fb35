"""An execution's end is announced only when somebody waits for it (`executions.end_awaited`)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 22:00:00.000000

A client waiting for an execution's end (`GET /api/executions/{id}?wait=`, a log stream) sets the flag before it
waits; the statement that ends the execution sends `NOTIFY exekra_finished` only when the flag is set. Every
listening hub process pays a transaction for each notification, so most executions, which nobody waits for,
now send none. Existing executions have nobody waiting (a waiter of a hub being upgraded looks again when its
listener reconnects).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("end_awaited", sa.Boolean(), server_default="false", nullable=False))


def downgrade() -> None:
    op.drop_column("executions", "end_awaited")
