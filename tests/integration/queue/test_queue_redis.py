"""The Redis execution queue (SPEC §5) against a real Redis server: ordering, routing, duplicate detection,
retries, bounded retention and stale ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import redis as sync_redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from exekra.embedded import EmbeddedRedis
from exekra.hub.audit.service import Actor
from exekra.hub.dispatch import redis_dispatcher, wakeups
from exekra.hub.dispatch.matcher import QueuedExecution
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.dispatch.queue import COMPLETED, FAILED, Head, RedisQueue
from exekra.hub.dispatch.wakeups import Wakeups
from exekra.hub.executions.creation import Created, ExecutionRequest
from exekra.hub.executions.models import TriggerType
from exekra.hub.lifecycle import Assignment
from exekra.hub.listener import Listener
from exekra.hub.redis_client import redis_client
from exekra.hub.tasks import cancel_tasks

from ..protocol import eventually
from .conftest import (
    Ledger,
    RunningHub,
    take_one,
    wakeup_subscribers,
    work_until,
)


@pytest.fixture
async def queue(redis_server: EmbeddedRedis) -> AsyncIterator[RedisQueue]:
    """The queue alone, on its own Redis server. Its commands may take 5 s: a hundred connections opened at once on
    a loaded machine took more than half a second once (a `TimeoutError` that nothing here tests)."""
    q = RedisQueue(redis_server.url, timeout=5.0, keep_completed=1000, keep_failed=5000)
    yield q
    await q.close()


def queued(priority: int, age_ms: int, labels: tuple[str, ...] = (), **fields: Any) -> QueuedExecution:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    return QueuedExecution(
        id=uuid.uuid4(),
        priority=priority,
        queued_at=base + timedelta(milliseconds=age_ms),
        pinned_runner_id=fields.get("pinned_runner_id"),
        runner_type=fields.get("runner_type"),
        labels=labels,
        activities=fields.get("activities", ()),
    )


async def test_peek_takes_priority_then_age_across_only_the_signatures_the_runner_satisfies(
    queue: RedisQueue,
) -> None:
    runner = RunnerProfile(uuid.uuid4(), "linux", ("a", "b"))
    plain_old = queued(5, 100)
    urgent = queued(9, 300, ("a",))
    gpu = queued(9, 200, ("gpu",))
    windows = queued(9, 100, runner_type="windows")
    pinned_elsewhere = queued(9, 100, pinned_runner_id=uuid.uuid4())
    pinned_here = queued(1, 0, pinned_runner_id=runner.id)
    older_same_priority = queued(5, 50, ("b", "a"), runner_type="linux")
    for item in (plain_old, urgent, gpu, windows, pinned_elsewhere, pinned_here, older_same_priority):
        assert await queue.enqueue(item)
    assert not await queue.enqueue(urgent), "an id is queued once"

    taken = []
    while (head := await queue.peek(runner)) is not None:
        taken.append(head.execution_id)
        await queue.mark_assigned(head.execution_id, runner.id)

    assert taken == [urgent.id, older_same_priority.id, plain_old.id, pinned_here.id]
    left = set(await queue.waiting_ids())
    assert left == {gpu.id, windows.id, pinned_elsewhere.id}
    assert len(await queue.signatures()) == 3, "emptied signatures leave the index"


async def test_peek_skips_executions_whose_activities_the_runner_does_not_declare(queue: RedisQueue) -> None:
    runner = RunnerProfile(uuid.uuid4(), None, ("a",), ("browser.open", "sql.query"))
    browse = queued(5, 300, activities=("browser.open",))
    both = queued(5, 200, ("a",), activities=("browser.open", "sql.query"))
    mail = queued(9, 100, activities=("email.send",))
    pinned_mail = queued(9, 0, pinned_runner_id=runner.id, activities=("email.send",))
    pinned_browse = queued(1, 0, pinned_runner_id=runner.id, activities=("browser.open",))
    for item in (browse, both, mail, pinned_mail, pinned_browse):
        assert await queue.enqueue(item)

    taken = []
    while (head := await queue.peek(runner)) is not None:
        taken.append(head.execution_id)
        await queue.mark_assigned(head.execution_id, runner.id)

    assert taken == [both.id, browse.id, pinned_browse.id]
    assert set(await queue.waiting_ids()) == {mail.id, pinned_mail.id}
    constraints = list((await queue.signatures()).values())
    assert sorted(c["activities"] for c in constraints) == [["email.send"], ["email.send"]]


async def test_retention_caps_hold_after_20000_job_records(queue: RedisQueue) -> None:
    jobs = [queued(5, n) for n in range(20_000)]
    for batch in _batches(jobs, 2000):
        await queue.enqueue_many(batch)
    failing = jobs[-6000:]  # more failures than the failed history keeps
    for batch in _batches(failing, 100):
        await asyncio.gather(*(queue.record_failure(job.id, "database unavailable", 3) for job in batch))
    for batch in _batches(jobs, 2000):  # every job leaves the queue through the history's capped list
        await queue.drop_many((Head(job.id, "", "") for job in batch), "STOPPED")

    assert await queue.history_sizes() == (1000, 5000)
    newest = (await queue.history(COMPLETED, 1))[0]
    assert newest["id"] == str(jobs[-1].id) and newest["outcome"] == "gone: STOPPED"
    assert (newest["attempts"], newest["lastError"]) == (3, "database unavailable")
    assert (await queue.history(FAILED, 1))[0]["id"] == str(failing[-1].id)
    # Nothing else is left: no job records, no queues, no index, only the two capped lists.
    assert sorted(await queue.redis.keys("*")) == ["exekra:jobs:completed", "exekra:jobs:failed"]


def _batches(items: list[QueuedExecution], size: int) -> list[list[QueuedExecution]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


async def test_executions_go_out_by_priority_then_age(hub: RunningHub) -> None:
    workflow_id = await hub.workflow()
    runner = await hub.runner()  # registered, not polling yet: nothing can be assigned
    low = await hub.create(workflow_id, priority=1)
    normal_old = await hub.create(workflow_id)
    urgent_old = await hub.create(workflow_id, priority=9)
    normal_new = await hub.create(workflow_id)
    urgent_new = await hub.create(workflow_id, priority=9)
    queue = hub.dispatcher.queue
    assert queue is not None
    await eventually(lambda: _waiting_count(queue, 5), 5, "all five executions in Redis")

    ledger = Ledger()
    while await take_one(runner, ledger):
        pass

    assert ledger.order == [urgent_old, urgent_new, normal_old, normal_new, low]
    assert await queue.waiting_ids() == []
    assigned = [r for r in await queue.history(COMPLETED) if r["outcome"] == "assigned"]
    assert {r["id"] for r in assigned} == set(ledger.order)


async def _waiting_count(queue: RedisQueue, count: int) -> bool:
    return len(await queue.waiting_ids()) == count


async def test_job_only_a_gpu_runner_may_take_waits_for_it_while_the_others_run(hub: RunningHub) -> None:
    gpu_workflow = await hub.workflow(labels=["gpu"], priority=9)
    plain_workflow = await hub.workflow()
    plain_runners = [await hub.runner(labels=["linux"]) for _ in range(2)]
    gpu_runner = await hub.runner(labels=["linux", "gpu"])
    gpu_job = await hub.create(gpu_workflow)
    plain_jobs = [await hub.create(plain_workflow) for _ in range(6)]

    ledger = Ledger()
    done = asyncio.Event()
    workers = [asyncio.create_task(work_until(r, ledger, done, wait=0.5)) for r in plain_runners]
    await eventually(lambda: _all_done(ledger, plain_jobs), 20, "the plain executions to complete")
    done.set()
    await asyncio.gather(*workers)

    assert (await hub.execution(gpu_job))["status"] == "QUEUED"
    assert hub.dispatcher.queue is not None
    assert await hub.dispatcher.queue.waiting_ids() == [uuid.UUID(gpu_job)]
    assert await take_one(gpu_runner, ledger) == gpu_job


async def _all_done(ledger: Ledger, ids: list[str]) -> bool:
    return all(ledger.completions[i] == 1 for i in ids)


async def test_a_runner_labelled_while_busy_is_offered_what_the_label_admits_when_it_completes(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end report offers its runner the queue's work with the labels its statement read, not those cached from
    the runner's last poll; and a runner it gave work leaves no quiet note that would hide it from the next poll."""

    async def alone() -> bool:  # quiet notes are kept only by the only hub process of a database
        return await hub.dispatcher.wakeups.count() == 1

    await eventually(alone, 10, "the other hub processes to leave the database")
    # The profile cached by the runner's poll (labels linux) outlives the test, however slowly it runs.
    monkeypatch.setattr(redis_dispatcher, "PROFILE_TTL_SECONDS", 3600.0)
    plain, gpu = await hub.workflow(), await hub.workflow(labels=["gpu"])
    runner = await hub.runner(labels=["linux"])
    first = await hub.create(plain)
    work = await runner.take(first)
    assert (await runner.start(first, work["attempt"])).status_code == 200
    waiting = await hub.create(gpu)  # no runner may take it yet
    assert hub.dispatcher.queue is not None
    queue = hub.dispatcher.queue

    async def in_the_queue() -> bool:
        return uuid.UUID(waiting) in await queue.waiting_ids()

    await eventually(in_the_queue, 5, "the execution to wait in the Redis queue")
    relabelled = await hub.admin.patch(f"/api/runners/{runner.runner_id}", json={"labels": ["linux", "gpu"]})
    assert relabelled.status_code == 200
    assert (await runner.complete(first, work["attempt"])).status_code == 200
    answer = await runner.poll(wait=0.05)  # a quiet renewal would answer 204
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == waiting


async def test_runner_type_routes_work_to_runners_of_that_type_only(hub: RunningHub) -> None:
    windows_workflow = await hub.workflow(runnerType="windows")
    linux_runner = await hub.runner(type="linux")
    windows_runner = await hub.runner(type="windows")
    job = await hub.create(windows_workflow)
    ledger = Ledger()

    assert await take_one(linux_runner, ledger) is None
    assert await take_one(windows_runner, ledger, wait=5) == job


async def test_duplicate_requests_return_the_first_execution_with_redis_and_without(
    hub: RunningHub, redis_server: EmbeddedRedis
) -> None:
    workflow_id = await hub.workflow()
    assert hub.hub.executions.dedup is not None

    async def create(key: str) -> Created:
        request = ExecutionRequest(
            workflow_id=workflow_id, inputs={}, trigger_type=TriggerType.API, triggered_by=None, idempotency_key=key
        )
        return await hub.hub.executions.create(request, Actor("SYSTEM"))

    # Through the API: the second request answers 200 with the first execution.
    body = {"workflowId": workflow_id, "inputs": {}, "idempotencyKey": "api-key"}
    first = await hub.admin.post("/api/executions", json=body)
    second = await hub.admin.post("/api/executions", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["duplicate"] is True
    assert second.json()["execution"]["id"] == first.json()["execution"]["id"]

    # The Redis mirror answers before PostgreSQL: even without the PostgreSQL key row it finds the first.
    original = await create("mirrored")
    assert not original.duplicate
    async with hub.hub.db.transaction() as session:
        await session.execute(text("DELETE FROM execution_keys WHERE key = 'mirrored'"))
    again = await create("mirrored")
    assert again.duplicate and again.execution.id == original.execution.id

    # Redis down: PostgreSQL's unique key alone decides, and nothing fails.
    redis_server.kill()
    await eventually(lambda: _mode_is(hub, "direct"), 2, "direct mode")
    created = await create("direct-key")
    repeated = await create("direct-key")
    assert not created.duplicate and repeated.duplicate and repeated.execution.id == created.execution.id
    first = await hub.admin.post("/api/executions", json={**body, "idempotencyKey": "api-direct"})
    second = await hub.admin.post("/api/executions", json={**body, "idempotencyKey": "api-direct"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["execution"]["id"] == first.json()["execution"]["id"]


async def _mode_is(hub: RunningHub, mode: str) -> bool:
    return await hub.queue_mode() == mode


class FlakyDatabase:
    """Stands in for `Matcher.for_execution`: the next `failures` calls fail like a lost connection."""

    def __init__(self, real: Callable[[uuid.UUID], Any]) -> None:
        self.real = real
        self.failures = 0
        self.calls = 0

    async def __call__(self, execution_id: uuid.UUID) -> Assignment | None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("SELECT …", {}, ConnectionResetError("connection lost"))
        result: Assignment | None = await self.real(execution_id)
        return result


async def test_transient_database_failures_are_retried_then_the_job_is_kept_failed_and_stays_queued(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow_id = await hub.workflow()
    runner = await hub.runner()
    redis, queue = hub.dispatcher.redis, hub.dispatcher.queue
    assert redis is not None and queue is not None
    flaky = FlakyDatabase(redis.matcher.for_execution)
    monkeypatch.setattr(redis.matcher, "for_execution", flaky)
    monkeypatch.setattr("exekra.hub.dispatch.redis_dispatcher.RETRY_BASE_SECONDS", 0.01)
    assert (await runner.poll()).status_code == 204  # ONLINE and idle

    flaky.failures = 2
    recovered = await hub.create(workflow_id)
    await eventually(lambda: _status_is(hub, recovered, "ASSIGNED"), 5, "the retried assignment")
    assert flaky.calls == 3
    ledger = Ledger()
    assert await take_one(runner, ledger) == recovered

    flaky.failures, flaky.calls = 99, 0
    gave_up = await hub.create(workflow_id)
    failed = await eventually(lambda: queue.history(FAILED, 1), 5, "the failed job record")

    assert flaky.calls == hub.hub.settings.queue_attempts == 3
    assert failed[0]["id"] == gave_up and failed[0]["attempts"] == 3
    assert "connection lost" in failed[0]["lastError"]
    job = await queue.job(uuid.UUID(gave_up))
    assert (job["state"], job["attempts"]) == ("failed", "3")
    assert (await hub.execution(gave_up))["status"] == "QUEUED"
    assert await queue.waiting_ids() == [uuid.UUID(gave_up)], "the execution stays queued for later matches"
    assert await take_one(runner, ledger) == gave_up
    completed = (await queue.history(COMPLETED, 1))[0]
    assert (completed["id"], completed["outcome"], completed["attempts"]) == (gave_up, "assigned", 3)


async def _status_is(hub: RunningHub, execution_id: str, status: str) -> bool:
    return (await hub.execution(execution_id))["status"] == status


async def test_an_id_redis_hands_out_again_is_dropped_not_assigned_twice(hub: RunningHub) -> None:
    workflow_id = await hub.workflow()
    runner = await hub.runner()
    execution_id = await hub.create(workflow_id)
    ledger = Ledger()
    # Matching a new execution is asynchronous (dispatch workers), so the first poll waits for it.
    assert await take_one(runner, ledger, wait=5) == execution_id
    queue = hub.dispatcher.queue
    assert queue is not None
    # Redis hands the finished execution out again (a duplicate enqueue, a stale copy…).
    await queue.enqueue(QueuedExecution(uuid.UUID(execution_id), 9, datetime.now(UTC), None, None, ()))

    assert (await runner.poll()).status_code == 204
    execution = await hub.execution(execution_id)
    assert (execution["status"], execution["attempt"]) == ("COMPLETED", 1)
    assert await queue.waiting_ids() == []
    assert (await queue.history(COMPLETED, 1))[0]["outcome"] == "gone: not queued"


async def test_stopping_a_queued_execution_takes_it_out_of_the_redis_queue(hub: RunningHub) -> None:
    # Otherwise every idle runner's poll would find the stale id first (a claim attempt and a check each).
    workflow_id = await hub.workflow()
    execution_id = await hub.create(workflow_id)
    queue = hub.dispatcher.queue
    assert queue is not None
    await eventually(lambda: _waiting(queue, execution_id), 5, "the execution in the Redis queue")
    stopped = await hub.admin.post(f"/api/executions/{execution_id}/stop")
    assert stopped.status_code == 200 and stopped.json()["execution"]["status"] == "STOPPED"

    async def gone() -> bool:
        return uuid.UUID(execution_id) not in await queue.waiting_ids()

    await eventually(gone, 5, "the stopped execution out of the Redis queue")
    record = (await queue.history(COMPLETED, 1))[0]
    assert (record["id"], record["outcome"]) == (execution_id, "gone: STOPPED")
    assert await queue.withdraw(uuid.UUID(execution_id), "STOPPED") is False  # already gone: a no-op


async def _waiting(queue: RedisQueue, execution_id: str) -> bool:
    return uuid.UUID(execution_id) in await queue.waiting_ids()


async def test_an_assignment_is_announced_by_the_script_that_records_it(queue: RedisQueue) -> None:
    execution_id, runner_id = uuid.uuid4(), uuid.uuid4()
    announce = (wakeups.CHANNEL, f"origin:{runner_id}")
    assert await queue.mark_assigned(uuid.uuid4(), runner_id, announce) == 0, "nobody subscribed yet"
    async with queue.redis.pubsub() as pubsub:
        await pubsub.subscribe(wakeups.CHANNEL)
        assert await queue.mark_assigned(execution_id, runner_id, announce) == 1, "received by one subscriber"
        messages = [await pubsub.get_message(timeout=5) for _ in range(2)]
    assert [(m["type"], m["data"]) for m in messages if m] == [("subscribe", 1), ("message", f"origin:{runner_id}")]
    record = (await queue.history(COMPLETED, 1))[0]
    assert (record["id"], record["outcome"], record["runnerId"]) == (str(execution_id), "assigned", str(runner_id))


def _acl_user(redis_server: EmbeddedRedis, name: str, rules: str) -> str:
    """A Redis ACL user with `rules` (as docs/deployment.md writes them); returns its URL."""
    with sync_redis.Redis.from_url(redis_server.url) as admin:
        admin.execute_command("ACL", "SETUSER", name, "reset", "on", ">secret", *rules.split())
    return redis_server.url.replace("redis://", f"redis://{name}:secret@", 1)


async def test_the_documented_acl_user_runs_the_queue_and_one_without_the_channel_still_records_assignments(
    redis_server: EmbeddedRedis,
) -> None:
    documented = _acl_user(redis_server, "exekra", "~exekra:* &exekra_wakeup +@all -@dangerous +info")
    no_channel = _acl_user(redis_server, "nochannel", "~exekra:* +@all -@dangerous +info")
    runner = RunnerProfile(uuid.uuid4(), None, ())
    for url, heard in ((documented, 0), (no_channel, -1)):
        queue = RedisQueue(url, timeout=0.5, keep_completed=1000, keep_failed=5000)
        try:
            item = queued(5, 0)
            assert await queue.enqueue(item)
            assert (await queue.peek(runner)).execution_id == item.id  # type: ignore[union-attr]
            assert await queue.identity()
            announce = (wakeups.CHANNEL, f"origin:{runner.id}")
            assert await queue.mark_assigned(item.id, runner.id, announce) == heard
            assert (await queue.history(COMPLETED, 1))[0]["id"] == str(item.id), "recorded all the same"
        finally:
            await queue.close()


async def test_wakeups_through_redis_wake_this_processes_polls_and_resubscribe_after_a_restart(
    redis_server: EmbeddedRedis,
) -> None:
    heard = Wakeups(Listener("postgresql://never-started"), cast(Any, None))
    redis = redis_client(redis_server.url, timeout=0.5, max_connections=4, pool_wait=1)
    hearing = asyncio.create_task(heard.hear_redis(redis_server.url, 0.5))
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    mine_polls, their_polls = heard.register(mine), heard.register(theirs)

    try:
        await wakeup_subscribers(redis_server.url, 1)
        assert await mine_polls.wait(5), "subscribing wakes every poll: announcements may have been missed"
        mine_polls.clear()
        their_polls.clear()
        await redis.publish(wakeups.CHANNEL, heard.payload(mine))  # this process's own: already woken locally
        await redis.publish(wakeups.CHANNEL, f"{uuid.uuid4().hex}:{theirs}")  # another process's
        assert await their_polls.wait(5)
        assert not mine_polls.is_set(), "delivered in order: the own announcement, before, was ignored"

        redis_server.stop()
        their_polls.clear()
        redis_server.start()
        await wakeup_subscribers(redis_server.url, 1)  # again, once Redis is back
        assert await their_polls.wait(5), "resubscribing wakes every poll"
    finally:
        await cancel_tasks([hearing])
        await redis.aclose()


async def test_a_subscription_redis_refuses_wakes_no_poll(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # Only a confirmed subscription wakes the polls: a refused one, retried, would otherwise answer every long
    # poll of the process at once, over and over.
    no_channel = _acl_user(redis_server, "nochannel", "~exekra:* +@all -@dangerous +info")
    heard = Wakeups(Listener("postgresql://never-started"), cast(Any, None))
    polls = heard.register(uuid.uuid4())
    hearing = asyncio.create_task(heard.hear_redis(no_channel, 0.5))

    async def refused() -> bool:
        return any("NOPERM" in r.getMessage() or "permission" in r.getMessage() for r in caplog.records)

    try:
        with caplog.at_level("WARNING", logger="exekra.hub.dispatch.wakeups"):
            await eventually(refused, 10, "Redis to refuse the subscription")
        assert not polls.is_set()
        assert not hearing.done(), "it keeps trying"
    finally:
        await cancel_tasks([hearing])
