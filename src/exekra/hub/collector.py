"""The garbage collector of a hub process: short pauses with thousands of open long polls.

CPython's full collection walks every object the collector tracks, and stops the process while it does. A hub
holds many: each open long poll is a chain of about 150 (the coroutines of the ASGI stack, their closures, the
request, its task, timer and event), so with 10,000 connected runners a full collection walked about 1.6 million
objects and stopped the hub for 1.3 s, every 5 s; heartbeats waited and Redis commands timed out
(bench/RESULTS.md, 2026-12-04 17:50). Almost all of those objects are alive: a full collection found 0 to 56
pieces of garbage each time.

So a hub process lets the collector walk only what is new:

- what start-up built (modules, the app, its routes and models) is frozen once (`gc.freeze`): no collection
  walks it again;
- after each collection of the middle or the oldest generation, its survivors are frozen too: an object that
  outlived two collections is out of reach, and no collection walks more than the objects allocated since the
  last one. (Freezing only after full collections still left a full one of 100-250 ms every 4 s at 10,000
  runners: it walked everything promoted since the one before.) A frozen object is still freed the moment its
  last reference goes (reference counting); only garbage held in a reference cycle among frozen objects waits;
- for that garbage, every `RECLAIM_SECONDS` everything is unfrozen, collected once, and frozen again: the one
  long pause, logged with what it freed.

Every collection's pause is observed in `exekra_gc_pause_seconds` by generation; one of `LONG_PAUSE_SECONDS` or
more is logged. A command that timed out because the whole process stood still says nothing about the server it
waited for: `stood_still_within` lets the Redis failure detection tell the two apart.
"""

from __future__ import annotations

import asyncio
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
LONG_PAUSE_SECONDS = 0.25
STALL_SECONDS = 0.1  # a pause this long may make a bounded wait time out
FREEZE_AFTER = 1  # the generation from which a collection's survivors are frozen

_last_stall_end = -math.inf  # time.monotonic() when the last collection of STALL_SECONDS or more ended


def stood_still_within(seconds: float) -> bool:
    """Whether a garbage collection of `STALL_SECONDS` or more ended in the last `seconds` (timers that came due
    while the process stood still fire as soon as it ends)."""
    return time.monotonic() - _last_stall_end < seconds


GC_PAUSE_SECONDS = Histogram(
    "exekra_gc_pause_seconds",
    "Time the process stood still in one garbage collection, by generation (2: full)",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)


@dataclass(frozen=True)
class Reclaimed:
    """What one reclaim did: the objects it freed and how long the process stood still."""

    objects: int
    seconds: float


class Collector:
    """One hub's policy over the process's garbage collector (module docstring); `start` and `stop` it with the hub."""

    def __init__(self, reclaim_seconds: float = RECLAIM_SECONDS) -> None:
        self.reclaim_seconds = reclaim_seconds
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reclaiming = False

    def start(self) -> None:
        """Freeze what exists now and follow every collection from here on."""
        self._loop = asyncio.get_running_loop()
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._observe)
        self._task = asyncio.create_task(self._reclaim_forever(), name="exekra-gc-reclaim")

    async def stop(self) -> None:
        """Let go of the collector: nothing is frozen any more (a process that goes on, such as a test run, collects
        the garbage the frozen objects held in the usual way)."""
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)
        gc.unfreeze()
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None

    def reclaim(self) -> Reclaimed:
        """Collect the garbage that frozen objects hold in cycles, then freeze the survivors again."""
        started = time.perf_counter()
        self._reclaiming = True  # its long pause is expected: logged once, by the caller
        try:
            gc.unfreeze()
            objects = gc.collect()
            gc.freeze()
        finally:
            self._reclaiming = False
        return Reclaimed(objects, time.perf_counter() - started)

    async def _reclaim_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reclaim_seconds)
            done = self.reclaim()
            log.info("garbage collector: reclaimed %d objects in %.0f ms", done.objects, done.seconds * 1000)

    def _freeze(self) -> None:
        if self._observe in gc.callbacks:  # not once stopped
            gc.freeze()

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        """`gc.callbacks`' hook: time each collection; after one of an older generation, freeze its survivors."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        paused = time.perf_counter() - self._started
        if paused >= STALL_SECONDS:
            global _last_stall_end
            _last_stall_end = time.monotonic()
        generation = info["generation"]
        GC_PAUSE_SECONDS.labels(str(generation)).observe(paused)
        if paused >= LONG_PAUSE_SECONDS and not self._reclaiming:
            log.warning(
                "garbage collector: generation %d stood the process still for %.0f ms (%d objects freed)",
                generation,
                paused * 1000,
                info["collected"],
            )
        if generation >= FREEZE_AFTER and self._loop is not None:
            # Outside the collection, on the loop's next turn (a collection may run in any thread): what survived
            # it is alive, and stays out of reach. After `reclaim`, which freezes by itself, it finds little new.
            self._loop.call_soon_threadsafe(self._freeze)
