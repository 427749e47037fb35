"""Engine and session factory built from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from exekra.config import Settings


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class Database:
    """Owns the async engine and hands out sessions (`async with db.session() as s`)."""

    def __init__(self, settings: Settings) -> None:
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

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that rolls back on error and is always closed."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed when the block ends without error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
