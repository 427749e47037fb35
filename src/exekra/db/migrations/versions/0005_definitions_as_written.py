"""Workflow definitions stored as written: `json` instead of `jsonb`

Revision ID: 0005
Revises: 0007 (the audit indexes landed first, as 0007 on 0004; this one follows them)
Create Date: 2026-12-03 11:30:00.000000

`jsonb` stores an object's keys sorted (shortest first, then bytewise), so a definition came back with
`edges` before `nodes` and a node's `id` after its `activity`. `json` keeps the text as it was sent, and the
hub never queries inside a definition, so nothing needs `jsonb`'s operators or indexes. Definitions saved
before this revision keep the order `jsonb` gave them: the author's order is not known any more.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE workflow_versions ALTER COLUMN definition TYPE json USING definition::json")


def downgrade() -> None:
    op.execute("ALTER TABLE workflow_versions ALTER COLUMN definition TYPE jsonb USING definition::jsonb")
