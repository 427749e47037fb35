"""Concurrency limits in Redis mode: an execution over its workflow's limit is parked in its group's held set (no
peek finds it, so idle runners' polls cost nothing for it), is never lost, stays parked through reconciliation,
and goes back to the queue with its place when a slot of its group frees."""

from __future__ import annotations

import uuid

from exekra.hub.dispatch.queue import RedisQueue

from ..protocol import ProtocolRunner, eventually
from .conftest import RunningHub


def queue_of(hub: RunningHub) -> RedisQueue:
    queue = hub.dispatcher.queue
    assert queue is not None
    return queue


async def parked(queue: RedisQueue, *execution_ids: str) -> bool:
    held = set(await queue.held_ids())
    return all(uuid.UUID(i) in held for i in execution_ids)


async def finish(runner: ProtocolRunner, execution_id: str) -> None:
    work = await runner.take(execution_id)
    assert (await runner.start(execution_id, work["attempt"])).status_code == 200
    assert (await runner.complete(execution_id, work["attempt"])).status_code == 200


async def test_over_the_limit_executions_are_parked_then_released_in_order_when_slots_free(hub: RunningHub) -> None:
    queue = queue_of(hub)
    workflow_id = await hub.workflow(maxConcurrent=1)
    first_runner, idle = await hub.runner(), await hub.runner()
    assert (await first_runner.heartbeat()).status_code == 200
    running = await hub.create(workflow_id)
    await eventually(lambda: _assigned(hub, running), 5, "the first execution assigned")
    waiting = [await hub.create(workflow_id, priority=p) for p in (3, 7)]
    await eventually(lambda: parked(queue, *waiting), 5, "both waiting executions parked")
    assert await queue.waiting_ids() == []

    # An idle runner finds nothing in Redis: its poll waits without a claim.
    assert (await idle.heartbeat()).status_code == 200
    assert (await idle.poll()).status_code == 204
    # Reconciliation leaves them parked: it does not fight the limit.
    assert hub.dispatcher.redis is not None
    reconciled = await hub.dispatcher.redis.reconcile()
    assert (reconciled.enqueued, reconciled.dropped) == (0, 0)
    assert await parked(queue, *waiting)

    await finish(first_runner, running)
    high, low = waiting[1], waiting[0]
    await eventually(lambda: _assigned(hub, high), 5, "the higher priority one to start first")
    assert (await hub.execution(low))["status"] == "QUEUED"
    assert await parked(queue, low) and not await parked(queue, high)


async def test_a_parked_execution_that_is_stopped_leaves_the_held_set(hub: RunningHub) -> None:
    queue = queue_of(hub)
    workflow_id = await hub.workflow(maxConcurrent=1)
    runner = await hub.runner()
    assert (await runner.heartbeat()).status_code == 200
    running = await hub.create(workflow_id)
    await eventually(lambda: _assigned(hub, running), 5, "the first execution assigned")
    waiting = await hub.create(workflow_id)
    await eventually(lambda: parked(queue, waiting), 5, "the second one parked")

    assert (await hub.admin.post(f"/api/executions/{waiting}/stop")).status_code == 200
    await eventually(lambda: _not_parked(queue, waiting), 5, "the stopped one out of the held set")
    assert await queue.held_groups() == {}


async def _assigned(hub: RunningHub, execution_id: str) -> bool:
    return (await hub.execution(execution_id))["status"] == "ASSIGNED"


async def _not_parked(queue: RedisQueue, execution_id: str) -> bool:
    return not await parked(queue, execution_id)
