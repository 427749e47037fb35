"""Concurrency limits per workflow (docs/queue.md): at most `maxConcurrent` ASSIGNED or RUNNING per key value; the
others stay QUEUED with the reason shown, and start in dispatch order when a slot frees."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION, OnlineRunner
from .protocol import ProtocolRunner, create_execution, eventually, post_form, publish_workflow
from .test_dashboard_actions import follow

BY_CUSTOMER = "{{ inputs.customer }}"
WITH_CUSTOMER: dict[str, Any] = {
    "inputs": {"customer": {"type": "string", "required": True}},
    "nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "hello"}}],
    "edges": [],
}


async def status_of(admin: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    r = await admin.get(f"/api/executions/{execution_id}")
    assert r.status_code == 200, r.text
    execution: dict[str, Any] = r.json()["execution"]
    return execution


async def becomes(admin: httpx.AsyncClient, execution_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        execution = await status_of(admin, execution_id)
        return execution if execution["status"] == status else None

    found: dict[str, Any] = await eventually(reached, 10, f"{execution_id} to be {status}")
    return found


async def holder(runners: list[ProtocolRunner], execution_id: str) -> tuple[ProtocolRunner, dict[str, Any]]:
    """The runner that was assigned `execution_id`, with the work its poll answers."""
    for runner in runners:
        polled = await runner.poll()
        if polled.status_code == 200 and polled.json()["execution"]["id"] == execution_id:
            return runner, polled.json()["execution"]
    raise AssertionError(f"no runner holds {execution_id}")


async def running_count(hub: Hub, workflow_id: str) -> int:
    async with hub.db.session() as session:
        query = "SELECT count(*) FROM executions WHERE workflow_id = :id AND status IN ('ASSIGNED','RUNNING')"
        return int((await session.execute(text(query), {"id": workflow_id})).scalar_one())


# --- settings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"maxConcurrent": 0}, "greater than or equal to 1"),
        ({"maxConcurrent": -3}, "greater than or equal to 1"),
        ({"maxConcurrent": "many"}, "integer"),
        ({"maxConcurrent": 2, "concurrencyKey": "{{ inputs.customer"}, "invalid template"),
        ({"maxConcurrent": 2, "concurrencyKey": "{{ nodes.get.status }}"}, "only inputs, not nodes"),
        ({"maxConcurrent": 2, "concurrencyKey": ""}, "at least 1 character"),
    ],
)
async def test_a_bad_limit_or_key_template_is_refused_with_422(
    admin: httpx.AsyncClient, settings: dict[str, Any], message: str
) -> None:
    created = await admin.post("/api/workflows", json={"name": "limited", "definition": SIMPLE_DEFINITION, **settings})
    assert created.status_code == 422 and message in created.text, created.text
    workflow_id = await publish_workflow(admin, "patched", SIMPLE_DEFINITION)
    patched = await admin.patch(f"/api/workflows/{workflow_id}", json=settings)
    assert patched.status_code == 422 and message in patched.text, patched.text


async def test_limit_and_key_are_set_shown_removed_and_audited(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "limited", WITH_CUSTOMER, maxConcurrent=3, concurrencyKey=BY_CUSTOMER)
    shown = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert (shown["maxConcurrent"], shown["concurrencyKey"]) == (3, BY_CUSTOMER)

    r = await admin.patch(f"/api/workflows/{workflow_id}", json={"maxConcurrent": None, "concurrencyKey": None})
    assert r.status_code == 200 and (r.json()["workflow"]["maxConcurrent"], r.json()["workflow"]["concurrencyKey"]) == (
        None,
        None,
    )
    entries = (await admin.get("/api/audit", params={"entityId": workflow_id, "action": "workflow.update"})).json()
    assert [e["details"] for e in entries["entries"]] == [{"maxConcurrent": None, "concurrencyKey": None}]


async def test_the_key_is_evaluated_once_at_creation_and_inputs_without_a_value_are_refused(
    admin: httpx.AsyncClient,
) -> None:
    definition = {**WITH_CUSTOMER, "inputs": {"customer": {"type": "string"}}}
    workflow_id = await publish_workflow(admin, "keyed", definition, maxConcurrent=1, concurrencyKey=BY_CUSTOMER)
    execution = await create_execution(admin, workflow_id, inputs={"customer": "acme"})
    assert execution["concurrencyKey"] == "acme"
    assert (await create_execution(admin, workflow_id, inputs={}))["concurrencyKey"] == ""  # an input left out: null

    await admin.patch(f"/api/workflows/{workflow_id}", json={"concurrencyKey": "{{ inputs.region }}"})
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {"customer": "acme"}})
    assert r.status_code == 422 and "concurrencyKey" in r.json()["error"]["message"], r.text

    await admin.patch(f"/api/workflows/{workflow_id}", json={"concurrencyKey": "{{ inputs.customer | upper }}"})
    assert (await status_of(admin, execution["id"]))["concurrencyKey"] == "acme"
    later = await create_execution(admin, workflow_id, inputs={"customer": "acme"})
    assert later["concurrencyKey"] == "ACME"


async def test_executions_of_a_workflow_without_a_limit_have_no_group(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "free", SIMPLE_DEFINITION)
    assert (await create_execution(admin, workflow_id))["concurrencyKey"] is None


# --- the limit -------------------------------------------------------------------------------------------------


async def test_over_the_limit_an_execution_waits_with_its_reason_and_starts_when_a_slot_frees(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "two-at-a-time", SIMPLE_DEFINITION, maxConcurrent=2)
    runners = [await online_runner(f"r{i}") for i in range(3)]
    created = [(await create_execution(admin, workflow_id))["id"] for _ in range(3)]

    # Executions created at the same moment are matched as they come (the dispatch workers run side by side):
    # which two take the slots may vary, never how many.
    async def two_assigned() -> list[dict[str, Any]] | None:
        shown = [await status_of(admin, execution_id) for execution_id in created]
        statuses = sorted(e["status"] for e in shown)
        return shown if statuses == ["ASSIGNED", "ASSIGNED", "QUEUED"] else None

    shown = await eventually(two_assigned, 10, "two executions assigned and one queued")
    [waiting] = [e for e in shown if e["status"] == "QUEUED"]
    assert waiting["waitingReason"] == "concurrency limit reached: 2 of 2 running"
    assert await running_count(hub, workflow_id) == 2

    done = next(e["id"] for e in shown if e["status"] == "ASSIGNED")
    runner, work = await holder(runners, done)
    assert (await runner.start(done, work["attempt"])).status_code == 200
    assert (await runner.complete(done, work["attempt"])).status_code == 200
    started = await becomes(admin, waiting["id"], "ASSIGNED")
    assert started["waitingReason"] is None
    assert await running_count(hub, workflow_id) == 2


async def test_the_limit_holds_per_key_value(admin: httpx.AsyncClient, online_runner: OnlineRunner) -> None:
    workflow_id = await publish_workflow(
        admin, "per-customer", WITH_CUSTOMER, maxConcurrent=1, concurrencyKey=BY_CUSTOMER
    )
    for i in range(3):
        await online_runner(f"r{i}")
    acme = (await create_execution(admin, workflow_id, inputs={"customer": "acme"}))["id"]
    await becomes(admin, acme, "ASSIGNED")
    acme_again = (await create_execution(admin, workflow_id, inputs={"customer": "acme"}))["id"]
    globex = (await create_execution(admin, workflow_id, inputs={"customer": "globex"}))["id"]
    await becomes(admin, globex, "ASSIGNED")
    waiting = await status_of(admin, acme_again)
    assert waiting["status"] == "QUEUED"
    assert waiting["waitingReason"] == "concurrency limit reached: 1 of 1 running for key 'acme'"


async def test_waiting_executions_start_by_priority_then_age(
    admin: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    workflow_id = await publish_workflow(admin, "one-at-a-time", SIMPLE_DEFINITION, maxConcurrent=1)
    runners = [await online_runner(f"r{i}") for i in range(2)]
    running = (await create_execution(admin, workflow_id))["id"]
    await becomes(admin, running, "ASSIGNED")
    old_low = (await create_execution(admin, workflow_id, priority=2))["id"]
    new_high = (await create_execution(admin, workflow_id, priority=8))["id"]
    old_high = (await create_execution(admin, workflow_id, priority=8))["id"]  # created after new_high: younger

    order = []
    current = running
    for expected in (new_high, old_high, old_low):
        runner, work = await holder(runners, current)
        assert (await runner.start(current, work["attempt"])).status_code == 200
        assert (await runner.complete(current, work["attempt"])).status_code == 200
        await becomes(admin, expected, "ASSIGNED")
        order.append(expected)
        current = expected
    assert order == [new_high, old_high, old_low]


@pytest.mark.parametrize("how", ["stop while ASSIGNED", "stop while RUNNING", "runner fails it"])
async def test_every_way_out_of_assigned_or_running_frees_the_slot(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, how: str
) -> None:
    workflow_id = await publish_workflow(admin, "one-at-a-time", SIMPLE_DEFINITION, maxConcurrent=1)
    runners = [await online_runner(f"r{i}") for i in range(2)]
    first = (await create_execution(admin, workflow_id))["id"]
    await becomes(admin, first, "ASSIGNED")
    waiting = (await create_execution(admin, workflow_id))["id"]
    runner, work = await holder(runners, first)
    if how != "stop while ASSIGNED":
        assert (await runner.start(first, work["attempt"])).status_code == 200
    if how == "runner fails it":
        assert (await runner.complete(first, work["attempt"], "FAILED", error="boom")).status_code == 200
    else:
        assert (await admin.post(f"/api/executions/{first}/stop")).status_code == 200
        if how == "stop while RUNNING":
            assert (await status_of(admin, waiting))["status"] == "QUEUED"  # still running until confirmed
            assert (await runner.complete(first, work["attempt"], "STOPPED")).status_code == 200
    await becomes(admin, waiting, "ASSIGNED")


async def test_a_limit_set_later_counts_what_already_runs_and_raising_it_starts_waiting_work(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "late-limit", SIMPLE_DEFINITION)
    runners = [await online_runner(f"r{i}") for i in range(3)]
    running = [(await create_execution(admin, workflow_id))["id"] for _ in range(2)]
    for execution_id in running:
        await becomes(admin, execution_id, "ASSIGNED")

    assert (await admin.patch(f"/api/workflows/{workflow_id}", json={"maxConcurrent": 1})).status_code == 200
    waiting = (await create_execution(admin, workflow_id))["id"]
    shown = await status_of(admin, waiting)
    assert shown["status"] == "QUEUED" and shown["waitingReason"] == "concurrency limit reached: 2 of 1 running"

    runner, work = await holder(runners, running[0])
    assert (await runner.complete(running[0], work["attempt"], "FAILED", error="x")).status_code == 200
    assert (await status_of(admin, waiting))["waitingReason"] == "concurrency limit reached: 1 of 1 running"

    assert (await admin.patch(f"/api/workflows/{workflow_id}", json={"maxConcurrent": 2})).status_code == 200
    await becomes(admin, waiting, "ASSIGNED")
    assert await running_count(hub, workflow_id) == 2


# --- dashboard -------------------------------------------------------------------------------------------------


async def test_the_workflow_page_shows_sets_refuses_and_clears_the_limit(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "limited", WITH_CUSTOMER)
    page = f"/workflows/{workflow_id}"
    assert 'id="concurrency-form"' in (shown := (await admin.get(page)).text) and "no limit" in shown

    r = await post_form(admin, f"{page}/concurrency", {"maxConcurrent": "2", "concurrencyKey": BY_CUSTOMER}, page=page)
    shown = await follow(admin, r)
    assert "Concurrency limit saved." in shown and "at most 2 running per value of" in shown
    workflow = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert (workflow["maxConcurrent"], workflow["concurrencyKey"]) == (2, BY_CUSTOMER)

    for bad, message in (
        ({"maxConcurrent": "0"}, "maxConcurrent"),
        ({"maxConcurrent": "2", "concurrencyKey": "{{ x"}, "template"),
    ):
        r = await post_form(admin, f"{page}/concurrency", bad, page=page)
        assert message in await follow(admin, r)
    assert (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["maxConcurrent"] == 2

    r = await post_form(admin, f"{page}/concurrency", {"maxConcurrent": "", "concurrencyKey": BY_CUSTOMER}, page=page)
    assert "Concurrency limit turned off." in await follow(admin, r)
    workflow = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert (workflow["maxConcurrent"], workflow["concurrencyKey"]) == (None, None)


async def test_the_execution_page_shows_why_an_execution_waits_for_a_slot(
    admin: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    workflow_id = await publish_workflow(admin, "one-at-a-time", SIMPLE_DEFINITION, maxConcurrent=1)
    await online_runner("r")
    running = (await create_execution(admin, workflow_id))["id"]
    await becomes(admin, running, "ASSIGNED")
    waiting = (await create_execution(admin, workflow_id))["id"]
    page = (await admin.get(f"/executions/{waiting}")).text
    assert "concurrency limit reached: 1 of 1 running." in page and "It starts when one of them ends" in page
