"""Schema migrations (Alembic) and the start-up check that the database is current."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from exekra.config import Settings, to_asyncpg_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseNotMigrated(RuntimeError):
    """The database schema is not at the revision this version of Exekra needs."""


def alembic_config(database_url: str, settings: Settings | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database.

    `settings` reach the migrations that need the secret key (0013), when they are not the environment's.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", to_asyncpg_url(database_url).replace("%", "%%"))
    if settings is not None:
        cfg.attributes["settings"] = settings
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config("postgresql://x/x")).get_current_head()
    assert head is not None
    return head


def upgrade(database_url: str, revision: str = "head", settings: Settings | None = None) -> None:
    """Apply migrations up to `revision` (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(database_url, settings), revision)


async def current_revision(database_url: str) -> str | None:
    """The revision recorded in the database, or None for an empty database."""

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    engine = create_async_engine(to_asyncpg_url(database_url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_read)
    finally:
        await engine.dispose()


async def ensure_migrated(database_url: str) -> None:
    """Raise `DatabaseNotMigrated` with a clear message unless the schema is at head."""
    current = await current_revision(database_url)
    head = head_revision()
    if current != head:
        found = current or "an empty schema"
        raise DatabaseNotMigrated(
            f"The database is at {found}, this hub needs revision {head}. Run `exekra db upgrade` first."
        )


async def upgrade_async(database_url: str, settings: Settings | None = None) -> None:
    """`upgrade` from async code (Alembic's env runs its own event loop, so it goes to a thread)."""
    await asyncio.to_thread(upgrade, database_url, "head", settings)
