"""Triggers on real hub processes (SPEC §9): one fire per fire time across two hubs and across restarts,
at most one catch-up run, and webhook calls that real runners complete."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import pytest

from exekra.client import ExekraClient
from exekra.db.migrate import upgrade
from exekra.embedded import create_database, drop_database

from .conftest import PASSWORD, HubProcess, RunnerProcess, publish, wait_terminal, wait_until

FAST_SCHEDULER = {"EXEKRA_SCHEDULER_INTERVAL_SECONDS": "0.1"}
NOOP = {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "tick"}}], "edges": []}


def sql(database_url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on the database (what an operator's clock or a crash would do to the rows)."""

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(database_url)
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def own_database_url(pg_server_url: str) -> Iterator[str]:
    """A database of this module's own: no other hub's scheduler fires its triggers."""
    name = f"exekra_e2e_trig_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    upgrade(url)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def two_hubs(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubProcess, HubProcess]]:
    """Two hub processes on the module's database, each with its own scheduler looking every 0.1 s."""
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


@contextlib.contextmanager
def _admin(hub: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        r = client.post("/api/auth/bootstrap", json={"email": "admin@trig.test", "password": PASSWORD})
        if r.status_code == 409:
            r = client.post("/api/auth/login", json={"email": "admin@trig.test", "password": PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


def _yearly(api: httpx.Client, workflow_id: str, name: str) -> str:
    """A schedule whose next regular fire is months away: a test sets `next_fire_at` to make it due, and no
    regular fire (a minute boundary crossed during the test) can add a run to the count."""
    body = {"workflowId": workflow_id, "type": "SCHEDULE", "name": name, "cronExpression": "0 0 1 1 *"}
    r = api.post("/api/triggers", json=body)
    assert r.status_code == 201, r.text
    trigger_id: str = r.json()["trigger"]["id"]
    return trigger_id


def _fires(database_url: str, trigger_ids: list[str]) -> dict[str, int]:
    rows = sql(
        database_url,
        "SELECT triggered_by, count(*) AS n FROM executions WHERE triggered_by = ANY($1::text[]) GROUP BY 1",
        trigger_ids,
    )
    return {t: next((r["n"] for r in rows if r["triggered_by"] == t), 0) for t in trigger_ids}


def _all_settled(database_url: str, trigger_ids: list[str]) -> bool:
    rows = sql(
        database_url,
        "SELECT count(*) AS n FROM triggers WHERE id = ANY($1::uuid[]) AND next_fire_at <= now()",
        trigger_ids,
    )
    return rows[0]["n"] == 0


def test_two_hub_processes_fire_each_due_schedule_exactly_once(
    two_hubs: tuple[HubProcess, HubProcess], own_database_url: str
) -> None:
    with _admin(two_hubs[0]) as api:
        # Nobody runs this label: the executions stay queued, which is all this test needs.
        workflow_id = publish(api, NOOP, labels=[f"nobody-{secrets.token_hex(3)}"])
        trigger_ids = [_yearly(api, workflow_id, f"race-{i}") for i in range(20)]
        # Both hubs see every trigger due at the same moment.
        sql(
            own_database_url,
            "UPDATE triggers SET next_fire_at = date_trunc('second', now()) - interval '1 second'"
            " WHERE id = ANY($1::uuid[])",
            trigger_ids,
        )
        wait_until(lambda: _all_settled(own_database_url, trigger_ids), 15, 0.1, "both hubs to handle the fires")
        fires = _fires(own_database_url, trigger_ids)
        for trigger_id in trigger_ids:
            api.delete(f"/api/triggers/{trigger_id}")
    assert fires == dict.fromkeys(trigger_ids, 1)


def test_after_downtime_a_restarted_hub_fires_one_catch_up_run_and_never_repeats_a_fire_time(
    two_hubs: tuple[HubProcess, HubProcess], own_database_url: str
) -> None:
    hub, other = two_hubs
    other.stop()  # this test is about one hub going down and coming back
    with _admin(hub) as api:
        workflow_id = publish(api, NOOP, labels=[f"nobody-{secrets.token_hex(3)}"])
        trigger_id = _yearly(api, workflow_id, "catch-up")
    hub.stop(signal.SIGKILL)  # a crash: nothing is shut down cleanly
    # Missed for three hours.
    sql(
        own_database_url,
        "UPDATE triggers SET next_fire_at = date_trunc('minute', now()) - interval '3 hours' WHERE id = $1::uuid",
        trigger_id,
    )
    hub.start()
    wait_until(lambda: _all_settled(own_database_url, [trigger_id]), 15, 0.1, "the catch-up run")
    assert _fires(own_database_url, [trigger_id]) == {trigger_id: 1}

    # The same fire time once more (as if a crash had lost the move to the next one): the record of the
    # fire keeps it from being handled twice.
    fired_at = sql(own_database_url, "SELECT last_fired_at FROM triggers WHERE id = $1::uuid", trigger_id)[0][0]
    sql(own_database_url, "UPDATE triggers SET next_fire_at = $2 WHERE id = $1::uuid", trigger_id, fired_at)
    wait_until(lambda: _all_settled(own_database_url, [trigger_id]), 15, 0.1, "the repeated fire time to be skipped")
    assert _fires(own_database_url, [trigger_id]) == {trigger_id: 1}
    with _admin(hub) as api:
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
