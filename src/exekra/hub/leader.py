"""The leader lease: exactly one hub process, cluster-wide, runs the singleton work (the maintenance checks, the
licence revalidation, the purge, the scheduler).

Every hub process keeps one dedicated PostgreSQL connection and tries `pg_try_advisory_lock(LEADER_LOCK)` on it
every `period` (a fifth of `EXEKRA_MAINTENANCE_INTERVAL_SECONDS`). The process that gets the lock leads for as
long as that connection lives: PostgreSQL releases a session-level lock only when the session ends, so a leader
that dies (even by kill -9: the kernel closes its socket) frees the lock at once, and a standby takes it at its
next try.

A leader cut off from PostgreSQL by the network cannot be told so: its socket is silent, not closed. Two clocks
make the hand-over safe (docs/deployment.md, "Leader"):

- the leader checks its connection every `period`, with `period` to answer; without an answer it stops the
  singleton work at once and drops the connection: it steps down within two periods of its last answer;
- the lease connection asks the server for TCP keepalives and a TCP user timeout (`server_keepalives`), so that
  PostgreSQL ends the silent session, and releases the lock, only after at least half an interval, later than
  the leader has stepped down.

The lease is not what makes the singleton work correct: every maintenance action is a conditional update and a
schedule fire is claimed once in `trigger_fires`, so even two leaders at once would change each row once. The
lease keeps that work to one process, so that it is done once instead of N times.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy import text

from exekra.db.session import Database
from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

# "EXKR" + 0: one key for the lease; the other keys live in `exekra.db.locks`.
LEADER_LOCK = 0x45584B5200
APPLICATION_NAME = "exekra leader"  # the lease connection's name, followed by the instance id (see `current_leader`)
KEEPALIVE_PROBES = 3
# InternalClientError: a command that meets the server ending the session (asyncpg reports it so).
_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, TimeoutError)

Work = Callable[[], Awaitable[None]]


def lease_period(maintenance_interval: float) -> float:
    """How often a process tries for the lease, and how long the leader waits for its connection to answer."""
    return maintenance_interval / 5


def server_keepalives(maintenance_interval: float) -> dict[str, str]:
    """Server settings of the lease connection: PostgreSQL ends a silent lease session after
    `release_after(interval)` seconds at the earliest (keepalives count whole seconds)."""
    idle = math.ceil(maintenance_interval / 2)
    probe = math.ceil(maintenance_interval / 10)
    return {
        "tcp_keepalives_idle": str(idle),
        "tcp_keepalives_interval": str(probe),
        "tcp_keepalives_count": str(KEEPALIVE_PROBES),
        "tcp_user_timeout": str(release_after(maintenance_interval) * 1000),
    }


def release_after(maintenance_interval: float) -> int:
    """Seconds of silence after which PostgreSQL ends a lease session cut off by the network."""
    return math.ceil(maintenance_interval / 2) + KEEPALIVE_PROBES * math.ceil(maintenance_interval / 10)


class LeaderLease:
    """Runs `lead()` when this process becomes the leader and `step_down()` when it stops being it."""

    def __init__(self, dsn: str, instance: str, maintenance_interval: float, lead: Work, step_down: Work) -> None:
        self.dsn = dsn
        self.instance = instance
        self.period = lease_period(maintenance_interval)
        self.server_settings = {"application_name": f"{APPLICATION_NAME} {instance}"[:63]}
        self.server_settings |= server_keepalives(maintenance_interval)
        self._lead = lead
        self._step_down = step_down
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._turn = asyncio.Lock()  # one turn at a time: two at once could both take the (reentrant) lock and lead
        self.leading = False

    async def start(self) -> None:
        """Try for the lease once now (a hub that can lead leads before it serves), then keep trying."""
        await self.renew()
        self._task = asyncio.create_task(self._renew_forever(), name="exekra-leader-lease")

    async def stop(self) -> None:
        """Stop the singleton work and end the session, which releases the lease for another process."""
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None
        await self._lose(None)

    async def renew(self) -> bool:
        """One turn: take the lease if free, or check that the held one's connection still answers; whether this
        process leads afterwards. A turn asked for while another runs (the loop's) waits for it."""
        async with self._turn:
            if self._connection is not None and self._connection.is_closed():
                # The session, and the lock with it, is gone: a new connection would not hold it.
                await self._lose("the lease connection was closed")
            try:
                if self._connection is None:
                    self._connection = await asyncpg.connect(
                        self.dsn, timeout=self.period, server_settings=self.server_settings
                    )
                if self.leading:
                    await self._connection.fetchval("SELECT 1", timeout=self.period)
                elif await self._connection.fetchval(
                    "SELECT pg_try_advisory_lock($1)", LEADER_LOCK, timeout=self.period
                ):
                    await self._win()
            except _ERRORS as exc:
                await self._lose(f"{type(exc).__name__}: {exc}")
            return self.leading

    async def _win(self) -> None:
        log.info("leader: %s now runs the singleton work", self.instance)
        self.leading = True
        await self._lead()

    async def _lose(self, failure: str | None) -> None:
        """Stop leading, if this process leads, and drop the connection; `failure` says why, None at shutdown."""
        if self.leading:
            if failure is None:
                log.info("leader: %s hands the lease over (stopping)", self.instance)
            else:
                log.warning("leader: %s stops leading (%s)", self.instance, failure)
            self.leading = False
            await self._step_down()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:  # a healthy connection is closed, ending the session; one that does not answer is cut
                await asyncio.wait_for(connection.close(), self.period)
            except _ERRORS:
                connection.terminate()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.renew()
            except Exception:  # a bug in the singleton work's start must not end the lease loop
                log.exception("leader: lease turn failed")


_CURRENT_LEADER = text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database()) AND l.objsubid = 1 "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key LIMIT 1"
)


async def current_leader(db: Database) -> str | None:
    """The instance id of the process holding the lease now (as PostgreSQL sees it), or None."""
    async with db.session() as session:
        name = (await session.execute(_CURRENT_LEADER, {"key": LEADER_LOCK})).scalar_one_or_none()
    if name is None:
        return None
    return str(name).removeprefix(APPLICATION_NAME).strip() or None
