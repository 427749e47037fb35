"""Engine and session factory built from the settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
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


POOL_TIMEOUT_SECONDS = 30
"""How long a request waits for a pooled connection before it answers 503 (an overloaded hub)."""


def orm_pool_size(size: int) -> int:
    """The ORM's pool beside the hot path's driver pool of `connection_limit` connections: a quarter as many, at
    least two (pages, lists and background work hold a connection for a few milliseconds, and are few)."""
    return max(2, (size + 3) // 4)


# The connection arguments SQLAlchemy's asyncpg adapter takes for itself; asyncpg.connect takes the rest.
_ADAPTER_ARGUMENTS = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


async def _same_codecs_as_the_orm(connection: asyncpg.Connection) -> None:
    """The codecs SQLAlchemy's asyncpg dialect installs on its connections (`on_connect`): JSON and JSONB in
    binary form, their parameters already serialised by the statement's bind processors (`exekra.db.raw`),
    their values read with orjson. So a row reads the same whichever pool it came from."""
    await connection.set_type_codec(
        "json", encoder=str.encode, decoder=lambda b: orjson.loads(b), schema="pg_catalog", format="binary"
    )
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda s: b"\x01" + s.encode(),
        decoder=lambda b: orjson.loads(b[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def _roll_back_if_open(connection: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the driver pool: nothing, unless a transaction was left open
    (a cancelled request). asyncpg's default reset costs a round trip on every release (RESET ALL, UNLISTEN,
    advisory unlock), for state the hot path never sets."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class Database:
    """Owns the async engine and hands out sessions (`async with db.session() as s`) and transactions."""

    def __init__(self, settings: Settings, hooks: CommitHooks) -> None:
        self.driver_pool_size = settings.pool_size
        self.engine: AsyncEngine = create_async_engine(
            settings.sqlalchemy_url,
            pool_size=orm_pool_size(settings.pool_size),
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            pool_recycle=1800,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.statement_cache = StatementCache(self.engine.dialect)
        self.hooks = hooks
        self.driver_pool: asyncpg.Pool | None = None  # opened on first use (it needs the running loop)
        self._opening = asyncio.Lock()

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

    async def _open_driver_pool(self) -> asyncpg.Pool:
        """The hot path's pool: asyncpg's own, on the connection arguments SQLAlchemy derives from the same URL
        (hosts, TLS, options), with the ORM's codecs. Checking a connection out of it costs a fraction of what
        the ORM pool's checkout does (measured: bench/RESULTS.md)."""
        async with self._opening:
            if self.driver_pool is None:
                _, options = self.engine.dialect.create_connect_args(self.engine.url)
                connect: dict[str, Any] = {k: v for k, v in options.items() if k not in _ADAPTER_ARGUMENTS}
                self.driver_pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self.driver_pool_size,
                    init=_same_codecs_as_the_orm,
                    reset=_roll_back_if_open,
                    **connect,
                )
            return self.driver_pool

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the driver pool; one that broke is closed by the pool, not handed out again."""
        pool = self.driver_pool or await self._open_driver_pool()
        # Only a request that may wait for a connection, to come free or to be opened, waits with a bound: asyncpg
        # runs a bounded acquire in a task of its own, with a timer, 7 % of a heartbeat that reads the runner's row
        # (in-process profile: bench/RESULTS.md, 2026-12-06 16:43). With an idle connection open, asyncpg's queue
        # hands it over at once.
        bounded = pool.get_idle_size() == 0
        try:
            connection = await pool.acquire(timeout=POOL_TIMEOUT_SECONDS if bounded else None)
        except TimeoutError:
            raise PoolTimeout(f"no connection of the driver pool came free in {POOL_TIMEOUT_SECONDS} s") from None
        except DRIVER_ERRORS as exc:
            raise driver_error("connect", (), exc) from exc
        try:
            yield connection
        except DBAPIError as exc:
            if exc.connection_invalidated:
                connection.terminate()
            raise
        finally:
            # A connection that closed (terminated here, or ended by the server while checked out) was let go of by
            # the pool itself, which opens another when asked; asyncpg then refuses its release as a second one.
            # The release is bounded whichever way the connection came (asyncpg would bound it only as the acquire was).
            with contextlib.suppress(asyncpg.InternalClientError):
                await pool.release(connection, timeout=POOL_TIMEOUT_SECONDS)

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
        by itself. The commit hooks run after it, and what they send runs on its own, after the commit. A rule that
        records an audit entry, which must commit with its change, cannot run here (`audit.record` refuses)."""
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
        if self.driver_pool is not None:
            pool, self.driver_pool = self.driver_pool, None
            await pool.close()
        await self.engine.dispose()
