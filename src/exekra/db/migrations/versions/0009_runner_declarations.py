"""Runners declare their activities and capabilities; executions require the activities they use

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 15:00:00.000000

`runners.activities` and `runners.capabilities` are what a runner declared at its last sign-in (SPEC §7.3),
`runners.catalogue_digest` lets a heartbeat say "unchanged" in 64 characters, and `runners.plugin_activities`
keeps the catalogue entries (schemas, package, version) of the declared activities the hub does not have built
in, for `GET /api/activities`. `executions.required_activities` holds the activities of its version that not
every runner has (see docs/queue.md), copied when it is queued, as `runner_type` and `required_labels` are.

Every new column has a constant default: adding them rewrites no table. Existing runners declare nothing until
they sign in again (within the hour their token lives); existing executions require nothing more than before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_ARRAY = postgresql.ARRAY(sa.Text())


def upgrade() -> None:
    op.add_column("runners", sa.Column("activities", _TEXT_ARRAY, nullable=False, server_default="{}"))
    op.add_column("runners", sa.Column("capabilities", _TEXT_ARRAY, nullable=False, server_default="{}"))
    op.add_column("runners", sa.Column("catalogue_digest", sa.String(64), nullable=True))
    op.add_column(
        "runners",
        sa.Column("plugin_activities", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.add_column("executions", sa.Column("required_activities", _TEXT_ARRAY, nullable=False, server_default="{}"))


def downgrade() -> None:
    op.drop_column("executions", "required_activities")
    for column in ("plugin_activities", "catalogue_digest", "capabilities", "activities"):
        op.drop_column("runners", column)
