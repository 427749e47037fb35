"""Redis unavailable (SPEC §5): the hub switches to direct assignment within a second, loses and doubles
nothing, and reconciles the queue with PostgreSQL when Redis answers again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from exekra.embedded import EmbeddedRedis
from exekra.hub.dispatch.queue import QueueUnavailable

from ..protocol import eventually
from .conftest import (
    Ledger,
    RunningHub,
    empty_tables,
    hub_settings,
    running_hub,
    take_one,
    work_until,
)

EXECUTIONS = 1000
RUNNERS = 10


async def wait_mode(hub: RunningHub, mode: str, within: float) -> float:
    """Seconds until the hub switches to `mode`; GET /api/health then reports it."""
    started = time.monotonic()

    async def reached() -> bool:
        return hub.dispatcher.mode == mode

    await eventually(reached, within, f"queue mode {mode}", interval=0.005)
    switched = time.monotonic() - started
    assert await hub.queue_mode() == mode
    return switched


@pytest.mark.timeout(240)  # about 30 s on an idle 2-core machine; generous for a busy one
async def test_redis_killed_mid_load_every_execution_completes_once_and_the_queue_is_reconciled(
    hub: RunningHub, redis_server: EmbeddedRedis
) -> None:
    workflow_id = await hub.workflow()
    later_workflow = await hub.workflow(labels=["later"])  # no runner may take these until the end
    runners = [await hub.runner() for _ in range(RUNNERS)]
    ledger = Ledger()
    done = asyncio.Event()
    workers = [asyncio.create_task(work_until(r, ledger, done)) for r in runners]

    async def completed_at_least(count: int) -> bool:
        return len(ledger.completions) >= count

    try:
        created = await hub.create_many(workflow_id, EXECUTIONS // 2)
        await eventually(lambda: completed_at_least(EXECUTIONS // 5), 60, "work to flow through Redis")
        assert hub.dispatcher.mode == "redis"

        redis_server.kill()
        assert await wait_mode(hub, "direct", 2) <= 1.0, "direct mode within one second"
        created += await hub.create_many(workflow_id, EXECUTIONS // 2)
        later = [await hub.create(later_workflow) for _ in range(20)]
        await eventually(lambda: completed_at_least(EXECUTIONS * 3 // 4), 60, "work to flow in direct mode")
        assert await hub.queue_mode() == "direct"

        redis_server.start()  # on the same port, empty
        await wait_mode(hub, "redis", 10)
        queue = hub.dispatcher.queue
        assert queue is not None
        waiting = set(await queue.waiting_ids())
        assert {uuid.UUID(i) for i in later} <= waiting, "executions queued while Redis was down are re-enqueued"

        await eventually(lambda: completed_at_least(EXECUTIONS), 90, "every execution to complete")
    finally:
        done.set()
        await asyncio.gather(*workers)

    assert set(ledger.completions) == set(created)
    assert all(n == 1 for n in ledger.completions.values()), "an execution was completed twice"
    async with hub.hub.db.session() as session:
        rows = (
            await session.execute(
                text("SELECT status, attempt, count(*) FROM executions WHERE workflow_id = :w GROUP BY 1, 2"),
                {"w": uuid.UUID(workflow_id)},
            )
        ).all()
    assert rows == [("COMPLETED", 1, EXECUTIONS)]
    assert hub.dispatcher.mode_changes >= 2

    later_runner = await hub.runner(labels=["later"])
    for _ in later:
        assert await take_one(later_runner, ledger) in later
    assert await take_one(later_runner, ledger) is None


async def test_redis_restarted_empty_is_rebuilt_from_postgresql(hub: RunningHub, redis_server: EmbeddedRedis) -> None:
    workflow_id = await hub.workflow(labels=["nobody-has-this"])
    ids = [uuid.UUID(await hub.create(workflow_id, priority=n % 10)) for n in range(50)]
    queue = hub.dispatcher.queue
    assert queue is not None

    async def all_waiting() -> bool:
        try:
            return set(await queue.waiting_ids()) == set(ids)
        except QueueUnavailable:  # the hub's own client meets the restart too
            return False

    await eventually(all_waiting, 10, "the executions in Redis")
    changes = hub.dispatcher.mode_changes

    redis_server.kill()
    redis_server.start()  # data lost; the client reconnects without an error of its own
    await eventually(all_waiting, 10, "the queue rebuilt from PostgreSQL")
    await wait_mode(hub, "redis", 5)
    assert hub.dispatcher.mode_changes >= changes + 2, "the hub went through direct mode to reconcile"


async def test_unresponsive_redis_switches_to_direct_within_a_second_and_stale_ids_are_dropped_after(
    hub: RunningHub, redis_server: EmbeddedRedis
) -> None:
    workflow_id = await hub.workflow()
    runner = await hub.runner()  # not polling yet: the executions wait in Redis
    ids = [await hub.create(workflow_id) for _ in range(5)]
    queue = hub.dispatcher.queue
    assert queue is not None

    async def waiting(count: int) -> bool:
        return len(await queue.waiting_ids()) == count

    await eventually(lambda: waiting(5), 5, "the executions in Redis")
    assert redis_server.pid is not None
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        assert await wait_mode(hub, "direct", 3) <= 1.0, "direct mode within one second of Redis hanging"
        ledger = Ledger()
        taken = [await take_one(runner, ledger) for _ in ids]
        assert taken == ids, "direct mode assigns by priority and age from PostgreSQL"
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)

    await wait_mode(hub, "redis", 10)
    assert await waiting(0), "ids assigned while Redis hung are dropped by reconciliation"
    assert {"gone: not queued"} == {r["outcome"] for r in await queue.history("completed")}


async def test_hub_without_redis_url_stays_in_direct_mode(queue_database_url: str, tmp_path: Path) -> None:
    await empty_tables(queue_database_url)
    async with running_hub(hub_settings(queue_database_url, tmp_path, None)) as hub:
        assert await hub.queue_mode() == "direct"
        workflow_id = await hub.workflow()
        runner = await hub.runner()
        execution_id = await hub.create(workflow_id)
        assert await take_one(runner, Ledger(), wait=5) == execution_id
        assert (hub.dispatcher.mode, hub.dispatcher.mode_changes, hub.dispatcher.queue) == ("direct", 0, None)


async def test_prometheus_metrics_mark_the_switch_to_direct_and_back(
    hub: RunningHub, redis_server: EmbeddedRedis
) -> None:
    async def scrape() -> str:
        r = await hub.http.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        return r.text

    text = await scrape()
    assert 'exekra_queue_mode{mode="redis"} 1.0' in text and 'exekra_queue_mode{mode="direct"} 0.0' in text
    before = _mode_changes(text)
    redis_server.stop()
    await eventually(lambda: _scrape_says(scrape, 'exekra_queue_mode{mode="direct"} 1.0'), 5, "direct mode in /metrics")
    redis_server.start()
    await eventually(lambda: _scrape_says(scrape, 'exekra_queue_mode{mode="redis"} 1.0'), 15, "redis mode in /metrics")
    assert _mode_changes(await scrape()) >= before + 2


async def _scrape_says(scrape: Callable[[], Awaitable[str]], line: str) -> bool:
    return line in await scrape()


def _mode_changes(text: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith("exekra_queue_mode_changes_total "))
    return float(line.split()[1])
