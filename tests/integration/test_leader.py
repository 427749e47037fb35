"""The leader lease (`exekra.hub.leader`) between hub processes, against a real PostgreSQL.

Each lease stands for one hub process; its singleton work is a counter here, so that what the lease starts and
stops can be counted. Turns are driven with `renew()`, one at a time, instead of waiting for the loop's period.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import TextClause, text

from exekra.config import Settings
from exekra.db.session import Database
from exekra.embedded import create_database, drop_database
from exekra.hub.effects import EffectApplier
from exekra.hub.leader import LeaderLease, current_leader, lease_period, release_after, server_keepalives

from .protocol import eventually

INTERVAL = 1.0  # the maintenance interval the leases are made for: a period of 0.2 s


@dataclass
class Work:
    """The singleton work of one process: how often it was started and stopped."""

    started: int = 0
    stopped: int = 0

    async def lead(self) -> None:
        self.started += 1

    async def step_down(self) -> None:
        self.stopped += 1

    @property
    def running(self) -> bool:
        return self.started > self.stopped


@dataclass
class Processes:
    dsn: str
    leases: list[LeaderLease] = field(default_factory=list)

    def lease(self, name: str, work: Work, dsn: str | None = None) -> LeaderLease:
        lease = LeaderLease(dsn or self.dsn, name, INTERVAL, work.lead, work.step_down)
        self.leases.append(lease)
        return lease


@pytest.fixture
def lease_database_url(pg_server_url: str) -> Iterator[str]:
    """A database of the test's own: no hub of the session holds its lease."""
    name = f"exekra_lease_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture
async def processes(lease_database_url: str) -> AsyncIterator[Processes]:
    made = Processes(Settings(database_url=lease_database_url).asyncpg_dsn)
    yield made
    for lease in made.leases:
        await lease.stop()


@pytest.fixture
async def db(lease_database_url: str) -> AsyncIterator[Database]:
    database = Database(Settings(database_url=lease_database_url), EffectApplier())
    yield database
    await database.dispose()


async def test_exactly_one_process_leads_and_another_takes_over_when_it_stops(
    processes: Processes, db: Database
) -> None:
    first, second = Work(), Work()
    a = processes.lease("host-a:1:aa", first)
    b = processes.lease("host-b:2:bb", second)

    await _leading(a)
    await b.start()

    assert (a.leading, b.leading) == (True, False)
    assert (first.running, second.running) == (True, False)
    assert await current_leader(db) == "host-a:1:aa"
    assert await b.renew() is False and await a.renew() is True  # turns change nothing while a lives

    await a.stop()
    assert first.stopped == 1 and await current_leader(db) is None
    assert await b.renew() is True
    assert second.running and await current_leader(db) == "host-b:2:bb"


async def test_a_leader_whose_session_the_server_ended_steps_down_and_another_leads(
    processes: Processes, db: Database
) -> None:
    first, second = Work(), Work()
    a = processes.lease("host-a:1:aa", first)
    b = processes.lease("host-b:2:bb", second)
    await _leading(a)
    await b.start()

    async with db.session() as session:  # as when PostgreSQL restarts or an operator ends the session
        await session.execute(_terminate_lease_of("host-a:1:aa"))

    assert await b.renew() is True and second.running  # the lock went with the session
    assert await a.renew() is False  # a notices, stops its work, reconnects and finds the lease taken
    assert (first.started, first.stopped) == (1, 1)
    assert await current_leader(db) == "host-b:2:bb"


async def test_a_leader_whose_session_ended_stops_its_work_even_when_it_takes_the_lease_again(
    processes: Processes, db: Database
) -> None:
    work = Work()
    a = processes.lease("host-a:1:aa", work)
    await _leading(a)
    async with db.session() as session:
        await session.execute(_terminate_lease_of("host-a:1:aa"))

    # Nobody else asked: the lease is free and a takes it again, but not without stopping the work it ran
    # while it did not hold it. Turns asked for at once (here two, and the loop's) take it once.
    assert await asyncio.gather(a.renew(), a.renew()) == [True, True]
    assert (work.started, work.stopped) == (2, 1)


async def test_a_leader_cut_off_by_the_network_steps_down_before_its_session_ends(
    processes: Processes, db: Database
) -> None:
    first, second = Work(), Work()
    async with SilenceableProxy.to(processes.dsn) as proxy:
        a = processes.lease("host-a:1:aa", first, dsn=proxy.dsn)
        b = processes.lease("host-b:2:bb", second)
        await _leading(a)
        await b.start()
        assert a.leading

        proxy.silence()  # packets are dropped, no connection is closed: a partition
        began = time.monotonic()
        assert await a.renew() is False
        stepped_down_after = time.monotonic() - began

        assert not first.running
        assert stepped_down_after <= 2 * lease_period(INTERVAL) + 0.5
        # PostgreSQL still sees the old session (its socket to the proxy is alive): nobody else may lead yet.
        assert await b.renew() is False
        assert await current_leader(db) == "host-a:1:aa"
    # The proxy is gone, so is the old session: the lease is free.
    await eventually(b.renew, 10, "the standby to take the lease", interval=lease_period(INTERVAL))
    assert second.running


async def test_the_lease_session_asks_the_server_to_end_it_after_a_silence(processes: Processes) -> None:
    a = processes.lease("host-a:1:aa", Work())
    await _leading(a)

    assert await _lease_setting(a, "application_name") == "exekra leader host-a:1:aa"
    assert await _lease_setting(a, "tcp_keepalives_idle") == server_keepalives(INTERVAL)["tcp_keepalives_idle"] == "1"
    assert await _lease_setting(a, "tcp_keepalives_count") == "3"
    assert await _lease_setting(a, "tcp_user_timeout") == str(release_after(INTERVAL) * 1000)


@pytest.mark.parametrize("interval", [1, 2, 5, 8, 15, 30, 60, 600])
def test_the_server_ends_a_silent_session_only_after_the_leader_stepped_down(interval: float) -> None:
    # The leader steps down at most two periods after its last answer; PostgreSQL releases the lease later.
    assert release_after(interval) > 2 * lease_period(interval)


@pytest.mark.parametrize("interval", [8, 10, 15, 30, 60, 600])
def test_a_standby_takes_over_a_partitioned_leader_within_two_intervals(interval: float) -> None:
    # The server ends the silent session, then the standby's next turn takes the lease.
    assert release_after(interval) + lease_period(interval) <= 2 * interval


async def _leading(lease: LeaderLease) -> None:
    """Start the lease, the only one trying, and wait until it leads: its first try, at once, has a period (0.2 s
    here) to connect, which a loaded machine can miss; the lease's loop then tries again every period."""
    await lease.start()

    async def leads() -> bool:
        return lease.leading

    await eventually(leads, 10, "the lease to lead")


def _terminate_lease_of(instance: str) -> TextClause:
    # With a timeout, PostgreSQL answers once the session has ended (not merely been signalled).
    return text(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = :name"
    ).bindparams(name=f"exekra leader {instance}")


async def _lease_setting(lease: LeaderLease, name: str) -> str:
    connection = lease._connection  # the lease's own session is the only one that sees its settings
    assert connection is not None
    return str(await connection.fetchval(f"SHOW {name}"))


class SilenceableProxy:
    """A TCP proxy to PostgreSQL that can drop everything it carries while keeping both connections open."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.silent = False
        self.server: asyncio.Server | None = None
        self.port = 0
        self.dsn = ""
        self._writers: list[asyncio.StreamWriter] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def to(cls, dsn: str) -> AsyncIterator[SilenceableProxy]:
        parts = urlsplit(dsn)
        assert parts.hostname and parts.port
        proxy = cls(parts.hostname, parts.port)
        proxy.server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        proxy.port = proxy.server.sockets[0].getsockname()[1]
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{proxy.port}"
        proxy.dsn = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
        try:
            yield proxy
        finally:
            proxy.server.close()
            for writer in proxy._writers:
                writer.close()
            await proxy.server.wait_closed()

    def silence(self) -> None:
        self.silent = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.silent:
                writer.write(data)
                await writer.drain()
