"""Fire-and-forget background work that is still tracked, logged on failure and awaited at shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)
_running: set[asyncio.Task[Any]] = set()


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run `coro` in the background, keeping a reference so it is not garbage-collected."""
    task = asyncio.get_running_loop().create_task(coro)
    _running.add(task)
    task.add_done_callback(_done)
    return task


async def drain(seconds: float = 5.0) -> None:
    """Wait (bounded) for background tasks still running, e.g. at shutdown."""
    if _running:
        await asyncio.wait(set(_running), timeout=seconds)


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
