"""Schema migrations: an empty database upgrades to head, models and migrations agree, the hub refuses stale schemas;
0013 re-encrypts the values sealed before it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from alembic import command
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from exekra.config import Settings, to_asyncpg_url
from exekra.db.migrate import DatabaseNotMigrated, alembic_config, current_revision, ensure_migrated, head_revision
from exekra.db.session import Database
from exekra.embedded import create_database, drop_database
from exekra.hub.credentials import reseal
from exekra.hub.credentials.crypto import (
    LICENSE_CONTEXT,
    NONCE_BYTES,
    SEALED_V1,
    credential_context,
    credentials_key,
    decrypt_fields,
    decrypt_legacy_fields,
)
from exekra.hub.credentials.reseal import reseal_at_start
from exekra.hub.effects import EffectApplier


@pytest.fixture
def empty_database_url(pg_server_url: str) -> object:
    name = f"exekra_mig_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    yield url
    drop_database(pg_server_url, name)


async def test_empty_database_is_refused_then_upgrades_to_head_without_drift(empty_database_url: str) -> None:
    with pytest.raises(DatabaseNotMigrated, match="exekra db upgrade"):
        await ensure_migrated(empty_database_url)
    cfg = alembic_config(empty_database_url)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    assert await current_revision(empty_database_url) == head_revision()
    await ensure_migrated(empty_database_url)
    # `alembic check`: autogenerate finds nothing to do, so models and migrations agree.
    await asyncio.to_thread(command.check, cfg)


async def test_downgrade_to_base_and_upgrade_again(empty_database_url: str) -> None:
    cfg = alembic_config(empty_database_url)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    await asyncio.to_thread(command.downgrade, cfg, "base")
    assert await current_revision(empty_database_url) is None
    await asyncio.to_thread(command.upgrade, cfg, "head")
    assert await current_revision(empty_database_url) == head_revision()


async def _history_filter_objects(database_url: str) -> dict[str, bool]:
    """Which of the indexes and statistics that 0004 swaps exist."""
    names = {
        "ix_executions_workflow_id_status_created_at": "SELECT to_regclass(:name) IS NOT NULL",
        "ix_executions_runner_id_status_created_at": "SELECT to_regclass(:name) IS NOT NULL",
        "ix_executions_runner_id_status": "SELECT to_regclass(:name) IS NOT NULL",
        "st_executions_workflow_id_runner_id": "SELECT EXISTS (SELECT 1 FROM pg_statistic_ext WHERE stxname = :name)",
    }
    engine = create_async_engine(to_asyncpg_url(database_url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return {
                name: bool((await connection.execute(text(sql), {"name": name})).scalar_one())
                for name, sql in names.items()
            }
    finally:
        await engine.dispose()


async def test_0004_swaps_in_the_history_filter_indexes_and_statistics_and_back(empty_database_url: str) -> None:
    before = {
        "ix_executions_workflow_id_status_created_at": False,
        "ix_executions_runner_id_status_created_at": False,
        "ix_executions_runner_id_status": True,
        "st_executions_workflow_id_runner_id": False,
    }
    cfg = alembic_config(empty_database_url)
    await asyncio.to_thread(command.upgrade, cfg, "0003")
    assert await _history_filter_objects(empty_database_url) == before
    await asyncio.to_thread(command.upgrade, cfg, "0004")
    assert await _history_filter_objects(empty_database_url) == {name: not held for name, held in before.items()}
    await asyncio.to_thread(command.downgrade, cfg, "0003")
    assert await _history_filter_objects(empty_database_url) == before


def test_connection_limit_in_database_url_sets_pool_size() -> None:
    from exekra.config import Settings

    settings = Settings(database_url="postgresql://u:p@db:5432/exekra?connection_limit=7&sslmode=disable")
    assert settings.pool_size == 7
    assert settings.sqlalchemy_url == "postgresql+asyncpg://u:p@db:5432/exekra?sslmode=disable"
    assert urlsplit(Settings(database_url="postgresql+asyncpg://h/db").sqlalchemy_url).scheme == "postgresql+asyncpg"


# --- 0013: values sealed before are re-encrypted, bound to their row -------------------------------------

NEW_KEY = base64.b64encode(bytes(range(32))).decode()
LEGACY_MASTER = hashlib.sha256(NEW_KEY.encode()).digest()  # how the hub derived its key from this value before 0013
LICENCE_TEXT = '{"license": {"licensee": "Old Ltd"}, "signature": "x"}'


def _legacy_blob(fields: dict[str, str], master: bytes = LEGACY_MASTER) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(credentials_key(master)).encrypt(nonce, json.dumps(fields).encode(), None)


async def _sql(database_url: str, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
    engine = create_async_engine(to_asyncpg_url(database_url), poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params or {})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _seed_0012(database_url: str, credentials: int) -> dict[uuid.UUID, bytes]:
    """A database at 0012 holding `credentials` credentials and a licence sealed the old way, and one credential
    sealed under another key."""
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "0012")
    stored = {uuid.uuid4(): _legacy_blob({"token": f"t-{i}"}) for i in range(credentials)}
    stored[uuid.uuid4()] = _legacy_blob({"token": "lost"}, master=b"x" * 32)
    for i, (credential_id, blob) in enumerate(stored.items()):
        await _sql(
            database_url,
            "INSERT INTO credentials (id, name, type, encrypted_fields) VALUES (:id, :name, 'generic', :blob)",
            {"id": credential_id, "name": f"c{i}", "blob": blob},
        )
    await _sql(
        database_url,
        "INSERT INTO installation (singleton, hub_id, license_sealed) VALUES (true, 'hub_old', :blob)",
        {"blob": _legacy_blob({"license": LICENCE_TEXT})},
    )
    return stored


async def _stored(database_url: str) -> tuple[dict[uuid.UUID, bytes], bytes]:
    rows = await _sql(database_url, "SELECT id, encrypted_fields FROM credentials")
    [(licence,)] = await _sql(database_url, "SELECT license_sealed FROM installation")
    return {row.id: row.encrypted_fields for row in rows}, licence


def _assert_resealed(before: dict[uuid.UUID, bytes], after: dict[uuid.UUID, bytes], licence: bytes) -> None:
    key = credentials_key(bytes(range(32)))
    lost = [credential_id for credential_id, blob in before.items() if after[credential_id] == blob]
    assert len(lost) == 1  # the one sealed under another key is left as it was
    for i, credential_id in enumerate(credential_id for credential_id in before if credential_id not in lost):
        assert after[credential_id].startswith(SEALED_V1)
        assert decrypt_fields(key, after[credential_id], credential_context(credential_id)) == {"token": f"t-{i}"}
    assert decrypt_fields(key, licence, LICENSE_CONTEXT) == {"license": LICENCE_TEXT}


async def test_0013_re_encrypts_every_old_value_in_batches_and_the_downgrade_seals_them_as_before(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await _seed_0012(empty_database_url, credentials=5)
    monkeypatch.setattr(reseal, "BATCH", 2)
    settings = Settings(home=tmp_path, secret_key=NEW_KEY)
    cfg = alembic_config(empty_database_url, settings)
    await asyncio.to_thread(command.upgrade, cfg, "0013")
    after, licence = await _stored(empty_database_url)
    _assert_resealed(before, after, licence)

    await asyncio.to_thread(command.downgrade, cfg, "0012")
    downgraded, licence = await _stored(empty_database_url)
    legacy = credentials_key(LEGACY_MASTER)
    for credential_id, blob in downgraded.items():
        if after[credential_id] == before[credential_id]:
            assert blob == before[credential_id]  # never re-encrypted: left alone
        else:
            assert decrypt_legacy_fields(legacy, blob) == decrypt_legacy_fields(legacy, before[credential_id])
    assert decrypt_legacy_fields(legacy, licence) == {"license": LICENCE_TEXT}


async def test_without_the_key_0013_leaves_old_values_and_the_hub_re_encrypts_them_at_start(
    empty_database_url: str, tmp_path: Path
) -> None:
    before = await _seed_0012(empty_database_url, credentials=3)
    keyless = Settings(home=tmp_path / "empty-home", secret_key=None)
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url, keyless), "0013")
    left, licence = await _stored(empty_database_url)
    assert left == before and not licence.startswith(SEALED_V1)
    assert not (tmp_path / "empty-home").exists()  # the migration made no key file

    settings = Settings(home=tmp_path, secret_key=NEW_KEY, database_url=empty_database_url)
    db = Database(settings, EffectApplier())
    try:
        first, second = await asyncio.gather(reseal_at_start(db, settings), reseal_at_start(db, settings))
    finally:
        await db.dispose()
    assert sorted([first.rewritten, second.rewritten]) == [0, 4]  # one took the lock and did it all
    after, licence = await _stored(empty_database_url)
    _assert_resealed(before, after, licence)
