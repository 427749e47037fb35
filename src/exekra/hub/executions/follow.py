"""Following an execution's log as it is written (the Server-Sent Events stream of the API and the dashboard).

A follower is woken by new lines (the upload's `NOTIFY` on the execution's own channel, which this process
listens to only while someone follows it) or by the execution's end; it never polls the database, so open
streams cost nothing while no line arrives. Streams are capped per user and in lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from exekra.config import Settings
from exekra.hub.errors import RateLimited
from exekra.hub.executions.endings import Endings, log_channel
from exekra.hub.executions.models import TERMINAL_STATUSES, ExecutionLog
from exekra.hub.listener import Listener
from exekra.hub.waiters import Signal

PAGE_LINES = 1000

ReadLines = Callable[[uuid.UUID, int, int], Awaitable[tuple[list[ExecutionLog], int]]]
ReadStatus = Callable[[uuid.UUID], Awaitable[str]]


@dataclass(frozen=True)
class LogEvent:
    """A log line, or the end of the execution with its final status (the last event of a stream)."""

    line: ExecutionLog | None = None
    end_status: str | None = None


class LogFollowers:
    """The log streams of this hub process."""

    def __init__(self, settings: Settings, listener: Listener, endings: Endings) -> None:
        self.settings = settings
        self.listener = listener
        self.endings = endings
        self.open: Counter[str] = Counter()  # streams by follower (a user)
        self.idle = 0  # streams waiting for a line or the end, having read everything

    @property
    def count(self) -> int:
        return sum(self.open.values())

    def check_room(self, follower: str) -> None:
        """Refuse a new stream when the follower has `EXEKRA_LOG_STREAMS_PER_USER` open already (429)."""
        limit = self.settings.log_streams_per_user
        if self.open[follower] >= limit:
            raise RateLimited(
                f"At most {limit} log streams per user are open at a time: close one first",
                headers={"Retry-After": "5"},
            )

    async def follow(
        self,
        execution_id: uuid.UUID,
        after_seq: int,
        follower: str,
        *,
        read_lines: ReadLines,
        read_status: ReadStatus,
        closing: Callable[[], bool],
    ) -> AsyncIterator[LogEvent]:
        """The lines after `after_seq` as they come, then the end; stops early when the hub shuts down or the
        stream has lived `EXEKRA_LOG_STREAM_MAX_SECONDS` (the client reconnects with the last seq it saw)."""
        self.open[follower] += 1
        changed = Signal()

        def on_lines(_payload: str) -> None:
            changed.set()

        channel = log_channel(execution_id)
        ended = self.endings.register(execution_id)  # both before the first read: nothing in between is missed
        await self.listener.listen(channel, on_lines)
        deadline = time.monotonic() + self.settings.log_stream_max_seconds
        try:
            status = await read_status(execution_id)
            seq = after_seq
            while True:
                changed.clear()
                lines, seq = await read_lines(execution_id, seq, PAGE_LINES)
                for line in lines:
                    yield LogEvent(line=line)
                if len(lines) == PAGE_LINES:
                    continue
                if status in TERMINAL_STATUSES:
                    yield LogEvent(end_status=status)
                    return
                left = deadline - time.monotonic()
                if closing() or left <= 0:
                    return
                self.idle += 1
                try:
                    woken_by = await _first_of(changed, ended, left)
                finally:
                    self.idle -= 1
                if woken_by is ended:
                    ended.clear()
                    status = await read_status(execution_id)  # ended, or woken to look again (a reconnection)
        finally:
            self.open[follower] -= 1
            if not self.open[follower]:
                del self.open[follower]
            self.endings.unregister(execution_id, ended)
            await self.listener.unlisten(channel, on_lines)


async def _first_of(first: Signal, second: Signal, seconds: float) -> Signal | None:
    """Whichever signal is set first within `seconds` (None when neither is)."""
    waits = {asyncio.ensure_future(first.wait()): first, asyncio.ensure_future(second.wait()): second}
    try:
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)
    return waits[next(iter(done))] if done else None
