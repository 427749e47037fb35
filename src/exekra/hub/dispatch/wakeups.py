"""Long-poll wake-ups: a runner's pending poll wakes the moment work is assigned to it."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict


class Wakeups:
    """In-process registry of runners waiting in a long poll."""

    def __init__(self) -> None:
        self._events: dict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)

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
        """Wake every poll of this runner."""
        for event in self._events.get(runner_id, ()):
            event.set()

    @property
    def waiting(self) -> int:
        return sum(len(v) for v in self._events.values())
