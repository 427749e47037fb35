"""Announce changes of tokens and users (`NOTIFY exekra_auth`), so that every hub process forgets the tokens it
resolved lately (`exekra.hub.auth.owners`)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 12:00:00.000000

Statement triggers, whichever program makes the change: a token deleted (revoked, a session ended) or its hash,
owner or expiry changed; a user's role, state or email changed, or the user deleted; either table truncated.
Writing `last_used_at` (at most once a minute per token) announces nothing. PostgreSQL delivers the
notification when the transaction commits, once per transaction.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ANNOUNCE = """
CREATE FUNCTION exekra_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exekra_auth', '');
    RETURN NULL;
END $$"""


def upgrade() -> None:
    op.execute(_ANNOUNCE)
    op.execute(
        "CREATE TRIGGER auth_tokens_changed AFTER DELETE OR TRUNCATE OR UPDATE OF token_hash, user_id, expires_at "
        "ON auth_tokens FOR EACH STATEMENT EXECUTE FUNCTION exekra_auth_changed()"
    )
    op.execute(
        "CREATE TRIGGER users_changed AFTER DELETE OR TRUNCATE OR UPDATE OF role, disabled, email "
        "ON users FOR EACH STATEMENT EXECUTE FUNCTION exekra_auth_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER users_changed ON users")
    op.execute("DROP TRIGGER auth_tokens_changed ON auth_tokens")
    op.execute("DROP FUNCTION exekra_auth_changed()")
