"""A workflow's revision: counted up by every change of the workflow or of its versions, so that a hub process may
keep what creating an execution reads of it and have the create check, in its own statement, that nothing changed

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 11:30:00.000000

Row triggers, whichever program makes the change: an update of the workflow (its settings, archiving) counts its
revision up before it is written; an insert, update or delete of one of its versions (a new draft, a publish, which
moves the published flag) counts up the workflow's. Nothing else writes `workflows`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WORKFLOW_REVISED = """
CREATE FUNCTION exekra_workflow_revised() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := OLD.revision + 1;
    RETURN NEW;
END $$"""

_VERSION_REVISED = """
CREATE FUNCTION exekra_workflow_version_revised() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workflows SET revision = revision + 1
     WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.workflow_id ELSE NEW.workflow_id END;
    RETURN NULL;
END $$"""


def upgrade() -> None:
    op.add_column("workflows", sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(_WORKFLOW_REVISED)
    op.execute(
        "CREATE TRIGGER workflows_revised BEFORE UPDATE ON workflows FOR EACH ROW "
        "EXECUTE FUNCTION exekra_workflow_revised()"
    )
    op.execute(_VERSION_REVISED)
    op.execute(
        "CREATE TRIGGER workflow_versions_revised AFTER INSERT OR UPDATE OR DELETE ON workflow_versions "
        "FOR EACH ROW EXECUTE FUNCTION exekra_workflow_version_revised()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER workflow_versions_revised ON workflow_versions")
    op.execute("DROP FUNCTION exekra_workflow_version_revised()")
    op.execute("DROP TRIGGER workflows_revised ON workflows")
    op.execute("DROP FUNCTION exekra_workflow_revised()")
    op.drop_column("workflows", "revision")
