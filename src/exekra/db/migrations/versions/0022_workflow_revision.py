"""A workflow's revision: renewed at every change of the workflow or of its versions, so that a hub process may keep
what creating an execution reads of it and have the create check, in its own statement, that nothing changed

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 11:30:00.000000

Revisions come from one sequence, so a number is never given twice, whatever the workflow (a workflow deleted and
inserted again with the same id gets a new one). Triggers, whichever program makes the change: an update of the
workflow (its settings, archiving) takes a new revision before it is written; an insert, update or delete of one of
its versions (a new draft, a publish, which moves the published flag) gives the workflow a new one; emptying the
versions table (TRUNCATE) gives every workflow a new one. Changes made with triggers disabled (a restore with
`--disable-triggers`, `session_replication_role = replica`) are not counted: restart the hub processes after one.
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
    NEW.revision := nextval('workflow_revisions');
    RETURN NEW;
END $$"""

_VERSION_REVISED = """
CREATE FUNCTION exekra_workflow_version_revised() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE workflows SET revision = 0;  -- each row takes a new revision (exekra_workflow_revised)
    ELSE
        UPDATE workflows SET revision = 0
         WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.workflow_id ELSE NEW.workflow_id END;
    END IF;
    RETURN NULL;
END $$"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE workflow_revisions")
    op.add_column(
        "workflows",
        sa.Column("revision", sa.BigInteger(), server_default=sa.text("nextval('workflow_revisions')"), nullable=False),
    )
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
    op.execute(
        "CREATE TRIGGER workflow_versions_emptied AFTER TRUNCATE ON workflow_versions "
        "FOR EACH STATEMENT EXECUTE FUNCTION exekra_workflow_version_revised()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER workflow_versions_emptied ON workflow_versions")
    op.execute("DROP TRIGGER workflow_versions_revised ON workflow_versions")
    op.execute("DROP FUNCTION exekra_workflow_version_revised()")
    op.execute("DROP TRIGGER workflows_revised ON workflows")
    op.execute("DROP FUNCTION exekra_workflow_revised()")
    op.drop_column("workflows", "revision")
    op.execute("DROP SEQUENCE workflow_revisions")
