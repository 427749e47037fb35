"""Tasks of this process waiting for something to happen to a key (a runner's work, an execution's end)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Iterator


class Signal:
    """What one task waits on: `set`, `clear`, `is_set` and `wait` much as `asyncio.Event` has them, for one waiting
    task at a time, with the wait's timeout built in. `wait` answers whether the signal is set when the task
    resumes (an Event's answers True once it was set, even if cleared since).

    Thousands are held at once, one per open long poll. An Event holds an instance dict and a deque for its waiters,
    and `asyncio.timeout` a context manager and a handle of its own; this is two slots, and only while a task waits
    a future and a timer: the wait went from 2.4 to 0.9 KB per open poll (bench/RESULTS.md, 2026-12-05). Timers
    shared by the waits ending in the same tick were tried and not kept (bench/RESULTS.md, 2026-12-05 07:20)."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    @property
    def held(self) -> bool:
        """Whether a task waits on the signal now."""
        return self._waiter is not None

    async def wait(self, seconds: float | None = None) -> bool:
        """Until the signal is set, or `seconds` pass; returns whether it is set. Cancelling the waiting task
        cancels the wait (it does not end as a timeout)."""
        if self._set:
            return True
        if self._waiter is not None:
            raise RuntimeError("a Signal has one waiting task at a time")
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = None if seconds is None else loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._set


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def each_signal(waiting: Signal | set[Signal]) -> Iterable[Signal]:
    """A key's waiters, one signal or a set of them, one by one."""
    return (waiting,) if isinstance(waiting, Signal) else waiting


class Waiters:
    """A registry of waiting tasks by key: register before looking, so that nothing happening between the
    look and the wait is missed; `notify` wakes every waiter of a key.

    A key's waiters are its one signal (a runner's poll, most often), or a set of them when there are more."""

    def __init__(self) -> None:
        self._signals: dict[uuid.UUID, Signal | set[Signal]] = {}

    def register(self, key: uuid.UUID) -> Signal:
        """Register before looking at the state, so a concurrent change cannot be missed; wait on the signal
        returned."""
        signal = Signal()
        self.add(key, signal)
        return signal

    def add(self, key: uuid.UUID, signal: Signal) -> None:
        """Register a signal of the caller's own kind for `key` (`register` makes a plain one)."""
        waiting = self._signals.get(key)
        if waiting is None:
            self._signals[key] = signal
        elif isinstance(waiting, Signal):
            self._signals[key] = {waiting, signal}
        else:
            waiting.add(signal)

    def unregister(self, key: uuid.UUID, signal: Signal) -> None:
        waiting = self._signals.get(key)
        if waiting is signal:
            del self._signals[key]
        elif isinstance(waiting, set):
            waiting.discard(signal)
            if len(waiting) == 1:
                self._signals[key] = next(iter(waiting))

    def of(self, key: uuid.UUID) -> Iterable[Signal]:
        """The waiters of `key`, one by one."""
        waiting = self._signals.get(key)
        return () if waiting is None else each_signal(waiting)

    def notify(self, key: uuid.UUID) -> None:
        """Wake every waiter of `key` in this process."""
        for signal in self.of(key):
            signal.set()

    def notify_all(self) -> None:
        """Wake every waiter (each looks again): used when notifications may have been missed."""
        for signal in self.signals():
            signal.set()

    def signals(self) -> Iterator[Signal]:
        """Every waiter of every key."""
        for waiting in self._signals.values():
            yield from each_signal(waiting)

    def is_waiting(self, key: uuid.UUID) -> bool:
        return key in self._signals

    @property
    def anyone_waiting(self) -> bool:
        """Whether anyone waits in this process (O(1): asked on every dispatch)."""
        return bool(self._signals)

    @property
    def held(self) -> int:
        """Signals a task waits on now: a long poll registered and still reading or claiming is not held yet."""
        return sum(1 for signal in self.signals() if signal.held)

    def deliver_key(self, payload: str) -> None:
        """A notification whose payload is the key itself: wake its waiters (malformed payloads are ignored)."""
        if self._signals:
            with contextlib.suppress(ValueError):
                self.notify(uuid.UUID(payload))
