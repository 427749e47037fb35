"""Schema migrations: an empty database upgrades to head, models and migrations agree, the hub refuses stale schemas."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

import pytest
from alembic import command
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from exekra.config import to_asyncpg_url
from exekra.db.migrate import DatabaseNotMigrated, alembic_config, current_revision, ensure_migrated, head_revision
from exekra.embedded import create_database, drop_database


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
