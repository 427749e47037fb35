"""Sub-workflows with a real hub and real runners: `workflow.run` starts a child on a runner of its own, waits for
it and returns its outputs; stopping the parent stops the child; a child that only the parent's runner could run is
refused at once instead of waiting forever."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunnerProcess, logs, publish, run_and_wait, wait_status, wait_terminal, wait_until

pytestmark = pytest.mark.timeout(180)


def children_of(api: httpx.Client, execution_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get("/api/executions", params={"parentId": execution_id}).json()["executions"]
    return found


def the_child(api: httpx.Client, parent_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = wait_until(lambda: children_of(api, parent_id), 30, 0.1, f"a child of {parent_id}")
    return found[0]


def calling(child: str, node_options: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """A parent definition whose one node runs workflow `child` (its outputs are the node's)."""
    node = {"id": "sub", "activity": "workflow.run", "params": {"workflow": child, **params}, **(node_options or {})}
    return {"nodes": [node], "outputs": {"child": "{{ nodes.sub }}"}}


def cli(api: httpx.Client, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    token = api.headers["Authorization"].removeprefix("Bearer ")
    env = {**os.environ, "EXEKRA_CONFIG_DIR": str(home), "EXEKRA_HUB_URL": str(api.base_url), "EXEKRA_TOKEN": token}
    command = [sys.executable, "-m", "exekra.cli", "executions", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_a_parent_runs_its_child_on_another_runner_and_returns_the_childs_outputs(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess], tmp_path: Path
) -> None:
    parents, children = start_runner(), start_runner()
    doubling = {
        "inputs": {"x": {"type": "integer", "required": True}},
        "nodes": [{"id": "py", "activity": "python.run", "params": {"script": "result = {{ inputs.x }} * 2"}}],
        "outputs": {"doubled": "{{ nodes.py.result }}"},
    }
    child_workflow = publish(api, doubling, labels=[children.name])
    child_name = api.get(f"/api/workflows/{child_workflow}").json()["workflow"]["name"]
    parent_workflow = publish(api, calling(child_name, inputs={"x": 21}), labels=[parents.name])

    parent = run_and_wait(api, parent_workflow)

    assert parent["status"] == "COMPLETED", parent["error"]
    (child,) = children_of(api, parent["id"])
    assert parent["outputs"]["child"] == {"executionId": child["id"], "status": "COMPLETED", "outputs": {"doubled": 42}}
    assert (child["parentId"], child["triggerType"], child["triggeredBy"]) == (parent["id"], "WORKFLOW", parent["id"])
    assert child["triggeredByName"] == parent["workflowName"]
    assert (parent["runnerId"], child["runnerId"]) == (parents.runner_id, children.runner_id)
    assert any(f"started child execution {child['id']}" in line for line in logs(api, parent["id"]))
    audit = api.get("/api/audit", params={"action": "execution.create", "entityId": child["id"]}).json()["entries"]
    assert [(e["actorType"], e["actorId"], e["details"]["parentId"]) for e in audit] == [
        ("RUNNER", parents.runner_id, parent["id"])
    ]
    shown_parent, shown_child = cli(api, tmp_path, "show", parent["id"]), cli(api, tmp_path, "show", child["id"])
    assert shown_parent.returncode == 0 and "children:" in shown_parent.stdout and child["id"] in shown_parent.stdout
    assert shown_child.returncode == 0 and f"parent: {parent['id']}" in shown_child.stdout
    listed = cli(api, tmp_path, "list", "--parent", parent["id"][:8])
    assert listed.returncode == 0 and child["id"] in listed.stdout and parent["id"] not in listed.stdout
    unknown = cli(api, tmp_path, "list", "--parent", "0000000000")
    assert unknown.returncode != 0 and len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr


def test_stopping_the_parent_stops_its_running_child(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    parents, children = start_runner(), start_runner()
    slow = {"nodes": [{"id": "wait", "activity": "control.delay", "params": {"seconds": 120}}]}
    child_workflow = publish(api, slow, labels=[children.name])
    parent_workflow = publish(api, calling(child_workflow), labels=[parents.name])
    r = api.post("/api/executions", json={"workflowId": parent_workflow})
    parent_id = r.json()["execution"]["id"]
    child_id = the_child(api, parent_id)["id"]
    wait_status(api, child_id, "RUNNING")

    assert api.post(f"/api/executions/{parent_id}/stop").status_code == 200

    assert wait_terminal(api, parent_id, 30)["status"] == "STOPPED"
    assert wait_terminal(api, child_id, 30)["status"] == "STOPPED"


def test_a_child_only_the_parents_own_runner_could_run_fails_the_parent_at_once_with_the_reason(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    only = start_runner()
    child_workflow = publish(
        api, {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "x"}}]}, labels=[only.name]
    )
    parent_workflow = publish(api, calling(child_workflow), labels=[only.name])

    parent = run_and_wait(api, parent_workflow, timeout=60)

    assert parent["status"] == "FAILED"
    assert (
        "no runner can run workflow" in parent["error"]
        and "a sub-workflow runs on a runner of its own" in parent["error"]
    )
    assert children_of(api, parent["id"]) == []
