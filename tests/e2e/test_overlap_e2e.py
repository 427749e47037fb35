"""Schedule overlap policies (issue 18) with a real runner: `skip` starts nothing while the last run is live and
records the skip; `queue_one` keeps one fire waiting and starts it when the runner finishes the live run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import (
    RunnerProcess,
    publish,
    schedule_runs,
    sql,
    wait_status,
    wait_terminal,
    wait_until,
    yearly_schedule,
)

pytestmark = pytest.mark.timeout(120)

SLOW = {"nodes": [{"id": "wait", "activity": "control.delay", "params": {"seconds": 2}}], "edges": []}


def make_due(database_url: str, trigger_id: str, minutes_ago: int) -> None:
    """Make the schedule due at a fire time of its own (the hub's scheduler looks every second)."""
    sql(
        database_url,
        "UPDATE triggers SET next_fire_at = date_trunc('minute', now()) - make_interval(mins => $2) WHERE id = $1::uuid",
        trigger_id,
        minutes_ago,
    )
    wait_until(
        lambda: (
            not sql(database_url, "SELECT 1 FROM triggers WHERE id = $1::uuid AND next_fire_at <= now()", trigger_id)
        ),
        15,
        0.05,
        "the scheduler to handle the fire",
    )


def runs(api: httpx.Client, workflow_id: str) -> list[dict[str, Any]]:
    """The runs of the test's workflow (each test has its own, started only by its schedule), oldest first."""
    found: list[dict[str, Any]] = api.get("/api/executions", params={"workflowId": workflow_id}).json()["executions"]
    return sorted(found, key=lambda e: str(e["createdAt"]))


def trigger(api: httpx.Client, trigger_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = api.get(f"/api/triggers/{trigger_id}").json()["trigger"]
    return shown


def _schedule(api: httpx.Client, runner: RunnerProcess, policy: str) -> tuple[str, str]:
    workflow_id = publish(api, SLOW, labels=[runner.name])
    trigger_id = yearly_schedule(api, workflow_id, f"overlap-{policy}-{runner.name}")
    assert api.patch(f"/api/triggers/{trigger_id}", json={"overlapPolicy": policy}).status_code == 200
    return workflow_id, trigger_id


def test_skip_starts_nothing_while_the_run_is_live_and_starts_again_after_it(
    api: httpx.Client, e2e_database_url: str, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    workflow_id, trigger_id = _schedule(api, runner, "skip")

    make_due(e2e_database_url, trigger_id, 10)
    [first] = wait_until(lambda: runs(api, workflow_id), 15, 0.05, "the first run")
    wait_status(api, first["id"], "RUNNING")
    make_due(e2e_database_url, trigger_id, 5)  # the first run is live: skipped
    assert schedule_runs(e2e_database_url, [trigger_id]) == {trigger_id: 1}
    skipped = trigger(api, trigger_id)
    assert skipped["lastSkipReason"] == "previous run still running (overlap policy skip)"

    assert wait_terminal(api, first["id"])["status"] == "COMPLETED"  # the runner finished it
    make_due(e2e_database_url, trigger_id, 1)
    assert schedule_runs(e2e_database_url, [trigger_id]) == {trigger_id: 2}


def test_queue_one_starts_the_waiting_fire_when_the_runner_finishes_the_live_run(
    api: httpx.Client, e2e_database_url: str, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    workflow_id, trigger_id = _schedule(api, runner, "queue_one")

    make_due(e2e_database_url, trigger_id, 15)
    [first] = wait_until(lambda: runs(api, workflow_id), 15, 0.05, "the first run")
    wait_status(api, first["id"], "RUNNING")
    make_due(e2e_database_url, trigger_id, 10)  # waits for the live run
    make_due(e2e_database_url, trigger_id, 5)  # one fire waits already: skipped
    waiting = trigger(api, trigger_id)
    assert waiting["waitingFireAt"] is not None and schedule_runs(e2e_database_url, [trigger_id]) == {trigger_id: 1}

    assert wait_terminal(api, first["id"])["status"] == "COMPLETED"

    def two_runs() -> list[dict[str, Any]] | None:
        found = runs(api, workflow_id)
        return found if len(found) == 2 else None

    both = wait_until(two_runs, 15, 0.1, "the second run")
    assert wait_terminal(api, both[1]["id"])["status"] == "COMPLETED"
    assert schedule_runs(e2e_database_url, [trigger_id]) == {trigger_id: 2}  # the skipped fire never ran
    assert wait_until(lambda: trigger(api, trigger_id)["waitingFireAt"] is None, 10, 0.1, "the wait to clear")
