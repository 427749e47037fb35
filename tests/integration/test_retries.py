"""Automatic retries (`exekra.hub.executions.retries`): the workflow's policy, when a failure is retried, the
chain, and that a failure is retried once whichever hub process gets to it.

Time is moved by back-dating `completed_at` (the check uses the database clock); the hub's own maintenance loop
is paused for this module so that only the passes the tests run act.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from exekra.hub.context import Hub
from exekra.hub.maintenance import Maintenance

from .conftest import SIMPLE_DEFINITION
from .protocol import ProtocolRunner, create_execution, publish_workflow

pytestmark = pytest.mark.timeout(60)

POLICY = {"attempts": 2, "backoffSeconds": 60, "backoffFactor": 2, "on": ["FAILED"]}


@pytest.fixture(scope="module", autouse=True)
async def paused_maintenance(hub_app: FastAPI) -> AsyncIterator[None]:
    maintenance: Maintenance = hub_app.state.maintenance
    await maintenance.stop()
    yield
    await maintenance.start()


@pytest.fixture
async def runner(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> ProtocolRunner:
    return await ProtocolRunner.online(admin, client, "retrier")


async def failed_run(runner: ProtocolRunner, execution_id: str, status: str = "FAILED", error: str = "boom") -> None:
    """`runner` takes the queued execution, starts it and reports it ended with `status`."""
    work = await runner.take(execution_id)
    assert (await runner.start(execution_id, work["attempt"])).status_code == 200
    r = await runner.complete(execution_id, work["attempt"], status, error=error if status == "FAILED" else None)
    assert r.status_code == 200, r.text


async def ended_ago(hub: Hub, execution_id: str, seconds: float) -> None:
    async with hub.db.transaction() as session:
        await session.execute(
            text("UPDATE executions SET completed_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": seconds, "id": uuid.UUID(execution_id)},
        )


async def retries_of(admin: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    r = await admin.get("/api/executions", params={"retryOf": execution_id})
    assert r.status_code == 200, r.text
    executions: list[dict[str, Any]] = r.json()["executions"]
    return executions


async def retry_audit(hub: Hub) -> list[tuple[str, str, dict[str, Any]]]:
    async with hub.db.session() as session:
        rows = await session.execute(
            text("SELECT actor_type, entity_id, details FROM audit_log WHERE action = 'execution.retry' ORDER BY id")
        )
        return [(row[0], row[1], row[2]) for row in rows]


@pytest.mark.parametrize(
    "policy",
    [
        {"attempts": 0, "on": ["FAILED"]},
        {"attempts": 11, "on": ["FAILED"]},
        {"attempts": 1, "on": []},
        {"attempts": 1, "on": ["STOPPED"]},
        {"attempts": 1, "backoffSeconds": -1, "on": ["FAILED"]},
        {"attempts": 1, "backoffSeconds": 86401, "on": ["FAILED"]},
        {"attempts": 1, "backoffFactor": 0.5, "on": ["FAILED"]},
        {"attempts": 1, "backoffFactor": 11, "on": ["FAILED"]},
        {"backoffSeconds": 5, "on": ["FAILED"]},
    ],
)
async def test_a_retry_policy_out_of_bounds_is_refused_on_create_and_patch(
    hub: Hub, admin: httpx.AsyncClient, policy: dict[str, Any]
) -> None:
    r = await admin.post("/api/workflows", json={"name": "wf", "definition": SIMPLE_DEFINITION, "retry": policy})
    assert r.status_code == 422, r.text
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    assert (await admin.patch(f"/api/workflows/{workflow_id}", json={"retry": policy})).status_code == 422


async def test_the_policy_is_set_shown_changed_and_cleared(hub: Hub, admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/workflows", json={"name": "wf", "definition": SIMPLE_DEFINITION, "retry": POLICY})
    assert r.status_code == 201, r.text
    workflow = r.json()["workflow"]
    assert workflow["retry"] == POLICY
    changed = {"attempts": 3, "on": ["TIMEOUT", "RUNNER_LOST", "TIMEOUT"]}
    r = await admin.patch(f"/api/workflows/{workflow['id']}", json={"retry": changed})
    assert r.status_code == 200, r.text
    assert r.json()["workflow"]["retry"] == {
        "attempts": 3,
        "backoffSeconds": 0,
        "backoffFactor": 1,
        "on": ["TIMEOUT", "RUNNER_LOST"],
    }
    assert (await admin.get(f"/api/workflows/{workflow['id']}")).json()["workflow"]["retry"]["attempts"] == 3
    r = await admin.patch(f"/api/workflows/{workflow['id']}", json={"retry": None})
    assert r.status_code == 200 and r.json()["workflow"]["retry"] is None


async def test_the_policy_travels_with_an_export(hub: Hub, admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry=POLICY)
    document = (await admin.get(f"/api/workflows/{workflow_id}/export")).json()["export"]
    assert document["retry"] == POLICY
    r = await admin.post("/api/workflows/import", json={**document, "name": "copy"})
    assert r.status_code == 201, r.text
    assert r.json()["workflow"]["retry"] == POLICY


async def test_a_failure_is_retried_once_after_its_backoff_with_the_chain_and_an_audit_row(
    hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry=POLICY)
    original = (await create_execution(admin, workflow_id, inputs={}, priority=7))["id"]
    await failed_run(runner, original)
    assert await hub.executions.retry_due() == 0  # its 60 s have not passed
    await ended_ago(hub, original, 61)

    assert await hub.executions.retry_due() == 1
    assert await hub.executions.retry_due() == 0

    [retry] = await retries_of(admin, original)
    assert retry["retryOf"] == original and retry["retryAttempt"] == 1
    assert retry["status"] in {"QUEUED", "ASSIGNED"} and retry["priority"] == 7
    first = (await admin.get(f"/api/executions/{original}")).json()["execution"]
    assert first["retryOf"] is None and first["retryAttempt"] == 0
    assert retry["versionId"] == first["versionId"]
    [(actor, entity, details)] = await retry_audit(hub)
    assert (actor, entity, details) == ("SYSTEM", retry["id"], {"retryOf": original, "attempt": 1})


async def test_the_chain_backs_off_by_its_factor_and_stops_after_its_attempts(
    hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry=POLICY)
    original = (await create_execution(admin, workflow_id))["id"]
    await failed_run(runner, original)
    await ended_ago(hub, original, 61)
    assert await hub.executions.retry_due() == 1
    [first] = await retries_of(admin, original)
    await failed_run(runner, first["id"])
    await ended_ago(hub, first["id"], 61)
    assert await hub.executions.retry_due() == 0  # the second waits 60 s * 2
    await ended_ago(hub, first["id"], 121)
    assert await hub.executions.retry_due() == 1
    [second] = await retries_of(admin, first["id"])
    assert (second["retryOf"], second["retryAttempt"]) == (first["id"], 2)

    await failed_run(runner, second["id"])
    await ended_ago(hub, second["id"], 3600)
    assert await hub.executions.retry_due() == 0  # two attempts made
    assert await retries_of(admin, second["id"]) == []


async def test_stopped_and_completed_executions_are_never_retried(
    hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    policy = {"attempts": 3, "on": ["FAILED", "TIMEOUT", "RUNNER_LOST"]}
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry=policy)
    stopped_by_runner = (await create_execution(admin, workflow_id))["id"]
    await failed_run(runner, stopped_by_runner, "STOPPED")
    completed = (await create_execution(admin, workflow_id))["id"]
    await failed_run(runner, completed, "COMPLETED")
    stopped_queued = (await create_execution(admin, workflow_id))["id"]  # QUEUED or ASSIGNED: stopped at once
    assert (await admin.post(f"/api/executions/{stopped_queued}/stop")).status_code == 200
    for execution_id in (stopped_by_runner, completed, stopped_queued):
        await ended_ago(hub, execution_id, 60)

    assert await hub.executions.retry_due() == 0


async def test_only_the_kinds_of_failure_in_on_are_retried(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    policy = {"attempts": 1, "on": ["RUNNER_LOST"]}
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry=policy)
    failed = (await create_execution(admin, workflow_id))["id"]
    await failed_run(runner, failed)
    timed_out = (await create_execution(admin, workflow_id))["id"]
    await failed_run(runner, timed_out, error="timed out after 5 s")
    # A runner that goes silent while running: the stale check ends its execution "runner lost".
    lost = (await create_execution(admin, workflow_id))["id"]
    work = await runner.take(lost)
    assert (await runner.start(lost, work["attempt"])).status_code == 200
    await hub.executions.liveness.flush()
    silent = hub.settings.runner_offline_seconds + hub.settings.running_grace_seconds + 1
    async with hub.db.transaction() as session:
        await session.execute(
            text("UPDATE runners SET last_heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": silent, "id": uuid.UUID(str(runner.runner_id))},
        )
    await hub.executions.check_stale(not_before=None)
    assert (await admin.get(f"/api/executions/{lost}")).json()["execution"]["error"] == "runner lost"

    assert await hub.executions.retry_due() == 1
    [retry] = await retries_of(admin, lost)
    assert retry["retryAttempt"] == 1
    assert await retries_of(admin, failed) == [] and await retries_of(admin, timed_out) == []


async def test_two_concurrent_passes_retry_a_failure_once(
    hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry={"attempts": 1, "on": ["FAILED"]})
    failures = []
    for _ in range(5):
        failures.append((await create_execution(admin, workflow_id))["id"])
        await failed_run(runner, failures[-1])

    counts = await asyncio.gather(*(hub.executions.retry_due() for _ in range(4)))

    assert sum(counts) == 5
    for failed in failures:
        assert len(await retries_of(admin, failed)) == 1
    assert len(await retry_audit(hub)) == 5


async def test_a_retry_reruns_its_version_after_another_is_published(
    hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry={"attempts": 1, "on": ["FAILED"]})
    first = await create_execution(admin, workflow_id)
    await failed_run(runner, first["id"])
    assert (
        await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": SIMPLE_DEFINITION})
    ).is_success
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200

    assert await hub.executions.retry_due() == 1
    [retry] = await retries_of(admin, first["id"])
    assert retry["versionId"] == first["versionId"] and retry["versionNumber"] == 1


async def test_an_archived_workflow_is_not_retried(hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry={"attempts": 1, "on": ["FAILED"]})
    failed = await create_execution(admin, workflow_id)
    await failed_run(runner, failed["id"])
    assert (await admin.delete(f"/api/workflows/{workflow_id}")).status_code == 200
    assert await hub.executions.retry_due() == 0


async def test_executions_created_before_the_policy_was_set_are_not_retried(
    hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    before = (await create_execution(admin, workflow_id))["id"]
    await failed_run(runner, before)
    await ended_ago(hub, before, 1)
    r = await admin.patch(f"/api/workflows/{workflow_id}", json={"retry": {"attempts": 1, "on": ["FAILED"]}})
    assert r.status_code == 200
    assert await hub.executions.retry_due() == 0


async def test_the_maintenance_pass_retries_and_reports_it(
    hub: Hub, hub_app: FastAPI, admin: httpx.AsyncClient, runner: ProtocolRunner
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION, retry={"attempts": 1, "on": ["FAILED"]})
    failed = (await create_execution(admin, workflow_id))["id"]
    await failed_run(runner, failed)
    maintenance: Maintenance = hub_app.state.maintenance

    report = await maintenance.run_checks()

    assert report.retried == 1
    assert len(await retries_of(admin, failed)) == 1
