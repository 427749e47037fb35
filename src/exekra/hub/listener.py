"""One PostgreSQL `LISTEN` connection per hub process, shared by everything that hears other processes.

PostgreSQL delivers a `NOTIFY` when the transaction that sent it commits, to every listening process (the
sender's included). Fixed channels are subscribed before `start()`; channels of the moment (one execution's
log lines, while someone follows them) are listened to and left with `listen` / `unlisten`. The connection
reconnects by itself; notifications sent while it was down are lost, so after every (re)connection the
`on_connect` callbacks run (waiters look again; nothing is waited for without a look after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

APPLICATION_NAME = "exekra-listener"  # in pg_stat_activity: how many hub processes listen (`dispatch.wakeups`)
KEEPALIVE_SECONDS = 10.0
RECONNECT_MAX_SECONDS = 5.0
_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

Callback = Callable[[str], None]
"""Called with a notification's payload, on the event loop: it must not block."""


class Listener:
    """Feeds the notifications of subscribed channels to their callbacks."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._channels: dict[str, _Channel] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one operation at a time on the connection
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, callback: Callback, *, on_connect: Callable[[], None] | None = None) -> None:
        """Before `start()`: call `callback(payload)` for each notification on `channel`, and `on_connect()` after
        every (re)connection (something may have been missed while disconnected)."""
        self._channels.setdefault(channel, _Channel()).callbacks.append(callback)
        if on_connect is not None:
            self._on_connect.append(on_connect)

    async def listen(self, channel: str, callback: Callback) -> None:
        """Start hearing `channel` now (its notifications from the moment this returns, while connected)."""
        heard = self._channels.setdefault(channel, _Channel())
        heard.callbacks.append(callback)
        if len(heard.callbacks) == 1:
            await self._on_connection(lambda c: c.add_listener(channel, heard.deliver))

    async def unlisten(self, channel: str, callback: Callback) -> None:
        """Stop delivering `channel` to `callback` (and stop hearing it once nobody listens)."""
        heard = self._channels.get(channel)
        if heard is None or callback not in heard.callbacks:
            return
        heard.callbacks.remove(callback)
        if not heard.callbacks:
            del self._channels[channel]
            await self._on_connection(lambda c: c.remove_listener(channel, heard.deliver))

    async def _on_connection(self, operation: Callable[[asyncpg.Connection], object]) -> None:
        """Run `operation` on the connection when there is one (a reconnection listens to every channel anew)."""
        async with self._lock:
            connection = self._connection
            if connection is None or connection.is_closed():
                return
            with contextlib.suppress(*_ERRORS):  # the connection broke: its replacement listens to every channel
                await asyncio.wait_for(operation(connection), 5)  # type: ignore[arg-type]

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
            except _ERRORS as exc:
                log.warning("listener: %s: %s; reconnecting in %.1fs", type(exc).__name__, exc, delay)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self.dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME})
        closed = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: closed.set())
            async with self._lock:
                for channel, heard in self._channels.items():
                    await connection.add_listener(channel, heard.deliver)
                self._connection = connection
            self.connected.set()
            for callback in self._on_connect:
                callback()
            while not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), KEEPALIVE_SECONDS)
                if not closed.is_set():
                    async with self._lock:  # finds a silently dead connection
                        await connection.fetchval("SELECT 1", timeout=5)
        finally:
            self._connection = None
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(connection.close(), 2)


class _Channel:
    """A channel's callbacks, and the one function the connection calls for its notifications."""

    def __init__(self) -> None:
        self.callbacks: list[Callback] = []

    def deliver(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        for callback in list(self.callbacks):
            callback(str(payload))
