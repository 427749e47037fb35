"""The garbage collector of a hub process: short pauses with thousands of open long polls.

A full collection walks every tracked object while the process stands still. Each open long poll keeps about 150
alive (the ASGI stack's coroutines, closures, its task and timer), so at 10,000 runners full collections of 1.3 s
came every 5 s and found almost nothing to free (bench/RESULTS.md, 2026-12-04 17:50). So the collector only walks
what is new: what start-up built, and the survivors of every collection of generation 1 or 2, are frozen
(`gc.freeze`; a frozen object is still freed when its last reference goes). Garbage that frozen objects hold in
reference cycles is reclaimed every `RECLAIM_SECONDS`: unfreeze, collect, freeze (the one long pause left).

One policy per process, for the process that serves a hub (`create_app(owns_process=True)`): a test process
running hubs in-process keeps CPython's own. Pauses are reported from the event loop
(`exekra_gc_pause_seconds`; 250 ms or more logged): the hook that measures them runs inside an allocation, where
it must take no lock. `stood_still` lets the Redis failure detection tell a timeout caused by such a pause from a
slow server.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram

from exekra.hub.observability import REGISTRY
from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

RECLAIM_SECONDS = 3600.0
REPORT_SECONDS = 1.0
LONG_PAUSE_SECONDS = 0.25
STALL_SECONDS = 0.05  # a shorter pause excuses no timeout
FREEZE_AFTER = 1  # the generation from which a collection's survivors are frozen

GC_PAUSE_SECONDS = Histogram(
    "exekra_gc_pause_seconds",
    "Time the process stood still in one garbage collection, by generation (2: full)",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)

# The last pause of STALL_SECONDS or more: (time.monotonic() at its end, its length). Written by the hook, read by
# `stood_still`; a tuple assignment is atomic.
_last_pause: tuple[float, float] = (-math.inf, 0.0)


def stood_still(at_least: float, within: float) -> bool:
    """Whether a collection of `at_least` seconds ended in the last `within` seconds (timers that came due while
    the process stood still fire as soon as it ends)."""
    ended, length = _last_pause
    return length >= at_least and time.monotonic() - ended < within


@dataclass(frozen=True)
class Reclaimed:
    """What one reclaim did: the objects it freed and how long the process stood still."""

    objects: int
    seconds: float


class Collector:
    """The policy of the module's docstring, from `start` to `stop` (one per process)."""

    def __init__(self, reclaim_seconds: float = RECLAIM_SECONDS) -> None:
        self.reclaim_seconds = reclaim_seconds
        self._started = 0.0
        self._reclaiming = False
        self._pauses: collections.deque[tuple[int, float, int]] = collections.deque(maxlen=10_000)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Freeze what exists now and follow every collection from here on."""
        self._collect_and_freeze()
        gc.callbacks.append(self._hook)
        self._tasks = [
            asyncio.create_task(self._reclaim_forever(), name="exekra-gc-reclaim"),
            asyncio.create_task(self._report_forever(), name="exekra-gc-report"),
        ]

    async def stop(self) -> None:
        """Back to CPython's own policy, nothing frozen."""
        if self._hook in gc.callbacks:
            gc.callbacks.remove(self._hook)
        gc.unfreeze()
        await cancel_tasks(self._tasks)
        self._tasks = []
        self.report()

    def reclaim(self) -> Reclaimed:
        """Collect the garbage that frozen objects hold in cycles, then freeze the survivors again."""
        started = time.perf_counter()
        self._reclaiming = True  # its long pause is expected: logged once, by the caller
        try:
            gc.unfreeze()
            objects = self._collect_and_freeze()
        finally:
            self._reclaiming = False
        return Reclaimed(objects, time.perf_counter() - started)

    def report(self) -> None:
        """Observe (and log the long ones of) the pauses the hook noted since the last report."""
        while self._pauses:
            generation, paused, freed = self._pauses.popleft()
            GC_PAUSE_SECONDS.labels(str(generation)).observe(paused)
            if paused >= LONG_PAUSE_SECONDS and freed >= 0:
                log.warning(
                    "garbage collector: generation %d stood the process still for %.0f ms (%d objects freed)",
                    generation,
                    paused * 1000,
                    freed,
                )

    @staticmethod
    def _collect_and_freeze() -> int:
        objects = gc.collect()
        gc.freeze()
        return objects

    async def _reclaim_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reclaim_seconds)
            done = self.reclaim()
            log.info("garbage collector: reclaimed %d objects in %.0f ms", done.objects, done.seconds * 1000)

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            self.report()

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        """`gc.callbacks`: note each collection's pause; after one of generation 1 or 2, freeze its survivors.

        It runs inside whatever allocation started the collection, in any thread: no lock (the metrics' and the
        logs' are taken by `report`), no event loop; a deque's append and a tuple assignment are atomic.
        """
        if phase == "start":
            self._started = time.perf_counter()
            return
        paused = time.perf_counter() - self._started
        if paused >= STALL_SECONDS:
            global _last_pause
            _last_pause = (time.monotonic(), paused)
        self._pauses.append((info["generation"], paused, -1 if self._reclaiming else info["collected"]))
        if info["generation"] >= FREEZE_AFTER:
            gc.freeze()  # the collection is over and the younger generations are empty: only its survivors
