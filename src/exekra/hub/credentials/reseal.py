"""Re-encryption of the values sealed before migration 0013 (credentials' fields and the installed licence) into
the format of `crypto`: the version marker, bound to their row, under the master key as derived since 0013.

Migration 0013 runs `reseal_legacy` when the secret key is at hand where it runs (EXEKRA_SECRET_KEY, or the key
file under EXEKRA_HOME); every hub process runs it again at start (`reseal_at_start`), so values the migration
could not re-encrypt are re-encrypted before the hub reads them. Both hold one transaction-level advisory lock,
so concurrent runs take turns and the later ones find nothing left. A value that does not decrypt with the old
key is left as it is (it did not decrypt before either) and counted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from exekra.config import Settings
from exekra.db.locks import RESEAL_LOCK
from exekra.db.session import Database
from exekra.hub.credentials.crypto import (
    LICENSE_CONTEXT,
    SEALED_V1,
    DecryptionFailed,
    credential_context,
    credentials_key,
    decrypt_fields,
    decrypt_legacy_fields,
    encrypt_fields,
    encrypt_legacy_fields,
)

log = logging.getLogger(__name__)

BATCH = 500
SecretKeys = Callable[[], tuple[bytes, bytes] | None]
"""(the master key, the master key as derived before 0013), or None when neither is at hand (`Settings.existing_secret_keys`)."""

# How a stored value's first bytes compare with the marker: values of before 0013, values sealed since.
_LEGACY = "IS DISTINCT FROM"
_SEALED = "="


@dataclass
class Rewritten:
    """What one pass did: values rewritten, values that did not decrypt (left as they were), and whether a key
    was at hand."""

    rewritten: int = 0
    undecryptable: int = 0
    keys_missing: bool = False


def reseal_legacy(connection: Connection, keys: SecretKeys, batch: int | None = None) -> Rewritten:
    """Re-encrypt every value sealed before 0013, `batch` rows at a time, on the caller's transaction."""

    def reseal(current: bytes, legacy: bytes, row_id: object, blob: bytes) -> bytes:
        context = LICENSE_CONTEXT if row_id is None else credential_context(str(row_id))
        return encrypt_fields(current, decrypt_legacy_fields(legacy, blob), context)

    return _rewrite(connection, keys, _LEGACY, reseal, batch)


def seal_as_legacy(connection: Connection, keys: SecretKeys, batch: int | None = None) -> Rewritten:
    """The reverse, for the downgrade of 0013: every value sealed since, sealed again as before."""

    def unseal(current: bytes, legacy: bytes, row_id: object, blob: bytes) -> bytes:
        context = LICENSE_CONTEXT if row_id is None else credential_context(str(row_id))
        return encrypt_legacy_fields(legacy, decrypt_fields(current, blob, context))

    return _rewrite(connection, keys, _SEALED, unseal, batch)


async def reseal_at_start(db: Database, settings: Settings) -> Rewritten:
    """`reseal_legacy` with the hub's keys, at the start of a hub process (before anything reads a value)."""
    keys = await asyncio.to_thread(settings.existing_secret_keys)  # a passphrase's scrypt, off the event loop
    async with db.engine.begin() as connection:
        done = await connection.run_sync(reseal_legacy, lambda: keys)
    if done.rewritten:
        log.info("re-encrypted %d values sealed before migration 0013", done.rewritten)
    if done.undecryptable:
        log.warning("%d values sealed before migration 0013 do not decrypt with this hub's key", done.undecryptable)
    return done


def _rewrite(
    connection: Connection,
    keys: SecretKeys,
    comparison: str,
    transform: Callable[[bytes, bytes, object, bytes], bytes],
    batch: int | None,
) -> Rewritten:
    batch = batch or BATCH
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RESEAL_LOCK})
    marker = {"marker": SEALED_V1}
    credentials_where = f"substring(encrypted_fields FROM 1 FOR {len(SEALED_V1)}) {comparison} :marker"
    licence_where = (
        f"license_sealed IS NOT NULL AND substring(license_sealed FROM 1 FOR {len(SEALED_V1)}) {comparison} :marker"
    )
    done = Rewritten()
    pending = connection.execute(
        text(
            f"SELECT EXISTS (SELECT 1 FROM credentials WHERE {credentials_where}) "
            f"OR EXISTS (SELECT 1 FROM installation WHERE {licence_where})"
        ),
        marker,
    ).scalar_one()
    if not pending:
        return done
    resolved = keys()
    if resolved is None:
        done.keys_missing = True
        return done
    current, legacy = (credentials_key(key) for key in resolved)

    def convert(row_id: object, blob: bytes) -> bytes | None:
        try:
            return transform(current, legacy, row_id, blob)
        except DecryptionFailed:
            done.undecryptable += 1
            return None

    after = uuid.UUID(int=0)
    while True:
        rows = connection.execute(
            text(
                f"SELECT id, encrypted_fields FROM credentials WHERE {credentials_where} AND id > :after "
                "ORDER BY id LIMIT :batch"
            ),
            {**marker, "after": after, "batch": batch},
        ).all()
        updates = [{"id": row.id, "blob": blob} for row in rows if (blob := convert(row.id, row.encrypted_fields))]
        if updates:
            connection.execute(text("UPDATE credentials SET encrypted_fields = :blob WHERE id = :id"), updates)
            done.rewritten += len(updates)
        if len(rows) < batch:
            break
        after = rows[-1].id
    licence = connection.execute(text(f"SELECT license_sealed FROM installation WHERE {licence_where}"), marker)
    for (sealed,) in licence.all():
        blob = convert(None, sealed)
        if blob is not None:
            connection.execute(text("UPDATE installation SET license_sealed = :blob"), {"blob": blob})
            done.rewritten += 1
    return done
