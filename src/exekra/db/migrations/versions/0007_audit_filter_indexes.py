"""Audit log filters: each filter's newest entries in id order from one index

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-03 11:00:00.000000

The audit page pages by id, newest first (keyset), filtered by actor, action or entity. Without an index that
ends in `id`, a filter on a rare action walks the whole log backwards looking for matches. `(action, id)`,
`(actor_id, id)` and `(entity_type, entity_id, id)` give each filter's page from its own index; the last two
replace `(actor_id, ts)` and `(entity_type, entity_id)`.

Indexes are built and dropped CONCURRENTLY so that upgrading a hub with a large log does not block writes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW = {
    "ix_audit_log_action_id": ["action", "id"],
    "ix_audit_log_actor_id_id": ["actor_id", "id"],
    "ix_audit_log_entity_id": ["entity_type", "entity_id", "id"],
}
_OLD = {"ix_audit_log_actor_id_ts": ["actor_id", "ts"], "ix_audit_log_entity": ["entity_type", "entity_id"]}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in _NEW.items():
            op.create_index(name, "audit_log", columns, unique=False, postgresql_concurrently=True)
        for name in _OLD:
            op.drop_index(name, table_name="audit_log", postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in _OLD.items():
            op.create_index(name, "audit_log", columns, unique=False, postgresql_concurrently=True)
        for name in _NEW:
            op.drop_index(name, table_name="audit_log", postgresql_concurrently=True)
