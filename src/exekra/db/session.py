"""Engine and session factory built from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import asyncpg
import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from exekra.config import Settings
from exekra.db.raw import DRIVER_ERRORS, RawSession, StatementCache, Statements, driver_error

AfterCommit = Callable[[], Awaitable[None]]


class CommitHooks(Protocol):
    """Work a transaction's commit brings with it (the hub's `exekra.hub.effects.EffectApplier`)."""

    async def before_commit(self, session: Statements) -> AfterCommit | None:
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
        self.statement_cache = StatementCache(self.engine.dialect)
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

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg driver; a connection that broke is not handed out again."""
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            try:
                yield raw.driver_connection
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    await connection.invalidate(exc.orig)
                raise

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[RawSession]:
        """`transaction()` for the hot path: statements written once (`text()`, Core inserts) run on the driver,
        without the ORM session (see `exekra.db.raw`). The same commit hooks run, the same way."""
        async with self._driver() as driver:
            session = RawSession(driver, self.statement_cache)
            transaction = driver.transaction()
            try:
                await transaction.start()
            except DRIVER_ERRORS as exc:
                raise driver_error("BEGIN", (), exc) from exc
            try:
                yield session
                after_commit = await self.hooks.before_commit(session)
            except BaseException:
                try:
                    await transaction.rollback()
                except DRIVER_ERRORS as exc:
                    raise driver_error("ROLLBACK", (), exc) from exc
                raise
            try:
                await transaction.commit()
            except DRIVER_ERRORS as exc:
                raise driver_error("COMMIT", (), exc) from exc
        if after_commit is not None:
            await after_commit()

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[RawSession]:
        """A transition that is one statement, sent without BEGIN and COMMIT (two round trips fewer): it commits
        by itself. The commit hooks run after it, and what they send (an assignment's `NOTIFY`) runs on its
        own, after the commit, which is when PostgreSQL would deliver it anyway. A rule that records an audit
        entry, which must commit with its change, cannot run here (`audit.record` refuses)."""
        async with self._driver() as driver:
            session = RawSession(driver, self.statement_cache, self_committing=True)
            yield session
            after_commit = await self.hooks.before_commit(session)
        if after_commit is not None:
            await after_commit()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[RawSession]:
        """Reads on the driver outside any transaction (each statement sees what is committed when it runs).
        Nothing here may write: no commit hook would run."""
        async with self._driver() as driver:
            yield RawSession(driver, self.statement_cache)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
