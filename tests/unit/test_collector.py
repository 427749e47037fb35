"""The hub's garbage-collector policy (`exekra.hub.collector`): survivors of the older generations' collections leave
the collector's reach, garbage in cycles among them is reclaimed, every pause is reported, and a Redis timeout that
a long pause caused does not switch the queue mode."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub.collector import Collector, stood_still
from exekra.hub.dispatch.switching import SwitchingDispatcher
from exekra.hub.effects import EffectApplier
from exekra.hub.listener import Listener
from exekra.hub.observability import REGISTRY


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _collections(generation: int) -> float:
    return REGISTRY.get_sample_value("exekra_gc_pause_seconds_count", {"generation": str(generation)}) or 0.0


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = Collector()
    c.start()
    yield c
    await c.stop()


async def test_survivors_of_a_collection_of_generation_1_are_frozen_not_of_generation_0(collector: Collector) -> None:
    young = [[n] for n in range(1000)]  # alive and tracked: survivors of the next collection
    frozen_before = gc.get_freeze_count()
    gc.collect(0)
    assert gc.get_freeze_count() < frozen_before + len(young), "a collection of generation 0 freezes nothing"
    gc.collect(1)
    assert gc.get_freeze_count() >= frozen_before + len(young)


async def test_a_cycle_among_frozen_objects_waits_for_the_reclaim(collector: Collector) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.collect()  # the pair survives (referenced here): frozen
    del a, b  # only the cycle holds them: garbage
    gc.collect()
    assert gone() is not None, "a frozen cycle is out of the automatic collections' reach"
    done = collector.reclaim()
    assert gone() is None
    assert done.objects >= 2
    assert done.seconds > 0


async def test_pauses_are_reported_from_the_loop_and_stop_lets_go(collector: Collector) -> None:
    before = _collections(2)
    gc.collect()
    collector.report()
    assert _collections(2) == before + 1
    await collector.stop()
    assert gc.get_freeze_count() == 0, "a stopped collector unfreezes everything"
    kept = [[n] for n in range(1000)]
    gc.collect()
    collector.report()
    assert gc.get_freeze_count() == 0, f"a stopped collector freezes nothing more ({len(kept)} kept)"
    assert _collections(2) == before + 1


def _stand_still(seconds: float) -> None:
    """A full collection that takes `seconds` (a callback that sleeps while it runs)."""

    def slow(phase: str, _info: dict[str, int]) -> None:
        if phase == "stop":
            time.sleep(seconds)

    gc.callbacks.insert(0, slow)  # before the collector's: its pause includes the sleep
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(slow)


async def test_a_redis_timeout_right_after_a_long_collection_keeps_the_queue_mode(collector: Collector) -> None:
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:9/none",
        redis_url="redis://127.0.0.1:9/0",
        redis_timeout_seconds=0.5,
    )
    db = Database(settings, EffectApplier())  # never connects: the dispatcher is not started
    dispatcher = SwitchingDispatcher(db, settings, Listener(settings.asyncpg_dsn))
    dispatcher._switch("redis", "test")
    timed_out = RedisTimeout("Timeout reading from 127.0.0.1:9")

    _stand_still(0.1)
    assert not stood_still(at_least=0.25, within=0.5)
    dispatcher._redis_failed(timed_out)
    assert dispatcher.mode == "direct", "a pause much shorter than the timeout excuses nothing"

    dispatcher._switch("redis", "test")
    _stand_still(0.3)
    assert stood_still(at_least=0.25, within=0.5)
    dispatcher._redis_failed(timed_out)
    assert dispatcher.mode == "redis", "the process stood still, not Redis"
    dispatcher._redis_failed(RedisConnectionError("Connection refused"))
    assert dispatcher.mode == "direct", "any other failure switches at once"

    dispatcher._switch("redis", "test")
    await asyncio.sleep(0.5)
    assert not stood_still(at_least=0.25, within=0.5)
    dispatcher._redis_failed(timed_out)
    assert dispatcher.mode == "direct", "a timeout long after the pause switches"
    await db.dispose()
