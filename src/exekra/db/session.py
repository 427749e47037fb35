"""Engine and session factory built from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from exekra.config import Settings

AfterCommit = Callable[[], Awaitable[None]]


class CommitHooks(Protocol):
    """Work a transaction's commit brings with it (the hub's `exekra.hub.effects.EffectApplier`)."""

    async def before_commit(self, session: AsyncSession) -> AfterCommit | None:
        """Inside the transaction, just before it commits; returns what to do once it has committed."""
        ...


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class Database:
    """Owns the async engine and hands out sessions (`async with db.session() as s`) and transactions."""

    def __init__(self, settings: Settings, hooks: CommitHooks) -> None:
        pool = settings.pool_size
        self.engine: AsyncEngine = create_async_engine(
            settings.sqlalchemy_url,
            pool_size=pool,
            max_overflow=0,
            pool_timeout=30,
            pool_recycle=1800,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.hooks = hooks

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reading, rolled back on error and always closed."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed when the block ends without error.

        The commit hooks run just before the commit, and what they return runs after it, once the
        connection is back in the pool. A block that raises rolls back, and no hook runs.
        """
        async with self.sessions() as session, session.begin():
            yield session
            after_commit = await self.hooks.before_commit(session)
        if after_commit is not None:
            await after_commit()

    async def fetchrow(self, query: str, *args: object) -> Mapping[str, Any] | None:
        """One read in one round trip, outside any transaction and without the ORM: for the hot path.

        It runs on a pooled connection's asyncpg driver (`$1` parameters), whose prepared-statement cache makes
        a repeated query a bind and execute. Nothing here may write: no commit hook would run.
        """
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            try:
                row: Mapping[str, Any] | None = await raw.driver_connection.fetchrow(query, *args)  # type: ignore[union-attr]
            except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError) as exc:
                await connection.invalidate(exc)  # the pool must not hand this connection out again
                raise DBAPIError(query, args, exc, connection_invalidated=True) from exc
            except asyncpg.PostgresError as exc:
                raise DBAPIError(query, args, exc) from exc  # the same error family as every other statement
            return row

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
