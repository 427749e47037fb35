"""The hub's garbage-collector policy (`exekra.hub.collector`): survivors of a full collection leave the collector's
reach, garbage in cycles among them is reclaimed, every pause is observed."""

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
from exekra.hub.collector import STALL_SECONDS, Collector, stood_still_within
from exekra.hub.dispatch.switching import SwitchingDispatcher
from exekra.hub.effects import EffectApplier
from exekra.hub.listener import Listener
from exekra.hub.observability import REGISTRY


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _full_collections() -> float:
    return REGISTRY.get_sample_value("exekra_gc_pause_seconds_count", {"generation": "2"}) or 0.0


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = Collector()
    c.start()
    yield c
    await c.stop()


async def test_what_survives_a_full_collection_is_frozen_on_the_next_turn(collector: Collector) -> None:
    kept = [[n] for n in range(1000)]  # alive, tracked: survivors of the next collection
    frozen_before = gc.get_freeze_count()
    gc.collect()
    await asyncio.sleep(0)
    assert gc.get_freeze_count() >= frozen_before + len(kept)


async def test_what_outlives_two_collections_is_frozen(collector: Collector) -> None:
    kept = [[n] for n in range(1000)]
    frozen_before = gc.get_freeze_count()
    gc.collect(1)
    await asyncio.sleep(0)
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    young = [[n] for n in range(1000)]
    gc.collect(0)
    await asyncio.sleep(0)
    assert gc.get_freeze_count() < frozen_before + len(kept) + len(young), "one young collection freezes nothing"


async def test_a_cycle_among_frozen_objects_waits_for_the_reclaim(collector: Collector) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.collect()
    await asyncio.sleep(0)  # the pair survived (referenced here): frozen now
    del a, b  # only the cycle holds them: garbage
    gc.collect()
    assert gone() is not None, "a frozen cycle is out of the automatic collections' reach"
    done = collector.reclaim()
    assert gone() is None
    assert done.objects >= 2
    assert done.seconds > 0


async def test_every_collection_is_observed_and_stop_lets_go(collector: Collector) -> None:
    before = _full_collections()
    gc.collect()
    assert _full_collections() == before + 1
    await collector.stop()
    assert gc.get_freeze_count() == 0, "a stopped collector unfreezes everything"
    kept = [[n] for n in range(1000)]
    gc.collect()
    await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0, f"a stopped collector freezes nothing more ({len(kept)} kept)"
    assert _full_collections() == before + 1


def _stand_still(seconds: float) -> None:
    """A full collection that takes `seconds` (a callback that sleeps while it runs)."""

    def slow(phase: str, _info: dict[str, object]) -> None:
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

    _stand_still(STALL_SECONDS * 1.5)
    assert stood_still_within(0.5)
    dispatcher._redis_failed(timed_out)
    assert dispatcher.mode == "redis", "the process stood still, not Redis"

    dispatcher._redis_failed(RedisConnectionError("Connection refused"))
    assert dispatcher.mode == "direct", "any other failure switches at once"
    dispatcher._switch("redis", "test")
    await asyncio.sleep(0.5)
    assert not stood_still_within(0.5)
    dispatcher._redis_failed(timed_out)
    assert dispatcher.mode == "direct", "a timeout with no pause before it switches"
    await db.dispose()
