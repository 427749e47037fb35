"""The scheduler (SPEC §9): exactly one fire per (trigger, fire time), catch-up, failures, never drafts, and
the overlap policies (allow, skip, queue_one) while a run of the schedule is live.

The session's hub runs its own scheduler loop too; the tests also fire explicitly, so every outcome
checked here must hold whichever of them (or both at once) handled a fire.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text, update

from exekra.db.session import Database
from exekra.hub.audit.models import AuditEntry
from exekra.hub.audit.service import Actor
from exekra.hub.context import Hub
from exekra.hub.effects import EffectApplier
from exekra.hub.executions.creation import ExecutionRequest
from exekra.hub.executions.models import Execution, TriggerType
from exekra.hub.executions.service import ExecutionService
from exekra.hub.triggers import firing, overlap
from exekra.hub.triggers.models import Trigger, TriggerFire
from exekra.hub.triggers.scheduler import Scheduler

from .conftest import SIMPLE_DEFINITION, HubWith
from .protocol import eventually, publish_workflow

# Tests make a fire due by moving `next_fire_at` into the past; the schedule itself then fires once a year, so
# that no second fire comes due while a test runs (every minute, one would whenever a test crossed a minute).
YEARLY = "0 0 1 1 *"


async def _schedule(admin: httpx.AsyncClient, workflow_id: str, cron: str = YEARLY, **fields: Any) -> str:
    body = {"workflowId": workflow_id, "type": "SCHEDULE", "name": "s", "cronExpression": cron, **fields}
    r = await admin.post("/api/triggers", json=body)
    assert r.status_code == 201, r.text
    trigger_id: str = r.json()["trigger"]["id"]
    return trigger_id


async def _make_due(hub: Hub, *trigger_ids: str, ago: timedelta = timedelta(seconds=1)) -> None:
    """Move the triggers' next fire time into the past, as if the hub had been waiting for it."""
    ids = [uuid.UUID(t) for t in trigger_ids]
    async with hub.db.transaction() as session:
        await session.execute(
            update(Trigger).where(Trigger.id.in_(ids)).values(next_fire_at=func.date_trunc("second", func.now() - ago))
        )


async def _trigger(hub: Hub, trigger_id: str) -> Trigger:
    async with hub.db.session() as session:
        trigger = await session.get(Trigger, uuid.UUID(trigger_id))
    assert trigger is not None
    return trigger


async def _settled(hub: Hub, *trigger_ids: str, within: float = 10) -> None:
    """Wait until every trigger's next fire time is in the future (its due fire was handled)."""
    deadline = time.monotonic() + within
    while True:
        async with hub.db.session() as session:
            pending = (
                await session.execute(
                    select(func.count())
                    .select_from(Trigger)
                    .where(Trigger.id.in_([uuid.UUID(t) for t in trigger_ids]), Trigger.next_fire_at <= func.now())
                )
            ).scalar_one()
        if pending == 0:
            return
        assert time.monotonic() < deadline, "due fires were not handled in time"
        await asyncio.sleep(0.05)


async def _executions(hub: Hub, trigger_id: str) -> list[Execution]:
    async with hub.db.session() as session:
        rows = await session.execute(
            select(Execution).where(Execution.triggered_by == trigger_id).order_by(Execution.created_at)
        )
        return list(rows.scalars())


def _scheduler(executions: ExecutionService) -> Scheduler:
    return Scheduler(executions, interval=1, keep_fires_days=30)


def _another_process(hub: Hub) -> ExecutionService:
    """The execution service of another hub process: its own engine and effect applier, the same database."""
    effects = EffectApplier()
    effects.bind(hub.dispatcher)
    db = Database(hub.settings, effects)
    return ExecutionService(db, hub.settings, hub.dispatcher, hub.listener, secret_key=hub.secret_key, dedup=None)


async def test_due_schedule_fires_once_with_the_trigger_inputs(admin: httpx.AsyncClient, hub: Hub) -> None:
    definition = {"inputs": {"n": {"type": "integer", "default": 1}}, **SIMPLE_DEFINITION}
    workflow_id = await publish_workflow(admin, "wf", definition)
    trigger_id = await _schedule(admin, workflow_id, inputs={"n": 7})
    await _make_due(hub, trigger_id)
    scheduler = _scheduler(hub.executions)
    await scheduler.fire_due()
    await _settled(hub, trigger_id)
    await scheduler.fire_due()

    [execution] = await _executions(hub, trigger_id)
    assert execution.trigger_type == TriggerType.SCHEDULE and execution.inputs == {"n": 7}
    assert execution.idempotency_key is not None and execution.idempotency_key.startswith(f"schedule:{trigger_id}:")
    trigger = await _trigger(hub, trigger_id)
    assert trigger.last_fired_at is not None and trigger.last_error is None
    assert trigger.next_fire_at is not None and trigger.next_fire_at > trigger.last_fired_at
    async with hub.db.session() as session:
        fires = list((await session.execute(select(TriggerFire))).scalars())
        actors = (
            await session.execute(
                select(AuditEntry.actor_type, AuditEntry.actor_id).where(AuditEntry.action == "execution.create")
            )
        ).all()
    assert [(f.fire_time, f.execution_id) for f in fires] == [(trigger.last_fired_at, execution.id)]
    assert actors == [("TRIGGER", trigger_id)]


async def test_two_schedulers_racing_fire_each_schedule_exactly_once(admin: httpx.AsyncClient, hub: Hub) -> None:
    """Two hub processes (two engines, two schedulers, plus the hub's own loop) share the due fires."""
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_ids = [await _schedule(admin, workflow_id, name=f"s{i}") for i in range(15)]
    other = _another_process(hub)
    try:
        await _make_due(hub, *trigger_ids)
        first, second = _scheduler(hub.executions), _scheduler(other)
        await asyncio.gather(first.fire_due(), second.fire_due(), first.fire_due(), second.fire_due())
        await _settled(hub, *trigger_ids)
    finally:
        await other.db.dispose()
    for trigger_id in trigger_ids:
        assert len(await _executions(hub, trigger_id)) == 1


async def test_after_downtime_only_one_catch_up_run_fires(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id, cron="0 * * * *")
    await _make_due(hub, trigger_id, ago=timedelta(hours=3))  # three missed hours
    scheduler = _scheduler(hub.executions)
    for _ in range(3):
        await scheduler.fire_due()
    await _settled(hub, trigger_id)

    assert len(await _executions(hub, trigger_id)) == 1
    trigger = await _trigger(hub, trigger_id)
    assert trigger.next_fire_at is not None
    async with hub.db.session() as session:
        now = (await session.execute(select(func.now()))).scalar_one()
    assert now < trigger.next_fire_at <= now + timedelta(seconds=3601)
    assert trigger.last_fired_at is not None and trigger.last_fired_at < now - timedelta(hours=2)


async def test_fire_whose_execution_survived_a_crash_is_not_repeated(admin: httpx.AsyncClient, hub: Hub) -> None:
    """A process died after committing the execution but before recording the fire: the retry finds it."""
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id, enabled=False)
    fire_time = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
    request = ExecutionRequest(
        workflow_id=workflow_id,
        inputs={},
        trigger_type=TriggerType.SCHEDULE,
        triggered_by=trigger_id,
        idempotency_key=firing.schedule_key(uuid.UUID(trigger_id), fire_time),
        key_window_seconds=firing.SCHEDULE_KEY_WINDOW_SECONDS,
    )
    # The window a normal duplicate check would use has long passed for this key: the fire must still match.
    survivor = await hub.executions.create(request, Actor("TRIGGER", trigger_id))
    async with hub.db.transaction() as session:
        await session.execute(text("UPDATE execution_keys SET created_at = now() - interval '30 days'"))
        await session.execute(
            update(Trigger).where(Trigger.id == uuid.UUID(trigger_id)).values(enabled=True, next_fire_at=fire_time)
        )

    queued = await firing.fire_schedule(
        hub.executions, firing.Due(uuid.UUID(trigger_id), fire_time), keep_fires_days=30
    )

    assert queued is not None and queued.id == survivor.execution.id
    assert [e.id for e in await _executions(hub, trigger_id)] == [survivor.execution.id]


async def test_fire_without_published_version_records_last_error_and_audit(admin: httpx.AsyncClient, hub: Hub) -> None:
    r = await admin.post("/api/workflows", json={"name": "draft-only", "definition": SIMPLE_DEFINITION})
    workflow_id = r.json()["workflow"]["id"]
    trigger_id = await _schedule(admin, workflow_id)
    await _make_due(hub, trigger_id)
    await _scheduler(hub.executions).fire_due()
    await _settled(hub, trigger_id)

    assert await _executions(hub, trigger_id) == []
    trigger = await _trigger(hub, trigger_id)
    assert trigger.last_error == "workflow draft-only has no published version"
    assert trigger.last_error_at is not None and trigger.last_fired_at is None
    shown = (await admin.get(f"/api/triggers/{trigger_id}")).json()["trigger"]
    assert shown["lastError"] == trigger.last_error and shown["lastErrorAt"] is not None
    async with hub.db.session() as session:
        audit = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "trigger.fire_failed"))
        ).scalar_one()
    assert (audit.actor_type, audit.actor_id, audit.entity_id) == ("TRIGGER", trigger_id, trigger_id)
    assert audit.details is not None and audit.details["error"] == trigger.last_error

    # Once published, the next fire succeeds and clears the error.
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200
    await _make_due(hub, trigger_id, ago=timedelta(minutes=5))  # another fire time than the failed one
    await _scheduler(hub.executions).fire_due()
    await _settled(hub, trigger_id)
    assert len(await _executions(hub, trigger_id)) == 1
    assert (await _trigger(hub, trigger_id)).last_error is None


async def test_schedule_runs_the_published_version_never_the_newer_draft(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    r = await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": SIMPLE_DEFINITION})
    assert r.json()["version"]["number"] == 2
    trigger_id = await _schedule(admin, workflow_id)
    await _make_due(hub, trigger_id)
    await _scheduler(hub.executions).fire_due()
    await _settled(hub, trigger_id)
    [execution] = await _executions(hub, trigger_id)
    detail = (await admin.get(f"/api/executions/{execution.id}")).json()["execution"]
    assert detail["versionNumber"] == 1


async def test_disabled_schedule_never_fires(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id, enabled=False)
    async with hub.db.transaction() as session:
        # Even a stale next fire time left on a disabled trigger is not acted on.
        await session.execute(
            update(Trigger).where(Trigger.id == uuid.UUID(trigger_id)).values(next_fire_at=func.now())
        )
    due = firing.Due(uuid.UUID(trigger_id), (await _trigger(hub, trigger_id)).next_fire_at)  # type: ignore[arg-type]
    assert await firing.fire_schedule(hub.executions, due, keep_fires_days=30) is None
    assert await _executions(hub, trigger_id) == []


async def test_rebuild_at_start_fills_missing_next_fire_times_and_keeps_due_ones(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    missing = await _schedule(admin, workflow_id, cron=YEARLY, name="missing")
    due = await _schedule(admin, workflow_id, cron=YEARLY, name="due")
    async with hub.db.transaction() as session:
        await session.execute(update(Trigger).where(Trigger.id == uuid.UUID(missing)).values(next_fire_at=None))
        await session.execute(
            update(Trigger).where(Trigger.id == uuid.UUID(due)).values(next_fire_at=func.now() - timedelta(days=400))
        )
    await firing.rebuild_schedules(hub.db)
    rebuilt = await _trigger(hub, missing)
    assert rebuilt.next_fire_at is not None and (rebuilt.next_fire_at.month, rebuilt.next_fire_at.day) == (1, 1)
    kept = await _trigger(hub, due)
    # Either still waiting for its catch-up run, or already caught up by the hub's loop.
    assert kept.next_fire_at is not None
    await _settled(hub, due)
    assert len(await _executions(hub, due)) == 1


async def test_a_recorded_fire_time_is_never_handled_again(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id)
    await _make_due(hub, trigger_id, ago=timedelta(minutes=2))
    await _scheduler(hub.executions).fire_due()
    await _settled(hub, trigger_id)
    fired = (await _trigger(hub, trigger_id)).last_fired_at
    # As if the move to the next fire time had been lost: the same fire time is due again.
    async with hub.db.transaction() as session:
        await session.execute(update(Trigger).where(Trigger.id == uuid.UUID(trigger_id)).values(next_fire_at=fired))
    await _scheduler(hub.executions).fire_due()
    await _settled(hub, trigger_id)
    assert len(await _executions(hub, trigger_id)) == 1
    assert (await _trigger(hub, trigger_id)).last_fired_at == fired


async def _fire(hub: Hub, *trigger_ids: str, minutes_ago: int) -> None:
    """Make the triggers due at a fire time of their own (`minutes_ago`), fire, and wait until it was handled."""
    await _make_due(hub, *trigger_ids, ago=timedelta(minutes=minutes_ago))
    await _scheduler(hub.executions).fire_due()
    await _settled(hub, *trigger_ids)


async def _fire_records(hub: Hub, trigger_id: str) -> list[TriggerFire]:
    async with hub.db.session() as session:
        rows = await session.execute(
            select(TriggerFire).where(TriggerFire.trigger_id == uuid.UUID(trigger_id)).order_by(TriggerFire.fire_time)
        )
        return list(rows.scalars())


async def test_allow_fires_again_while_the_first_run_is_still_queued(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id)  # no overlapPolicy: allow
    await _fire(hub, trigger_id, minutes_ago=10)
    await _fire(hub, trigger_id, minutes_ago=5)

    executions = await _executions(hub, trigger_id)
    assert [e.status for e in executions] == ["QUEUED", "QUEUED"]  # no runner: both still wait
    assert (await _trigger(hub, trigger_id)).last_skipped_at is None


async def test_skip_fires_once_while_the_run_is_live_and_records_the_skip(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id, overlapPolicy="skip")
    await _fire(hub, trigger_id, minutes_ago=10)
    [first] = await _executions(hub, trigger_id)
    fired = (await _trigger(hub, trigger_id)).last_fired_at
    await _fire(hub, trigger_id, minutes_ago=5)

    assert [e.id for e in await _executions(hub, trigger_id)] == [first.id]
    trigger = await _trigger(hub, trigger_id)
    assert trigger.last_skip_reason == "previous run still running (overlap policy skip)"
    assert trigger.last_skipped_at is not None and fired is not None and trigger.last_skipped_at > fired
    assert trigger.last_fired_at == fired and trigger.last_error is None  # a skip is not a failure
    started, skipped = await _fire_records(hub, trigger_id)
    assert (started.execution_id, started.skip_reason) == (first.id, None)
    assert (skipped.fire_time, skipped.execution_id, skipped.skip_reason) == (
        trigger.last_skipped_at,
        None,
        trigger.last_skip_reason,
    )
    shown = (await admin.get(f"/api/triggers/{trigger_id}")).json()["trigger"]
    assert shown["lastSkipReason"] == trigger.last_skip_reason and shown["lastSkippedAt"] is not None

    # Once the run has ended, the next fire starts one again.
    assert (await admin.post(f"/api/executions/{first.id}/stop")).status_code == 200
    await _fire(hub, trigger_id, minutes_ago=1)
    assert len(await _executions(hub, trigger_id)) == 2


async def test_queue_one_keeps_one_fire_waiting_and_starts_it_when_the_run_ends(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id, overlapPolicy="queue_one")
    await _fire(hub, trigger_id, minutes_ago=15)
    [first] = await _executions(hub, trigger_id)
    await _fire(hub, trigger_id, minutes_ago=10)  # waits: the first run is live
    waiting = (await _trigger(hub, trigger_id)).waiting_fire_at
    await _fire(hub, trigger_id, minutes_ago=5)  # one already waits: skipped

    assert waiting is not None and [e.id for e in await _executions(hub, trigger_id)] == [first.id]
    trigger = await _trigger(hub, trigger_id)
    assert trigger.waiting_fire_at == waiting
    assert trigger.last_skip_reason == overlap.SKIPPED_WHILE_WAITING and trigger.last_skipped_at is not None
    assert trigger.last_skipped_at > waiting
    # Still waiting on later rounds while the run is live: nothing overlaps it.
    await _scheduler(hub.executions).fire_due()
    assert len(await _executions(hub, trigger_id)) == 1

    assert (await admin.post(f"/api/executions/{first.id}/stop")).status_code == 200
    await _scheduler(hub.executions).fire_due()  # or the hub's own loop, whichever comes first

    async def second_run() -> Execution | None:
        runs = await _executions(hub, trigger_id)
        return runs[1] if len(runs) == 2 else None

    second = await eventually(second_run, 10, "the waiting fire to start")
    assert second.idempotency_key == firing.schedule_key(uuid.UUID(trigger_id), waiting)

    # The run commits in its own transaction, a moment before the fire's transaction clears the wait.
    async def started_trigger() -> Trigger | None:
        found = await _trigger(hub, trigger_id)
        return found if found.waiting_fire_at is None else None

    trigger = await eventually(started_trigger, 10, "the trigger to stop waiting")
    assert trigger.last_fired_at == waiting
    assert [(f.execution_id is not None, f.skip_reason) for f in await _fire_records(hub, trigger_id)] == [
        (True, None),
        (True, None),
        (False, overlap.SKIPPED_WHILE_WAITING),
    ]


async def test_disabling_a_queue_one_schedule_drops_its_waiting_fire(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger_id = await _schedule(admin, workflow_id, overlapPolicy="queue_one")
    await _fire(hub, trigger_id, minutes_ago=10)
    [first] = await _executions(hub, trigger_id)
    await _fire(hub, trigger_id, minutes_ago=5)
    assert (await _trigger(hub, trigger_id)).waiting_fire_at is not None

    assert (await admin.patch(f"/api/triggers/{trigger_id}", json={"enabled": False})).status_code == 200
    assert (await admin.post(f"/api/executions/{first.id}/stop")).status_code == 200
    await _scheduler(hub.executions).fire_due()

    assert len(await _executions(hub, trigger_id)) == 1
    assert (await _trigger(hub, trigger_id)).waiting_fire_at is None
    dropped = (await _fire_records(hub, trigger_id))[-1]
    assert dropped.execution_id is None and dropped.skip_reason is not None and "dropped" in dropped.skip_reason


async def test_overlap_policies_hold_with_two_hub_processes_firing(
    admin: httpx.AsyncClient, hub: Hub, hub_with: HubWith
) -> None:
    """Two hub processes, each with its scheduler loop, plus explicit rounds from both, fire the same schedules
    at three fire times: a skip schedule never has more than its first run, a queue_one one never more than
    its first run and one waiting fire."""
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    skipping = [await _schedule(admin, workflow_id, name=f"skip{i}", overlapPolicy="skip") for i in range(5)]
    queueing = [await _schedule(admin, workflow_id, name=f"queue{i}", overlapPolicy="queue_one") for i in range(5)]
    everything = [*skipping, *queueing]
    async with hub_with() as app:
        other: Hub = app.state.hub
        first, second = _scheduler(hub.executions), _scheduler(other.executions)
        for minutes_ago in (15, 10, 5):
            await _make_due(hub, *everything, ago=timedelta(minutes=minutes_ago))
            await asyncio.gather(first.fire_due(), second.fire_due(), first.fire_due(), second.fire_due())
            await _settled(hub, *everything)

    for trigger_id in everything:
        [run] = await _executions(hub, trigger_id)
        assert run.status == "QUEUED"
        fires = await _fire_records(hub, trigger_id)
        assert len(fires) == 3 and fires[0].execution_id == run.id
    for trigger_id in skipping:
        assert [f.skip_reason for f in await _fire_records(hub, trigger_id)][1:] == [overlap.SKIPPED_WHILE_LIVE] * 2
    for trigger_id in queueing:
        trigger = await _trigger(hub, trigger_id)
        fires = await _fire_records(hub, trigger_id)
        assert trigger.waiting_fire_at == fires[1].fire_time
        assert [f.skip_reason for f in fires][1:] == [None, overlap.SKIPPED_WHILE_WAITING]


async def test_a_waiting_fire_and_a_new_fire_racing_in_two_hub_processes_start_one_run(
    admin: httpx.AsyncClient, hub: Hub, hub_with: HubWith
) -> None:
    """queue_one, the live run just ended: one process may start the waiting fire while the other handles the
    next fire. Whichever wins, exactly one new run starts, and the new fire waits behind it or is skipped."""
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    queueing = [await _schedule(admin, workflow_id, name=f"queue{i}", overlapPolicy="queue_one") for i in range(5)]
    await _fire(hub, *queueing, minutes_ago=15)
    await _fire(hub, *queueing, minutes_ago=10)  # each has its first run live and one fire waiting
    for trigger_id in queueing:
        [run] = await _executions(hub, trigger_id)
        assert (await admin.post(f"/api/executions/{run.id}/stop")).status_code == 200
    async with hub_with() as app:
        first, second = _scheduler(hub.executions), _scheduler(app.state.hub.executions)
        await _make_due(hub, *queueing, ago=timedelta(minutes=5))
        await asyncio.gather(first.fire_due(), second.fire_due(), first.fire_due(), second.fire_due())
        await _settled(hub, *queueing)

        async def all_started() -> bool:
            return all([len(await _executions(hub, t)) == 2 for t in queueing])

        await eventually(all_started, 10, "every waiting fire to start")

    for trigger_id in queueing:
        stopped, started = await _executions(hub, trigger_id)
        assert (stopped.status, started.status) == ("STOPPED", "QUEUED")
        trigger = await _trigger(hub, trigger_id)
        waited, newest = (await _fire_records(hub, trigger_id))[1:]
        assert started.idempotency_key == firing.schedule_key(uuid.UUID(trigger_id), waited.fire_time)
        # The new fire came either after the waiting one started (it waits now) or before (it was skipped).
        assert (trigger.waiting_fire_at, newest.skip_reason) in (
            (newest.fire_time, None),
            (None, overlap.SKIPPED_WHILE_WAITING),
        )
