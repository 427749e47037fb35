"""The claims' indexes: idle runners in the order the claims read them; no second queue index

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 08:15:00.000000

A claim for a new execution takes the eligible idle runner with the most recent sign of life
(`ORDER BY last_heartbeat_at DESC NULLS LAST … LIMIT 1`). The index was ascending, so every claim read and sorted
all idle runners; in the claim's order, it stops at the first eligible one.

`ix_executions_status_priority_queued_at` served nothing that `ix_executions_queue` (the QUEUED executions in
dispatch order) and `ix_executions_status_created_at` do not, and every change of an execution's status wrote
to it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IDLE = "status = 'ONLINE' AND enabled AND current_execution_id IS NULL"


def upgrade() -> None:
    op.drop_index("ix_executions_status_priority_queued_at", table_name="executions")
    op.drop_index("ix_runners_idle", table_name="runners")
    op.create_index(
        "ix_runners_idle", "runners", [sa.text("last_heartbeat_at DESC NULLS LAST")], postgresql_where=_IDLE
    )


def downgrade() -> None:
    op.drop_index("ix_runners_idle", table_name="runners")
    op.create_index("ix_runners_idle", "runners", ["last_heartbeat_at"], postgresql_where=_IDLE)
    op.create_index(
        "ix_executions_status_priority_queued_at", "executions", ["status", sa.text("priority DESC"), "queued_at"]
    )
