"""The safety net behind event-driven matching: a match that a concurrent row lock made miss is retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.tasks import cancel_tasks

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
            except TRANSIENT_ERRORS as exc:
                log.warning("%s: %s: %s; retrying", self.name, type(exc).__name__, exc)
                again = True
            except Exception:  # a bug must not end the safety net: it is logged in full, and retried
                log.exception("%s failed; retrying", self.name)
                again = True
            if again:
                self._pending.set()
            await asyncio.sleep(self.interval)
