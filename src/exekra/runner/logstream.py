"""Batching an execution's log lines to the hub (masked by the caller's `mask`: the workflow's `SecretMasker`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

LogSender = Callable[[list[dict[str, str]]], Awaitable[bool]]
"""Uploads one batch; returns the hub's `stopRequested`. Raises `Rejected` when the hub refuses the attempt."""

BATCH_LINES = 200
BATCH_CHARS = 128_000  # keeps a batch well under the hub's 1 MiB body limit, even JSON-escaped
LINGER_SECONDS = 0.5
MAX_BUFFERED_LINES = 10_000
MAX_LINE_CHARS = 16_000
MAX_NODE_CHARS = 255
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}
_LEVEL_ALIASES = {"WARN": "WARNING", "CRITICAL": "ERROR", "FATAL": "ERROR"}


def utc_now() -> str:
    """The current time as ISO-8601 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LogStream:
    """Collects log lines and ships them while an execution runs.

    A line waits at most LINGER_SECONDS, a batch holds at most BATCH_LINES lines and BATCH_CHARS
    characters of messages (a full batch goes out at once), and an empty batch goes out
    when nothing was sent for `report_interval` seconds (that call is how a stop request reaches us).
    While the hub is unreachable the sender blocks and lines accumulate up to MAX_BUFFERED_LINES; the
    oldest are dropped beyond that, and the next batch says how many.
    """

    def __init__(
        self,
        send: LogSender,
        *,
        report_interval: float,
        on_stop: Callable[[], None],
        mask: Callable[[str], str] = str,
    ) -> None:
        self._send = send
        self._report_interval = report_interval
        self._on_stop = on_stop
        self._mask = mask
        self._lines: deque[dict[str, str]] = deque()
        self._pending_chars = 0
        self._dropped = 0
        self._oldest_pending_at: float | None = None
        self._wake = asyncio.Event()
        self._finishing = False
        self._keep_last = False

    def add(
        self, level: str, message: object, ts: str | None = None, *, node: object = None, event: object = None
    ) -> None:
        """Queue one line (masked, truncated, level normalised); `node` and `event` (the engine's structured
        marks) go with it when they are text."""
        text = self._mask(str(message))
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " … [truncated]"
        if len(self._lines) >= MAX_BUFFERED_LINES:
            self._pending_chars -= len(self._lines.popleft()["message"])
            self._dropped += 1
        line = {"ts": ts or utc_now(), "level": _level(level), "message": text}
        if isinstance(node, str):
            line["node"] = node[:MAX_NODE_CHARS]
        if isinstance(event, str):
            line["event"] = event
        self._lines.append(line)
        self._pending_chars += len(text)
        if self._oldest_pending_at is None:
            self._oldest_pending_at = time.monotonic()
            self._wake.set()
        elif self._batch_full():
            self._wake.set()

    def finish(self, *, keep_last: bool = False) -> None:
        """Ask `run()` to send what is left and return; with `keep_last`, the last batch (at most one) is left
        for `take_rest()`: the final report carries it, one request fewer per execution."""
        self._finishing = True
        self._keep_last = keep_last
        self._wake.set()

    def take_rest(self) -> list[dict[str, str]]:
        """The lines `run()` left after `finish(keep_last=True)` (with the dropped-lines notice, if any)."""
        return self._take_batch() if self._lines or self._dropped else []

    def _done(self) -> bool:
        if not self._finishing:
            return False
        return not self._lines or (self._keep_last and not self._batch_full())

    async def run(self) -> None:
        """Ship batches until `finish()` has been called and everything is sent (or kept, see `finish`)."""
        last_sent = time.monotonic()
        while not self._done():
            now = time.monotonic()
            due = last_sent + self._report_interval
            if self._oldest_pending_at is not None:
                due = min(due, self._oldest_pending_at + LINGER_SECONDS)
            if self._finishing or self._batch_full():
                due = now
            if due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due - now)
                continue
            if await self._send(self._take_batch()):
                self._on_stop()
            last_sent = time.monotonic()

    def _batch_full(self) -> bool:
        return len(self._lines) >= BATCH_LINES or self._pending_chars >= BATCH_CHARS

    def _take_batch(self) -> list[dict[str, str]]:
        batch: list[dict[str, str]] = []
        chars = 0
        while self._lines and len(batch) < BATCH_LINES:
            size = len(self._lines[0]["message"])
            if batch and chars + size > BATCH_CHARS:
                break
            batch.append(self._lines.popleft())
            chars += size
        self._pending_chars -= chars
        if self._dropped:
            notice = f"{self._dropped} log lines were dropped while the hub was unreachable"
            batch.insert(0, {"ts": utc_now(), "level": "WARNING", "message": notice})
            self._pending_chars = 0
        self._dropped = 0
        self._oldest_pending_at = time.monotonic() if self._lines else None
        return batch


def _level(level: str) -> str:
    name = str(level).upper()
    name = _LEVEL_ALIASES.get(name, name)
    return name if name in LEVELS else "INFO"
