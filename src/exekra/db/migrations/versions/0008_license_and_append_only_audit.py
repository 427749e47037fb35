"""The installation (hub id and licence), and an append-only audit log

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-03 14:10:00.000000

`installation` has one row: this hub's id, made on first use, and the installed licence sealed with the hub's
key (SPEC §10.7).

`audit_log` refuses UPDATE and DELETE in the database itself (a statement trigger). The one way to delete
audit rows is `exekra_purge_audit_log(before, batch)`, which the retention purge calls: it allows deletes
for its own statement only (the `exekra.audit_purge` setting, local to the transaction, reset before it
returns). docs/security.md describes what this does and does not protect against.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = """
CREATE FUNCTION exekra_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('exekra.audit_purge', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused (old entries are deleted only by exekra_purge_audit_log)',
        TG_OP USING ERRCODE = 'insufficient_privilege';
END $$"""

_PURGE = """
CREATE FUNCTION exekra_purge_audit_log(before timestamptz, batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    deleted integer;
BEGIN
    PERFORM set_config('exekra.audit_purge', 'on', true);
    DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE ts < before ORDER BY id LIMIT batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('exekra.audit_purge', 'off', true);
    RETURN deleted;
END $$"""


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
    op.execute(_REFUSE)
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION exekra_audit_log_append_only()"
    )
    op.execute(_PURGE)


def downgrade() -> None:
    op.execute("DROP FUNCTION exekra_purge_audit_log(timestamptz, integer)")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION exekra_audit_log_append_only()")
    op.drop_table("installation")
