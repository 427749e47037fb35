"""Credentials' fields and the licence are sealed with a version marker, bound to their row, under the master key
as derived since this version

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:00:00.000000

No column changes: every value sealed before is re-encrypted in place, in batches
(`exekra.hub.credentials.reseal`). That needs the hub's secret key: EXEKRA_SECRET_KEY (and
EXEKRA_PREVIOUS_SECRET_KEY when it changed), or the key file under EXEKRA_HOME, as the hub reads them. Where
neither is at hand the values are left as they are and every hub process re-encrypts them at start, under the
same advisory lock, before it reads one. The downgrade seals them again as before (it needs the key too).
"""

import logging
from collections.abc import Sequence

from alembic import context, op

from exekra.config import Settings, get_settings
from exekra.hub.credentials.reseal import reseal_legacy, seal_as_legacy

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)


def _settings() -> Settings:
    """The settings `exekra db upgrade` or `exekra up` passed, else those of the environment."""
    given = context.config.attributes.get("settings")
    return given if isinstance(given, Settings) else get_settings()


def upgrade() -> None:
    done = reseal_legacy(op.get_bind(), _settings().existing_secret_keys)
    if done.keys_missing:
        log.warning("0013: no secret key here; the hub re-encrypts the stored credentials and licence at start")
    if done.undecryptable:
        log.warning("0013: %d stored values do not decrypt with the secret key; left as they are", done.undecryptable)


def downgrade() -> None:
    # Before 0013 the hub derived its key from EXEKRA_SECRET_KEY alone: seal for that, not for a previous key.
    settings = _settings().model_copy(update={"previous_secret_key": None})
    done = seal_as_legacy(op.get_bind(), settings.existing_secret_keys)
    if done.keys_missing or done.undecryptable:
        raise RuntimeError(
            "0013 downgrade: the stored credentials and licence cannot be sealed as before without the secret key "
            "they were sealed with (EXEKRA_SECRET_KEY or the key file)"
        )
