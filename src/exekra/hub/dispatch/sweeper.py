"""The safety net behind event-driven matching: a match that a concurrent row lock made miss is retried."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)


class Sweeper:
    """Runs `sweep` soon after `poke()`, then every `interval` seconds for as long as it answers True.

    Idle (no timer firing) while nothing is left over: matching itself is event-driven.
    """

    def __init__(self, name: str, sweep: Callable[[], Awaitable[bool]], interval: float) -> None:
        self.name = name
        self.sweep = sweep
        self.interval = interval
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._pending.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            try:
                again = await self.sweep()
            except Exception:
                log.exception("%s failed; retrying", self.name)
                again = True
            if again:
                self._pending.set()
            await asyncio.sleep(self.interval)


async def cancel_tasks(tasks: Iterable[asyncio.Task[Any]], within: float = 5.0) -> None:
    """Cancel background tasks and wait for them to end, for at most `within` seconds.

    Cancels again until they end: a cancellation that lands while the Redis client reconnects can be
    swallowed by it (Python 3.11 timeouts), and the task would otherwise simply go on.
    """
    running = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + within
    while running and time.monotonic() < deadline:
        for task in running:
            task.cancel()
        _, running = await asyncio.wait(running, timeout=0.1)
    for task in running:
        log.warning("%s did not stop within %.0f s", task.get_name(), within)
