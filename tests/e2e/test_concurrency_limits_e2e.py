"""Concurrency limits with real `exekra runner` processes: with more idle runners than the limit, the executions of a
limited workflow run at most `maxConcurrent` at a time per key, the waiting ones show why, and all complete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from .conftest import RunnerProcess, publish, wait_status, wait_terminal

pytestmark = pytest.mark.e2e

TWO_SECONDS: dict[str, Any] = {
    "inputs": {"customer": {"type": "string", "required": True}},
    "nodes": [{"id": "work", "activity": "control.delay", "params": {"seconds": 2}}],
    "edges": [],
}


def _overlaps(executions: list[dict[str, Any]]) -> int:
    """The largest number of these executions that ran at the same moment (from their start and end times)."""
    moments = []
    for e in executions:
        moments += [(datetime.fromisoformat(e["startedAt"]), 1), (datetime.fromisoformat(e["completedAt"]), -1)]
    running = highest = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):  # an end before a start at the same moment
        running += step
        highest = max(highest, running)
    return highest


def test_a_limit_of_one_per_customer_runs_each_customers_work_one_at_a_time(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    label = "limits-e2e"
    for _ in range(3):
        start_runner(labels=[label])
    workflow_id = publish(api, TWO_SECONDS, labels=[label], maxConcurrent=1, concurrencyKey="{{ inputs.customer }}")

    def run(customer: str) -> str:
        body = {"workflowId": workflow_id, "inputs": {"customer": customer}}
        r = api.post("/api/executions", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["execution"]["id"])

    acme = [run("acme")]
    wait_status(api, acme[0], "RUNNING", timeout=30)
    acme += [run("acme") for _ in range(2)]
    globex = run("globex")
    waiting = api.get(f"/api/executions/{acme[1]}").json()["execution"]
    assert waiting["status"] == "QUEUED"
    assert waiting["waitingReason"] == "concurrency limit reached: 1 of 1 running for key 'acme'"

    ended = [wait_terminal(api, execution_id, timeout=90) for execution_id in [*acme, globex]]
    assert [e["status"] for e in ended] == ["COMPLETED"] * 4
    assert _overlaps(ended[:3]) == 1, "two executions for one customer ran at once"
    assert _overlaps(ended) == 2, "globex waited for acme"
