"""Fire-and-forget background work that is still tracked, logged on failure and awaited at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
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
