"""Sub-workflows on the hub (`workflow.run`): the runner starts a child of the RUNNING attempt it holds, once per
key; the child is refused when too deep, a cycle, or runnable only by the runners its parents hold; a parent's
stop or end stops its live children, whatever ended it; publishing refuses literal cycles."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION, OnlineRunner
from .protocol import ProtocolRunner, backdate, eventually, publish_workflow, running_execution


@dataclass
class Family:
    """A RUNNING parent on runner `parents` (label `p`); its children's workflow runs on `children` (label `c`)."""

    parent_id: str
    parent_workflow: str
    child_workflow: str
    parents: ProtocolRunner
    children: ProtocolRunner


@pytest.fixture
async def family(admin: httpx.AsyncClient, online_runner: OnlineRunner) -> Family:
    parents = await online_runner("parents", labels=["p"])
    parent_workflow = await publish_workflow(admin, "parent", SIMPLE_DEFINITION, labels=["p"], priority=7)
    child_workflow = await publish_workflow(
        admin, "child", {**SIMPLE_DEFINITION, "inputs": {"n": {"type": "integer"}}}, labels=["c"], priority=3
    )
    parent_id = await running_execution(admin, parents, parent_workflow)
    children = await online_runner("children", labels=["c"])
    return Family(parent_id, parent_workflow, child_workflow, parents, children)


async def execution(admin: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    r = await admin.get(f"/api/executions/{execution_id}")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["execution"]
    return found


async def start(family: Family, key: str = "sub:1", **fields: Any) -> dict[str, Any]:
    r = await family.parents.start_child(family.parent_id, 1, fields.pop("workflow", "child"), key, **fields)
    assert r.status_code == 201, r.text
    child: dict[str, Any] = r.json()["execution"]
    return child


async def audit(admin: httpx.AsyncClient, entity_id: str, action: str) -> list[dict[str, Any]]:
    r = await admin.get("/api/audit", params={"entityId": entity_id, "action": action})
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def refusal(r: httpx.Response) -> str:
    assert (r.status_code, r.json()["error"]["code"]) == (409, "subworkflow_refused"), r.text
    message: str = r.json()["error"]["message"]
    return message


async def test_a_running_parent_starts_one_child_per_key_however_often_the_request_is_repeated(
    admin: httpx.AsyncClient, family: Family
) -> None:
    child = await start(family, inputs={"n": 1})

    again = await family.parents.start_child(family.parent_id, 1, "child", "sub:1", inputs={"n": 1})
    other = await start(family, "sub:2")

    assert (again.status_code, again.json()["duplicate"], again.json()["execution"]["id"]) == (200, True, child["id"])
    assert other["id"] != child["id"]
    # The answer reads the child after its commit: an idle runner of the family may have been given it already.
    assert child["status"] in {"QUEUED", "ASSIGNED"} and child["inputs"] == {"n": 1}
    assert (child["parentId"], child["triggerType"], child["triggeredBy"]) == (
        family.parent_id,
        "WORKFLOW",
        family.parent_id,
    )
    assert child["triggeredByName"] == "parent" and child["workflowName"] == "child"
    assert child["priority"] == 7  # its parent's, higher than its workflow's own 3: the parent's runner waits for it
    listed = (await admin.get("/api/executions", params={"parentId": family.parent_id})).json()["executions"]
    assert sorted(e["id"] for e in listed) == sorted([child["id"], other["id"]])
    [created] = await audit(admin, child["id"], "execution.create")
    assert (created["actorType"], created["actorId"]) == ("RUNNER", family.parents.runner_id)
    assert created["details"]["parentId"] == family.parent_id and created["details"]["key"] == "sub:1"


async def test_a_child_call_for_an_attempt_the_runner_does_not_hold_changes_nothing(
    admin: httpx.AsyncClient, family: Family
) -> None:
    stale = await family.parents.start_child(family.parent_id, 2, "child")
    foreign = await family.children.start_child(family.parent_id, 1, "child")

    assert stale.status_code == 409 and foreign.status_code == 409
    assert (await admin.get("/api/executions", params={"parentId": family.parent_id})).json()["executions"] == []
    child = await start(family)
    assert (await family.children.child(family.parent_id, 1, child["id"])).status_code == 409
    assert (await family.children.stop_child(family.parent_id, 1, child["id"])).status_code == 409
    unknown = await family.parents.child(family.parent_id, 1, str(uuid.uuid4()))
    assert unknown.status_code == 404


async def test_unknown_workflows_drafts_and_bad_inputs_answer_4xx_with_the_reason(
    admin: httpx.AsyncClient, family: Family
) -> None:
    missing = await family.parents.start_child(family.parent_id, 1, "no-such-workflow")
    r = await admin.post(f"/api/workflows/{family.child_workflow}/versions", json={"definition": SIMPLE_DEFINITION})
    assert r.status_code == 201, r.text
    draft = await family.parents.start_child(family.parent_id, 1, "child", "sub:2", version=2)
    no_version = await family.parents.start_child(family.parent_id, 1, "child", "sub:3", version=9)
    bad_inputs = await family.parents.start_child(family.parent_id, 1, "child", "sub:4", inputs={"n": "x"})
    empty_key = await family.parents.start_child(family.parent_id, 1, "child", "")

    assert missing.status_code == 404 and "workflow no-such-workflow not found" in missing.text
    assert draft.status_code == 409 and "version 2 of workflow child is a draft" in draft.text
    assert no_version.status_code == 404 and "has no version 9" in no_version.text
    assert bad_inputs.status_code == 422 and empty_key.status_code == 422


async def test_a_pinned_version_runs_even_once_another_is_published(admin: httpx.AsyncClient, family: Family) -> None:
    r = await admin.post(f"/api/workflows/{family.child_workflow}/versions", json={"definition": SIMPLE_DEFINITION})
    assert r.status_code == 201, r.text
    assert (await admin.post(f"/api/workflows/{family.child_workflow}/publish")).status_code == 200

    pinned = await start(family, version=1, workflow=family.child_workflow)
    published = await start(family, "sub:2")

    assert (pinned["versionNumber"], published["versionNumber"]) == (1, 2)


async def test_a_grandchild_past_the_depth_limit_is_refused_with_the_limit_named(
    hub: Hub, admin: httpx.AsyncClient, family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "max_subworkflow_depth", 1)
    child = await start(family)
    work = await family.children.take(child["id"])
    assert (await family.children.start(child["id"], work["attempt"])).status_code == 200

    r = await family.children.start_child(child["id"], work["attempt"], "parent")

    message = refusal(r)
    assert "depth limit reached: parent → child" in message and "EXEKRA_MAX_SUBWORKFLOW_DEPTH (1)" in message


async def test_a_child_whose_workflow_runs_above_it_is_refused_as_a_cycle(family: Family) -> None:
    r = await family.parents.start_child(family.parent_id, 1, "parent")

    assert "cycle: workflow parent already runs above this execution (parent → parent)" in refusal(r)


async def test_a_child_only_the_runners_of_its_parents_could_run_is_refused(
    admin: httpx.AsyncClient, family: Family
) -> None:
    own = await publish_workflow(admin, "own", SIMPLE_DEFINITION, labels=["p"])

    r = await family.parents.start_child(family.parent_id, 1, own)

    assert "no runner can run workflow" in refusal(r) and "a sub-workflow runs on a runner of its own" in r.text


async def test_the_runner_waits_for_its_child_and_reads_its_outputs_when_it_ends(family: Family) -> None:
    child = await start(family)
    live = (await family.parents.child(family.parent_id, 1, child["id"])).json()["execution"]
    assert live["status"] in ("QUEUED", "ASSIGNED")  # its runner is idle: it may have it already
    waiting = asyncio.create_task(family.parents.child(family.parent_id, 1, child["id"], wait=10))
    work = await family.children.take(child["id"])
    assert (await family.children.start(child["id"], work["attempt"])).status_code == 200
    done = await family.children.complete(child["id"], work["attempt"], outputs={"answer": 42})
    assert done.status_code == 200

    ended = (await asyncio.wait_for(waiting, 10)).json()["execution"]

    assert (ended["status"], ended["outputs"]) == ("COMPLETED", {"answer": 42})


async def test_stopping_a_running_parent_stops_its_queued_and_running_children(
    admin: httpx.AsyncClient, family: Family
) -> None:
    running = await start(family)
    work = await family.children.take(running["id"])
    assert (await family.children.start(running["id"], work["attempt"])).status_code == 200
    queued = await start(family, "sub:2")  # the only runner for it is busy

    assert (await admin.post(f"/api/executions/{family.parent_id}/stop")).status_code == 200

    stopped = await execution(admin, queued["id"])
    assert stopped["status"] == "STOPPED"
    assert stopped["error"] == f"stopped: parent execution {family.parent_id} was stopped"
    assert (await execution(admin, running["id"]))["stopRequested"] is True
    logs = await family.children.logs(running["id"], work["attempt"])
    assert logs.json()["stopRequested"] is True
    [entry] = await audit(admin, queued["id"], "execution.stop")
    assert entry["details"]["ancestorId"] == family.parent_id


async def test_a_node_that_stops_waiting_stops_its_child(admin: httpx.AsyncClient, family: Family) -> None:
    child = await start(family)

    r = await family.parents.stop_child(family.parent_id, 1, child["id"])

    assert r.status_code == 200 and r.json()["execution"]["status"] == "STOPPED"
    assert (await execution(admin, family.parent_id))["status"] == "RUNNING"


async def test_a_parent_that_ends_stops_its_live_children(admin: httpx.AsyncClient, family: Family) -> None:
    child = await start(family)

    assert (await family.parents.complete(family.parent_id, 1, "FAILED", error="boom")).status_code == 200

    async def stopped() -> dict[str, Any] | None:
        found = await execution(admin, child["id"])
        return found if found["status"] == "STOPPED" else None

    ended = await eventually(stopped, 5, "the child to be stopped")
    assert ended["error"] == f"stopped: parent execution {family.parent_id} ended FAILED"


async def test_a_parent_lost_with_its_runner_stops_its_children(
    hub: Hub, admin: httpx.AsyncClient, family: Family
) -> None:
    child = await start(family)
    silence = hub.settings.runner_offline_seconds + hub.settings.running_grace_seconds
    assert family.parents.runner_id is not None
    await backdate(hub, "runners", "last_heartbeat_at", family.parents.runner_id, silence + 1)

    report = await hub.executions.check_stale(not_before=None)

    assert report.executions["runner-lost"] == 1
    assert (await execution(admin, family.parent_id))["error"] == "runner lost"
    assert (await execution(admin, child["id"]))["status"] == "STOPPED"


async def test_the_maintenance_pass_stops_children_whose_parents_end_did_not(
    hub: Hub, admin: httpx.AsyncClient, family: Family
) -> None:
    child = await start(family)
    async with hub.db.transaction() as session:  # as if the hub process had died between the end and its hook
        await session.execute(
            text("UPDATE executions SET has_children = false WHERE id = :id"), {"id": uuid.UUID(family.parent_id)}
        )
    assert (await family.parents.complete(family.parent_id, 1, "COMPLETED")).status_code == 200
    assert (await execution(admin, child["id"]))["status"] in ("QUEUED", "ASSIGNED")

    report = await hub.executions.check_stale(not_before=None)

    assert report.executions["orphaned-child"] == 1
    assert (await execution(admin, child["id"]))["status"] == "STOPPED"


async def test_a_stopping_parent_starts_no_child(admin: httpx.AsyncClient, family: Family) -> None:
    assert (await admin.post(f"/api/executions/{family.parent_id}/stop")).status_code == 200

    assert "is stopping: it starts no child" in refusal(await family.parents.start_child(family.parent_id, 1, "child"))


def calls(workflow: str, **params: Any) -> dict[str, Any]:
    return {"nodes": [{"id": "sub", "activity": "workflow.run", "params": {"workflow": workflow, **params}}]}


async def test_publishing_a_workflow_that_runs_itself_is_refused_at_the_node(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/workflows", json={"name": "selfish", "definition": calls("selfish")})
    assert r.status_code == 201, r.text

    refused = await admin.post(f"/api/workflows/{r.json()['workflow']['id']}/publish")

    assert refused.status_code == 422
    [problem] = refused.json()["error"]["details"]["problems"]
    assert problem == {
        "message": "node sub: workflow.run closes a cycle: selfish → selfish",
        "node": "sub",
        "param": "workflow",
    }


async def test_publishing_a_cycle_through_published_versions_is_refused_and_templates_are_not_followed(
    admin: httpx.AsyncClient,
) -> None:
    await publish_workflow(admin, "a", calls("b"))  # b does not exist yet: not a cycle
    nested = {
        "nodes": [{"id": "loop", "activity": "control.foreach", "params": {"items": [1], "nodes": calls("a")["nodes"]}}]
    }
    r = await admin.post("/api/workflows", json={"name": "b", "definition": nested})
    assert r.status_code == 201, r.text

    refused = await admin.post(f"/api/workflows/{r.json()['workflow']['id']}/publish")

    assert refused.status_code == 422 and "workflow.run closes a cycle: b → a → b" in refused.text
    await publish_workflow(admin, "c", calls("{{ inputs.which }}"))  # seen only at run time


async def test_a_malformed_parent_filter_is_a_validation_error(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/api/executions", params={"parentId": "nope"})

    assert r.status_code == 422 and "parentId" in r.text


async def test_the_dashboard_links_a_parent_and_its_children_both_ways(
    admin: httpx.AsyncClient, family: Family
) -> None:
    child = await start(family)

    parent_page = (await admin.get(f"/executions/{family.parent_id}")).text
    child_page = (await admin.get(f"/executions/{child['id']}")).text
    listed = (await admin.get("/executions", params={"parent": family.parent_id})).text

    assert "Sub-workflows" in parent_page and f'href="/executions/{child["id"]}"' in parent_page
    assert "sub-workflow of" in child_page and f'href="/executions/{family.parent_id}"' in child_page
    assert f'data-execution="{child["id"]}"' in listed and f'data-execution="{family.parent_id}"' not in listed
