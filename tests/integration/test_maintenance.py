"""The hub's stale checks (SPEC §4), one pass at a time: each rule, its audit, and fencing of late reports.

Time is moved by back-dating rows (the checks use the database clock); the hub's own maintenance loop is
paused for this module so that only the passes the tests run act.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from exekra.config import Settings
from exekra.db.locks import database_now
from exekra.hub.context import Hub
from exekra.hub.executions.stale import StaleReport
from exekra.hub.maintenance import Maintenance

from .conftest import SIMPLE_DEFINITION
from .protocol import ProtocolRunner, backdate, eventually, publish_workflow

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
async def paused_maintenance(hub_app: FastAPI) -> AsyncIterator[None]:
    maintenance: Maintenance = hub_app.state.maintenance
    await maintenance.stop()
    yield
    await maintenance.start()


@pytest.fixture
def settings(hub: Hub) -> Iterator[Settings]:
    """The hub's settings, restored after the test."""
    saved = hub.settings.model_dump()
    yield hub.settings
    for name, value in saved.items():
        if getattr(hub.settings, name) != value:
            setattr(hub.settings, name, value)


async def run_pass(hub: Hub) -> StaleReport:
    """One pass of the stale checks, as the maintenance loop runs it (here without the start-up floor)."""
    return await hub.executions.check_stale(not_before=None)


async def execution(admin: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]
    return body


async def runner_row(admin: httpx.AsyncClient, runner: ProtocolRunner) -> dict[str, Any]:
    body: dict[str, Any] = (await admin.get(f"/api/runners/{runner.runner_id}")).json()["runner"]
    return body


async def system_audit(hub: Hub, entity_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with hub.db.session() as session:
        rows = await session.execute(
            text("SELECT action, details FROM audit_log WHERE actor_type = 'SYSTEM' AND entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(row[0], row[1]) for row in rows]


async def online_runner(admin: httpx.AsyncClient, client: httpx.AsyncClient, name: str) -> ProtocolRunner:
    runner = await ProtocolRunner.register(admin, client, name)
    assert (await runner.auth()).status_code == 200
    assert (await runner.heartbeat()).status_code == 200
    return runner


async def create(admin: httpx.AsyncClient, workflow_id: str, **fields: Any) -> str:
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, **fields})
    assert r.status_code == 201, r.text
    execution_id: str = r.json()["execution"]["id"]
    return execution_id


async def take(runner: ProtocolRunner, execution_id: str, attempt: int) -> None:
    """The runner's poll hands it this execution at this attempt."""
    polled = await runner.poll(wait=5)
    assert polled.status_code == 200, polled.text
    work = polled.json()["execution"]
    assert (work["id"], work["attempt"]) == (execution_id, attempt)


async def test_silent_runner_goes_offline_audited_and_comes_back_on_its_next_heartbeat(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    silent = await online_runner(admin, client, "silent")
    alive = await online_runner(admin, client, "alive")
    assert silent.runner_id and alive.runner_id
    await backdate(hub, "runners", "last_heartbeat_at", silent.runner_id, settings.runner_offline_seconds + 1)
    await backdate(hub, "runners", "last_heartbeat_at", alive.runner_id, settings.runner_offline_seconds - 5)

    report = await run_pass(hub)

    assert report.runners_offline == 1
    assert (await runner_row(admin, silent))["status"] == "OFFLINE"
    assert (await runner_row(admin, alive))["status"] == "ONLINE"
    [(action, details)] = await system_audit(hub, silent.runner_id)
    assert action == "runner.offline" and details["lastHeartbeatAt"]
    assert (await silent.heartbeat()).json()["status"] == "ONLINE"
    assert (await run_pass(hub)).runners_offline == 0


async def test_a_poll_is_a_sign_of_life_too(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    runner = await online_runner(admin, client, "poller")
    assert runner.runner_id
    await backdate(hub, "runners", "last_heartbeat_at", runner.runner_id, settings.runner_offline_seconds + 1)
    assert (await runner.poll()).status_code == 204
    await run_pass(hub)
    assert (await runner_row(admin, runner))["status"] == "ONLINE"


async def test_queued_past_queue_timeout_fails_with_the_reason_and_a_system_audit(
    hub: Hub, admin: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "nobody-runs-this", SIMPLE_DEFINITION)
    old = await create(admin, workflow_id)
    young = await create(admin, workflow_id)
    await backdate(hub, "executions", "queued_at", old, settings.queue_timeout_seconds + 1)

    # A pass skips a row another transaction holds (SKIP LOCKED), such as a create's match still looking for a
    # runner beside its request: the next pass takes it. Each execution is moved once, whatever the passes.
    moved: Counter[str] = Counter()

    async def failed_by_a_pass() -> bool:
        moved.update((await run_pass(hub)).executions)
        return bool((await execution(admin, old))["status"] == "FAILED")

    await eventually(failed_by_a_pass, 10, "a pass to fail the execution queued too long")
    assert moved["queue-timeout"] == 1
    failed = await execution(admin, old)
    assert failed["status"] == "FAILED" and failed["completedAt"]
    assert failed["error"] == f"no runner available within {settings.queue_timeout_seconds} s"
    assert (await execution(admin, young))["status"] == "QUEUED"
    [(action, details)] = await system_audit(hub, old)
    assert action == "execution.queue_timeout" and details["reason"] == failed["error"]


async def test_assigned_to_a_runner_gone_offline_is_requeued_once_in_its_place_then_failed(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    first = await online_runner(admin, client, "first")
    assert first.runner_id
    older = await create(admin, workflow_id)
    await take(first, older, 1)
    younger = await create(admin, workflow_id)  # no idle runner: stays QUEUED
    queued_at = (await execution(admin, older))["queuedAt"]
    await backdate(hub, "runners", "last_heartbeat_at", first.runner_id, settings.runner_offline_seconds + 1)

    report = await run_pass(hub)

    assert report.runners_offline == 1 and report.executions["requeue"] == 1
    requeued = await execution(admin, older)
    assert requeued["status"] == "QUEUED" and requeued["runnerId"] is None and requeued["attempt"] == 1
    assert requeued["queuedAt"] == queued_at and requeued["error"] is None
    assert (await runner_row(admin, first))["currentExecutionId"] is None
    [(action, details)] = await system_audit(hub, older)
    assert action == "execution.requeue" and details == {
        "reason": "runner offline before starting it",
        "runnerId": first.runner_id,
    }
    # The late runner's calls for its attempt are refused and change nothing.
    assert (await first.start(older, 1)).status_code == 409
    assert (await first.complete(older, 1, "FAILED", error="late")).status_code == 409

    # It kept its place: the next runner gets it before the younger one, as attempt 2.
    second = await online_runner(admin, client, "second")
    assert second.runner_id
    await take(second, older, 2)
    assert (await execution(admin, younger))["status"] == "QUEUED"
    await backdate(hub, "runners", "last_heartbeat_at", second.runner_id, settings.runner_offline_seconds + 1)

    report = await run_pass(hub)

    assert report.executions["pickup-failed"] == 1
    failed = await execution(admin, older)
    assert failed["status"] == "FAILED" and failed["attempt"] == 2
    assert failed["error"] == "runner offline before starting it (already re-queued once)"
    assert (await runner_row(admin, second))["currentExecutionId"] is None
    assert [a for a, _ in await system_audit(hub, older)] == ["execution.requeue", "execution.pickup_failed"]
    assert (await second.start(older, 2)).status_code == 409


async def test_assigned_and_not_started_within_pickup_timeout_is_requeued_then_failed(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await online_runner(admin, client, "dawdler")
    assert runner.runner_id
    execution_id = await create(admin, workflow_id)
    await take(runner, execution_id, 1)
    await backdate(hub, "executions", "assigned_at", execution_id, settings.pickup_timeout_seconds + 1)

    report = await run_pass(hub)

    # Re-queued, the runner freed, and both offered to the dispatcher at once: the only runner takes it again.
    assert report.executions["requeue"] == 1
    again = await execution(admin, execution_id)
    assert again["status"] == "ASSIGNED" and again["attempt"] == 2 and again["runnerId"] == runner.runner_id
    assert (await runner.start(execution_id, 1)).status_code == 409
    await take(runner, execution_id, 2)
    await backdate(hub, "executions", "assigned_at", execution_id, settings.pickup_timeout_seconds + 1)

    await run_pass(hub)

    failed = await execution(admin, execution_id)
    assert failed["status"] == "FAILED"
    assert failed["error"] == f"not started within {settings.pickup_timeout_seconds} s (already re-queued once)"
    row = await runner_row(admin, runner)
    assert row["status"] == "ONLINE" and row["currentExecutionId"] is None


async def test_running_on_an_offline_runner_fails_runner_lost_only_after_the_grace(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await online_runner(admin, client, "lost")
    assert runner.runner_id
    execution_id = await create(admin, workflow_id)
    await take(runner, execution_id, 1)
    assert (await runner.start(execution_id, 1)).status_code == 200
    silence = settings.runner_offline_seconds + settings.running_grace_seconds
    await backdate(hub, "runners", "last_heartbeat_at", runner.runner_id, silence - 5)

    await run_pass(hub)  # OFFLINE, but within the grace

    assert (await runner_row(admin, runner))["status"] == "OFFLINE"
    assert (await execution(admin, execution_id))["status"] == "RUNNING"
    await backdate(hub, "runners", "last_heartbeat_at", runner.runner_id, silence + 1)

    report = await run_pass(hub)

    assert report.executions["runner-lost"] == 1
    failed = await execution(admin, execution_id)
    assert failed["status"] == "FAILED" and failed["error"] == "runner lost" and failed["completedAt"]
    [(action, details)] = await system_audit(hub, execution_id)
    assert action == "execution.runner_lost" and details["runnerId"] == runner.runner_id
    # A report arriving after the hub's action is refused and overwrites nothing.
    assert (await runner.logs(execution_id, 1, "late line")).status_code == 409
    assert (await runner.complete(execution_id, 1, "COMPLETED")).status_code == 409
    assert (await execution(admin, execution_id))["status"] == "FAILED"
    # The runner was freed: when it comes back it is idle.
    assert (await runner.heartbeat()).json()["status"] == "ONLINE"
    assert (await runner_row(admin, runner))["currentExecutionId"] is None


async def test_slow_but_alive_running_execution_is_never_failed(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    settings.runner_offline_seconds = 1
    settings.running_grace_seconds = 1
    settings.pickup_timeout_seconds = 1
    settings.stop_grace_seconds = 1
    workflow_id = await publish_workflow(admin, "slow", SIMPLE_DEFINITION)
    runner = await online_runner(admin, client, "slow")
    execution_id = await create(admin, workflow_id)
    await take(runner, execution_id, 1)
    assert (await runner.start(execution_id, 1)).status_code == 200
    await backdate(hub, "executions", "started_at", execution_id, 7 * 24 * 3600)  # running for a week

    # Several times the offline delay plus the grace, on the real clock: heartbeats keep it alive.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.5
    passes = 0
    while loop.time() < deadline:
        assert (await runner.heartbeat()).status_code == 200
        report = await run_pass(hub)
        passes += 1
        assert report.total == 0, report
        assert (await execution(admin, execution_id))["status"] == "RUNNING"
        await asyncio.sleep(0.4)

    assert passes >= 5
    assert (await runner.complete(execution_id, 1, "COMPLETED")).status_code == 200
    assert (await execution(admin, execution_id))["status"] == "COMPLETED"


async def test_stop_not_confirmed_within_the_grace_is_stopped_by_the_hub(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await online_runner(admin, client, "deaf")
    execution_id = await create(admin, workflow_id)
    await take(runner, execution_id, 1)
    assert (await runner.start(execution_id, 1)).status_code == 200
    assert (await admin.post(f"/api/executions/{execution_id}/stop")).json()["execution"]["stopRequested"]

    await run_pass(hub)  # within the grace: the runner still has time to confirm

    assert (await execution(admin, execution_id))["status"] == "RUNNING"
    await backdate(hub, "executions", "stop_requested_at", execution_id, settings.stop_grace_seconds + 1)

    report = await run_pass(hub)

    assert report.executions["stop-unconfirmed"] == 1
    stopped = await execution(admin, execution_id)
    assert stopped["status"] == "STOPPED" and stopped["completedAt"]
    assert stopped["error"] == (
        f"stopped by the hub: the runner did not confirm the stop within {settings.stop_grace_seconds} s"
    )
    assert ("execution.stop_unconfirmed", stopped["error"]) in [
        (a, d["reason"]) for a, d in await system_audit(hub, execution_id)
    ]
    row = await runner_row(admin, runner)
    assert row["status"] == "ONLINE" and row["currentExecutionId"] is None
    assert (await runner.complete(execution_id, 1, "STOPPED")).status_code == 409


async def test_running_past_the_workflow_timeout_plus_grace_fails_timed_out_by_the_hub(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "bounded", SIMPLE_DEFINITION, timeoutSeconds=5)
    overdue_runner = await online_runner(admin, client, "overdue")
    punctual_runner = await online_runner(admin, client, "punctual")
    overdue = await create(admin, workflow_id, runnerId=overdue_runner.runner_id)
    punctual = await create(admin, workflow_id, runnerId=punctual_runner.runner_id)
    for runner, execution_id in ((overdue_runner, overdue), (punctual_runner, punctual)):
        await take(runner, execution_id, 1)
        assert (await runner.start(execution_id, 1)).status_code == 200
    await backdate(hub, "executions", "started_at", overdue, 5 + settings.stop_grace_seconds + 1)
    await backdate(hub, "executions", "started_at", punctual, 5 + settings.stop_grace_seconds - 5)

    report = await run_pass(hub)

    assert report.executions["hub-timeout"] == 1
    failed = await execution(admin, overdue)
    assert failed["status"] == "FAILED" and failed["error"] == "timed out after 5 s (hub)"
    assert (await execution(admin, punctual))["status"] == "RUNNING"
    assert (await overdue_runner.complete(overdue, 1, "FAILED", error="timed out")).status_code == 409
    assert (await execution(admin, overdue))["error"] == "timed out after 5 s (hub)"


async def test_terminal_executions_never_change_however_old(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, timeoutSeconds=1)
    runner = await online_runner(admin, client, "finisher")
    ended: list[str] = []
    for status in ("COMPLETED", "FAILED", "STOPPED"):
        execution_id = await create(admin, workflow_id)
        await take(runner, execution_id, 1)
        assert (await runner.start(execution_id, 1)).status_code == 200
        assert (await runner.complete(execution_id, 1, status, error=status.lower())).status_code == 200
        ended.append(execution_id)
    stopped_by_user = await create(admin, workflow_id)
    assert (await admin.post(f"/api/executions/{stopped_by_user}/stop")).json()["execution"]["status"] == "STOPPED"
    ended.append(stopped_by_user)
    before = [await execution(admin, e) for e in ended]
    async with hub.db.transaction() as session:
        await session.execute(
            text(
                "UPDATE executions SET queued_at = now() - interval '30 days', assigned_at = now() - interval '30 days',"
                " started_at = now() - interval '30 days', stop_requested = true,"
                " stop_requested_at = now() - interval '30 days'"
            )
        )
        await session.execute(text("UPDATE runners SET last_heartbeat_at = now() - interval '30 days'"))

    report = await run_pass(hub)

    assert sum(report.executions.values()) == 0
    after = [await execution(admin, e) for e in ended]
    for old, new in zip(before, after, strict=True):
        assert (new["status"], new["error"], new["completedAt"], new["attempt"]) == (
            old["status"],
            old["error"],
            old["completedAt"],
            old["attempt"],
        )


async def test_concurrent_passes_move_each_execution_exactly_once(
    hub: Hub, admin: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    ids = [await create(admin, workflow_id) for _ in range(40)]
    async with hub.db.transaction() as session:
        await session.execute(text("UPDATE executions SET queued_at = now() - interval '1 day'"))

    reports = await asyncio.gather(*(run_pass(hub) for _ in range(4)))

    assert sum(r.executions["queue-timeout"] for r in reports) == len(ids)
    async with hub.db.session() as session:
        audited = (
            await session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'execution.queue_timeout'"))
        ).scalar_one()
        statuses = (await session.execute(text("SELECT DISTINCT status FROM executions"))).scalars().all()
    assert audited == len(ids) and statuses == ["FAILED"]


async def test_after_a_hub_restart_runners_get_a_full_offline_delay_to_reconnect(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await online_runner(admin, client, "patient")
    assert runner.runner_id
    execution_id = await create(admin, workflow_id)
    await take(runner, execution_id, 1)
    assert (await runner.start(execution_id, 1)).status_code == 200
    # Silent for long, as if the hub had been down: a hub that just started does not hold that against it.
    await backdate(hub, "runners", "last_heartbeat_at", runner.runner_id, 3600)
    started = await database_now(hub.db)

    report = await hub.executions.check_stale(not_before=started)

    assert report.total == 0
    assert (await execution(admin, execution_id))["status"] == "RUNNING"
    assert (await runner_row(admin, runner))["status"] == "BUSY"
    report = await run_pass(hub)  # without the floor (the hub has been up long enough)
    assert report.runners_offline == 1 and report.executions["runner-lost"] == 1


async def test_maintenance_runs_a_pass_at_start_up(hub: Hub, admin: httpx.AsyncClient, settings: Settings) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    execution_id = await create(admin, workflow_id)
    await backdate(hub, "executions", "queued_at", execution_id, settings.queue_timeout_seconds + 1)
    settings.maintenance_interval_seconds = 3600
    maintenance = Maintenance(hub)
    await maintenance.start()
    try:
        for _ in range(100):
            if (await execution(admin, execution_id))["status"] == "FAILED":
                break
            await asyncio.sleep(0.05)
    finally:
        await maintenance.stop()
    assert (await execution(admin, execution_id))["status"] == "FAILED"


async def slot_holders(hub: Hub, workflow_id: str) -> set[str]:
    async with hub.db.session() as session:
        query = "SELECT holders FROM concurrency_slots WHERE workflow_id = :id AND key = ''"
        holders = (await session.execute(text(query), {"id": uuid.UUID(workflow_id)})).scalar_one()
    return {str(h) for h in holders}


async def test_the_stale_rules_free_the_concurrency_slots_they_take_executions_out_of(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await publish_workflow(admin, "limited", SIMPLE_DEFINITION, maxConcurrent=1, timeoutSeconds=5)
    dawdler = await online_runner(admin, client, "dawdler")
    first = await create(admin, workflow_id)
    await take(dawdler, first, 1)
    waiting = await create(admin, workflow_id)
    assert await slot_holders(hub, workflow_id) == {first}

    # Re-queued: the slot is let go of, and the re-queued execution (older) takes it again, keeping its place.
    await backdate(hub, "executions", "assigned_at", first, settings.pickup_timeout_seconds + 1)
    assert (await run_pass(hub)).executions["requeue"] == 1

    async def assigned_again() -> bool:  # the freed slot is offered in the background
        return (await execution(admin, first))["status"] == "ASSIGNED"

    await eventually(assigned_again, 10, "the re-queued execution to be assigned again")
    assert (await execution(admin, waiting))["status"] == "QUEUED"
    assert await slot_holders(hub, workflow_id) == {first}

    # Ended by the hub's timeout check: the slot frees and the waiting execution starts.
    await take(dawdler, first, 2)
    assert (await dawdler.start(first, 2)).status_code == 200
    await backdate(hub, "executions", "started_at", first, 3600)
    assert (await run_pass(hub)).executions["hub-timeout"] == 1
    await take(dawdler, waiting, 1)
    assert await slot_holders(hub, workflow_id) == {waiting}
