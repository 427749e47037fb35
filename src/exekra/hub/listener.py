"""One PostgreSQL `LISTEN` connection per hub process, shared by everything that hears other processes.

PostgreSQL delivers a `NOTIFY` when the transaction that sent it commits, to every listening process (the
sender's included). Subscribers register a callback per channel before `start()`. The connection reconnects
by itself; notifications sent while it was down are lost, so after every (re)connection the `on_connect`
callbacks run (waiters look again; their own timeouts bound any delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 10.0
RECONNECT_MAX_SECONDS = 5.0

Callback = Callable[[str], None]
"""Called with a notification's payload, on the event loop: it must not block."""


class Listener:
    """Feeds the notifications of subscribed channels to their callbacks."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._channels: dict[str, list[Callback]] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, callback: Callback, *, on_connect: Callable[[], None] | None = None) -> None:
        """Call `callback(payload)` for each notification on `channel`, and `on_connect()` after every
        (re)connection (something may have been missed while disconnected)."""
        self._channels.setdefault(channel, []).append(callback)
        if on_connect is not None:
            self._on_connect.append(on_connect)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="exekra-listener")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen_once()
                delay = 0.1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listener: %s: %s; reconnecting in %.1fs", type(exc).__name__, exc, delay)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self.dsn, timeout=5)
        closed = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: closed.set())
            for channel, callbacks in self._channels.items():
                await connection.add_listener(channel, _dispatcher(callbacks))
            self.connected.set()
            for callback in self._on_connect:
                callback()
            while not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), KEEPALIVE_SECONDS)
                if not closed.is_set():
                    await connection.fetchval("SELECT 1", timeout=5)  # finds a silently dead connection
        finally:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                await asyncio.wait_for(connection.close(), 2)


def _dispatcher(callbacks: list[Callback]) -> Callable[[object, int, str, str], None]:
    def deliver(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        for callback in callbacks:
            callback(payload)

    return deliver
