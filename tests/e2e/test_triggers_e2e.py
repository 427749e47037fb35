"""Triggers on real hub processes (SPEC §9): one fire per fire time across two hubs and across restarts,
at most one catch-up run, and webhook calls that real runners complete."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from exekra.client import ExekraClient

from .conftest import (
    HubProcess,
    RunnerProcess,
    admin_client,
    own_database,
    publish,
    schedule_runs,
    schedules_settled,
    sql,
    wait_terminal,
    wait_until,
    yearly_schedule,
)

ADMIN = "admin@trig.test"
FAST_SCHEDULER = {"EXEKRA_SCHEDULER_INTERVAL_SECONDS": "0.1"}
NOOP = {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "tick"}}], "edges": []}


@pytest.fixture(scope="module")
def own_database_url(pg_server_url: str) -> Iterator[str]:
    """A database of this module's own: no other hub's scheduler fires its triggers."""
    with own_database(pg_server_url, "trig") as url:
        yield url


@pytest.fixture(scope="module")
def two_hubs(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubProcess, HubProcess]]:
    """Two hub processes on the module's database; the leader's scheduler looks every 0.1 s."""
    pair = tuple(
        HubProcess(own_database_url, tmp_path_factory.mktemp("trigger-hub"), extra_env=dict(FAST_SCHEDULER))
        for _ in range(2)
    )
    try:
        with ThreadPoolExecutor(2) as pool:  # each start waits for the hub's health check
            list(pool.map(HubProcess.start, pair))
        yield pair[0], pair[1]
    finally:
        for hub in pair:
            hub.stop()


def test_two_hub_processes_fire_each_due_schedule_exactly_once(
    two_hubs: tuple[HubProcess, HubProcess], own_database_url: str
) -> None:
    with admin_client(two_hubs[0], ADMIN) as api:
        # Nobody runs this label: the executions stay queued, which is all this test needs.
        workflow_id = publish(api, NOOP, labels=[f"nobody-{secrets.token_hex(3)}"])
        trigger_ids = [yearly_schedule(api, workflow_id, f"race-{i}") for i in range(20)]
        # Both hubs see every trigger due at the same moment.
        sql(
            own_database_url,
            "UPDATE triggers SET next_fire_at = date_trunc('second', now()) - interval '1 second'"
            " WHERE id = ANY($1::uuid[])",
            trigger_ids,
        )
        wait_until(lambda: schedules_settled(own_database_url, trigger_ids), 15, 0.1, "both hubs to handle the fires")
        fires = schedule_runs(own_database_url, trigger_ids)
        for trigger_id in trigger_ids:
            api.delete(f"/api/triggers/{trigger_id}")
    assert fires == dict.fromkeys(trigger_ids, 1)


def test_after_downtime_a_restarted_hub_fires_one_catch_up_run_and_never_repeats_a_fire_time(
    two_hubs: tuple[HubProcess, HubProcess], own_database_url: str
) -> None:
    hub, other = two_hubs
    other.stop()  # this test is about one hub going down and coming back
    with admin_client(hub, ADMIN) as api:
        workflow_id = publish(api, NOOP, labels=[f"nobody-{secrets.token_hex(3)}"])
        trigger_id = yearly_schedule(api, workflow_id, "catch-up")
    hub.stop(signal.SIGKILL)  # a crash: nothing is shut down cleanly
    # Missed for three hours.
    sql(
        own_database_url,
        "UPDATE triggers SET next_fire_at = date_trunc('minute', now()) - interval '3 hours' WHERE id = $1::uuid",
        trigger_id,
    )
    hub.start()
    wait_until(lambda: schedules_settled(own_database_url, [trigger_id]), 15, 0.1, "the catch-up run")
    assert schedule_runs(own_database_url, [trigger_id]) == {trigger_id: 1}

    # The same fire time once more (as if a crash had lost the move to the next one): the record of the
    # fire keeps it from being handled twice.
    fired_at = sql(own_database_url, "SELECT last_fired_at FROM triggers WHERE id = $1::uuid", trigger_id)[0][0]
    sql(own_database_url, "UPDATE triggers SET next_fire_at = $2 WHERE id = $1::uuid", trigger_id, fired_at)
    wait_until(
        lambda: schedules_settled(own_database_url, [trigger_id]), 15, 0.1, "the repeated fire time to be skipped"
    )
    assert schedule_runs(own_database_url, [trigger_id]) == {trigger_id: 1}
    with admin_client(hub, ADMIN) as api:
        api.delete(f"/api/triggers/{trigger_id}")


def test_webhook_call_runs_on_a_real_runner_with_its_payload(
    api: httpx.Client, hub_process: HubProcess, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    definition = {
        "inputs": {"payload": {"type": "object", "required": True}},
        "nodes": [
            {"id": "echo", "activity": "vars.set", "params": {"name": "order", "value": "{{ inputs.payload.order }}"}}
        ],
        "edges": [],
        "outputs": {"order": "{{ nodes.echo.value }}"},
    }
    workflow_id = publish(api, definition, labels=[runner.name])
    r = api.post("/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": "orders"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    with ExekraClient(hub_process.url) as anonymous:  # the token is the only credential
        call = anonymous.call_webhook(token, {"order": "A-17"}, idempotency_key="evt-1")
        again = anonymous.call_webhook(token, {"order": "A-17"}, idempotency_key="evt-1")
    assert call.status == "QUEUED" and not call.duplicate
    assert again.duplicate and again.execution_id == call.execution_id
    execution = wait_terminal(api, call.execution_id, 60)
    assert execution["status"] == "COMPLETED", execution
    assert execution["outputs"] == {"order": "A-17"} and execution["triggerType"] == "WEBHOOK"
