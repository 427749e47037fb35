"""Parallel branches through a real hub and a real `exekra runner`: the node states and times the hub derives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from .conftest import RunnerProcess, logs, publish, run_and_wait


def node(node_id: str, activity: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "activity": activity, "params": params}


# start -> left, right (1 s each, in parallel) -> both (join all) -> race: quick wins `first` (join any)
# against slow -> slower; `unused` is on the control.if branch not taken.
PARALLEL: dict[str, Any] = {
    "maxParallel": 4,
    "nodes": [
        node("start", "log.message", message="go"),
        node("left", "python.run", script="import time\ntime.sleep(1)\nresult = 'left'"),
        node("right", "python.run", script="import time\ntime.sleep(1)\nresult = 'right'"),
        node("both", "control.join", mode="all"),
        node("check", "control.if", condition="{{ nodes.left.result == 'left' }}"),
        node("quick", "shell.run", command="while [ ! -s slow.pid ]; do sleep 0.05; done"),  # once slow runs
        node("slow", "shell.run", command="echo $$ > slow.pid; sleep 30"),
        node("slower", "log.message", message="never"),
        node("unused", "control.fail", message="wrong branch"),
        node("first", "control.join", mode="any"),
        node(
            "each",
            "control.foreach",
            items=[3, 1, 2],
            parallel=3,
            nodes=[node("square", "python.run", script="result = {{ item }} ** 2")],
        ),
    ],
    "edges": [
        {"from": "start", "to": "left"},
        {"from": "start", "to": "right"},
        {"from": "left", "to": "both"},
        {"from": "right", "to": "both"},
        {"from": "both", "to": "check"},
        {"from": "check", "to": "quick", "when": "true"},
        {"from": "check", "to": "slow", "when": "true"},
        {"from": "check", "to": "unused", "when": "false"},
        {"from": "slow", "to": "slower"},
        {"from": "quick", "to": "first"},
        {"from": "slower", "to": "first"},
        {"from": "first", "to": "each"},
    ],
    "outputs": {
        "left": "{{ nodes.left.result }}",
        "right": "{{ nodes.right.result }}",
        "squares": "{{ nodes.each.results | map(attribute='square') | map(attribute='result') | list }}",
    },
}


def test_parallel_branches_joins_and_a_parallel_foreach_end_to_end(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    workflow_id = publish(api, PARALLEL, labels=[runner.name])
    execution = run_and_wait(api, workflow_id, timeout=60)

    assert execution["status"] == "COMPLETED", (execution, logs(api, execution["id"]), runner.log())
    assert execution["outputs"] == {"left": "left", "right": "right", "squares": [9, 1, 4]}
    nodes = {item["id"]: item for item in api.get(f"/api/executions/{execution['id']}/nodes").json()["nodes"]}
    assert {node_id: item["state"] for node_id, item in nodes.items()} == {
        "start": "COMPLETED",
        "left": "COMPLETED",
        "right": "COMPLETED",
        "both": "COMPLETED",
        "check": "COMPLETED",
        "quick": "COMPLETED",
        "slow": "STOPPED",  # the join `first` went on with `quick`
        "slower": "SKIPPED",
        "unused": "SKIPPED",
        "first": "COMPLETED",
        "each": "COMPLETED",
    }

    def span(node_id: str) -> tuple[datetime, datetime]:
        return datetime.fromisoformat(nodes[node_id]["startedAt"]), datetime.fromisoformat(nodes[node_id]["endedAt"])

    (left_start, left_end), (right_start, right_end) = span("left"), span("right")
    assert left_start < right_end and right_start < left_end  # the two branches overlapped
    assert max(left_end, right_end) <= span("both")[0]  # the join started after both
    assert span("quick")[1] <= span("first")[0] <= span("slow")[1]  # the join went on, then slow was stopped
    assert "node slow (shell.run) stopped: join first went on without it" in logs(api, execution["id"])
    assert execution["metrics"]["memPeakMb"] > 0
