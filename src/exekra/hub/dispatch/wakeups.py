"""Long-poll wake-ups: a runner's pending poll wakes the moment work is assigned to it, and a client waiting
for an execution to end (`GET /api/executions/{id}?wait=`) wakes the moment it ends, in any hub process.

The process that makes an assignment wakes its own waiting polls directly. Other hub processes learn it
from PostgreSQL `NOTIFY` on `CHANNEL`, sent inside the claim's transaction (so it is delivered only once
the assignment is committed), and heard by one dedicated `LISTEN` connection per process. PostgreSQL
serves both queue modes, so wake-ups keep working across processes while Redis is down.

An execution's end is announced on `FINISHED_CHANNEL` by the statements that end it (`lifecycle`), and heard
by every process, the one that ended it included, on the same `LISTEN` connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.hub.dispatch.sweeper import cancel_tasks

log = logging.getLogger(__name__)

CHANNEL = "exekra_wakeup"
FINISHED_CHANNEL = "exekra_finished"  # payload: the execution id
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_KEEPALIVE_SECONDS = 10.0
_RECONNECT_MAX_SECONDS = 5.0


class Wakeups:
    """Registry of this process's runners waiting in a long poll."""

    def __init__(self) -> None:
        self._events: dict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)
        self.origin = uuid.uuid4().hex  # tells this process's notifications from other processes'

    def register(self, runner_id: uuid.UUID) -> asyncio.Event:
        """Register before looking for work, so a concurrent assignment cannot be missed."""
        event = asyncio.Event()
        self._events[runner_id].add(event)
        return event

    def unregister(self, runner_id: uuid.UUID, event: asyncio.Event) -> None:
        waiting = self._events.get(runner_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._events[runner_id]

    def notify(self, runner_id: uuid.UUID) -> None:
        """Wake every poll of this runner in this process."""
        for event in self._events.get(runner_id, ()):
            event.set()

    def notify_all(self) -> None:
        """Wake every waiting poll (each re-checks for work): used when notifications may have been missed."""
        for events in self._events.values():
            for event in events:
                event.set()

    def is_waiting(self, runner_id: uuid.UUID) -> bool:
        return runner_id in self._events

    @property
    def waiting(self) -> int:
        return sum(len(v) for v in self._events.values())

    @property
    def anyone_waiting(self) -> bool:
        """Whether any poll waits in this process (O(1): asked on every dispatch)."""
        return bool(self._events)

    async def publish(self, session: AsyncSession, runner_id: uuid.UUID) -> None:
        """Announce an assignment to the other hub processes, in the claim's transaction.

        Skipped when the runner's poll waits in this process: `notify` after the commit reaches it.
        """
        if not self.is_waiting(runner_id):
            await session.execute(_NOTIFY, {"channel": CHANNEL, "payload": f"{self.origin}:{runner_id}"})

    def deliver(self, payload: str) -> None:
        """A notification from PostgreSQL: wake the runner's polls unless this process sent it."""
        origin, _, runner = payload.partition(":")
        if origin == self.origin:
            return
        with contextlib.suppress(ValueError):
            self.notify(uuid.UUID(runner))

    def deliver_id(self, payload: str) -> None:
        """A notification whose payload is the id itself (`FINISHED_CHANNEL`)."""
        if self._events:
            with contextlib.suppress(ValueError):
                self.notify(uuid.UUID(payload))

    async def wait(self, key: uuid.UUID, event: asyncio.Event, seconds: float) -> bool:
        """Wait until `event` (from `register`) fires or `seconds` pass; returns whether it fired."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return event.is_set()


class WakeupListener:
    """One `LISTEN` connection that feeds other processes' notifications into `wakeups`, and every
    process's execution ends into `finished`.

    Reconnects by itself; after a reconnection every waiting poll is woken once to re-check, since
    notifications sent while the connection was down are lost (the polls' own timeouts bound the delay).
    """

    def __init__(self, dsn: str, wakeups: Wakeups, finished: Wakeups) -> None:
        self.dsn = dsn
        self.wakeups = wakeups
        self.finished = finished
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="exekra-wakeup-listener")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen_once()
                delay = 0.1
            except Exception as exc:
                log.warning("wake-up listener: %s; reconnecting in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self.dsn, timeout=5)
        closed = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: closed.set())
            await connection.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: self.wakeups.deliver(payload))
            await connection.add_listener(
                FINISHED_CHANNEL, lambda _c, _pid, _ch, payload: self.finished.deliver_id(payload)
            )
            self.wakeups.notify_all()
            self.finished.notify_all()
            while not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), _KEEPALIVE_SECONDS)
                if not closed.is_set():
                    await connection.fetchval("SELECT 1", timeout=5)  # finds a silently dead connection
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)


class LongPolls:
    """The long-poll half of the `Dispatcher` protocol, the same for every dispatcher."""

    wakeups: Wakeups
    finished: Wakeups  # clients waiting for an execution to end, by execution id

    def register_waiter(self, runner_id: uuid.UUID) -> asyncio.Event:
        return self.wakeups.register(runner_id)

    def unregister_waiter(self, runner_id: uuid.UUID, event: asyncio.Event) -> None:
        self.wakeups.unregister(runner_id, event)

    async def wait_for_work(self, runner_id: uuid.UUID, event: asyncio.Event, seconds: float) -> None:
        await self.wakeups.wait(runner_id, event, seconds)

    def register_end_waiter(self, execution_id: uuid.UUID) -> asyncio.Event:
        return self.finished.register(execution_id)

    def unregister_end_waiter(self, execution_id: uuid.UUID, event: asyncio.Event) -> None:
        self.finished.unregister(execution_id, event)

    async def wait_for_end(self, execution_id: uuid.UUID, event: asyncio.Event, seconds: float) -> bool:
        return await self.finished.wait(execution_id, event, seconds)
