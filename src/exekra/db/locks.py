"""PostgreSQL advisory locks: one holder at a time, cluster-wide, of the hub's singleton work."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import text

from exekra.db.raw import Statements
from exekra.db.session import Database

_NOW = text("SELECT now()")

# Advisory lock keys ("EXKR" + a number). The leader lease (`exekra.hub.leader.LEADER_LOCK`, "EXKR" + 0) keeps the
# singleton work to one hub process; these fence what may still meet another holder.
PURGE_LOCK = 0x45584B5202  # the retention purge: the leader's daily purge and `exekra purge` run by hand
RESEAL_LOCK = 0x45584B5203  # re-encryption of values sealed before migration 0013 (a transaction-level lock)
ALERTS_COLLECT_LOCK = 0x45584B5204  # a collection of alert events and their routing (a transaction-level lock)


@contextlib.asynccontextmanager
async def advisory_lock(db: Database, key: int) -> AsyncIterator[bool]:
    """Try to take a session-level advisory lock on a dedicated connection for the block; yields whether it did.

    Should releasing it fail, the connection is dropped, which releases the lock too.
    """
    async with db.engine.connect() as connection:
        held = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        await connection.commit()
        try:
            yield held
        finally:
            if held:
                try:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    await connection.commit()
                except BaseException:
                    await connection.invalidate()
                    raise


async def db_now(session: Statements) -> datetime:
    """The database clock (the same for every hub process), at the start of the caller's transaction."""
    now: datetime = (await session.execute(_NOW)).scalar_one()
    return now


async def database_now(db: Database) -> datetime:
    """The database clock."""
    async with db.reading() as session:
        return await db_now(session)
