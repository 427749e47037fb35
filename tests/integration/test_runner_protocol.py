"""The runner protocol (SPEC §7.3): the happy path, fencing, revocation and long polling."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from exekra.hub import lifecycle
from exekra.hub.context import Hub
from exekra.hub.executions import queries
from exekra.hub.executions.models import Execution
from exekra.hub.executions.queries import LogLine
from exekra.hub.tasks import drain

from .conftest import SIMPLE_DEFINITION, ClientFactory, Parked, eventually
from .protocol import ProtocolRunner, publish_workflow, running_execution


async def _setup(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> tuple[ProtocolRunner, str]:
    workflow_id = await publish_workflow(admin, "hello", SIMPLE_DEFINITION)
    runner = await ProtocolRunner.register(admin, client, "r1")
    answer = await runner.auth()
    assert answer.status_code == 200 and answer.json()["runnerName"] == "r1"  # the runner logs under this name
    return runner, workflow_id


async def test_full_protocol_cycle_auth_heartbeat_poll_start_logs_complete(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner, workflow_id = await _setup(admin, client)
    hb = await runner.heartbeat()
    assert hb.status_code == 200 and hb.json() == {"status": "ONLINE", "stopExecutionIds": [], "catalogueWanted": False}
    assert (await runner.poll()).status_code == 204

    created = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    assert created.status_code == 201 and created.json()["execution"]["status"] == "QUEUED"
    execution_id = created.json()["execution"]["id"]

    polled = await runner.poll(wait=5)
    assert polled.status_code == 200
    work = polled.json()["execution"]
    assert work["id"] == execution_id and work["attempt"] == 1 and work["status"] == "ASSIGNED"
    assert work["workflow"]["name"] == "hello" and work["version"]["definition"]["nodes"][0]["id"] == "hello"
    # An ASSIGNED execution is re-delivered on every poll until it is started.
    assert (await runner.poll()).json()["execution"]["id"] == execution_id

    assert (await runner.start(execution_id, 1)).status_code == 200
    logs = await runner.logs(execution_id, 1, "one", "two")
    assert logs.status_code == 200 and logs.json() == {"stopRequested": False}
    assert (await runner.logs(execution_id, 1)).status_code == 200  # an empty batch is a keep-alive
    done = await runner.complete(
        execution_id,
        1,
        outputs={"answer": 42},
        metrics={"cpuAvg": 1.5, "cpuPeak": 9.0, "memAvgMb": 30, "memPeakMb": 41},
    )
    assert done.status_code == 200

    detail = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]
    assert detail["status"] == "COMPLETED" and detail["outputs"] == {"answer": 42}
    assert detail["metrics"] == {"cpuAvg": 1.5, "cpuPeak": 9.0, "memAvgMb": 30.0, "memPeakMb": 41.0}
    assert detail["startedAt"] and detail["completedAt"] and detail["assignedAt"]
    lines = (await admin.get(f"/api/executions/{execution_id}/logs")).json()
    assert [x["message"] for x in lines["lines"]] == ["one", "two"] and lines["nextSeq"] == 2
    await hub.executions.liveness.flush()  # the heartbeat's metrics are written within a second
    runner_row = (await admin.get(f"/api/runners/{runner.runner_id}")).json()["runner"]
    assert runner_row["status"] == "ONLINE" and runner_row["currentExecutionId"] is None
    assert runner_row["metrics"]["cpuPercent"] == 5.0


async def test_stale_attempt_and_wrong_state_get_409_and_change_nothing(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner, workflow_id = await _setup(admin, client)
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    assert (await runner.poll(wait=5)).json()["execution"]["attempt"] == 1
    assert (await runner.start(execution_id, 2)).status_code == 409
    assert (await runner.complete(execution_id, 1)).status_code == 409  # COMPLETED needs RUNNING
    assert (await runner.start(execution_id, 1)).status_code == 200
    # A repeated start (its first answer lost) is answered as the first was, and changes nothing.
    started_at = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]["startedAt"]
    assert (await runner.start(execution_id, 1)).status_code == 200
    assert (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]["startedAt"] == started_at
    other = await ProtocolRunner.register(admin, client, "r2")  # another runner's start of it is refused
    assert (await other.auth()).status_code == 200
    assert (await other.start(execution_id, 1)).status_code == 409
    assert (await runner.logs(execution_id, 7, "late")).status_code == 409
    assert (await runner.complete(execution_id, 1, "FAILED", error="boom")).status_code == 200
    # Terminal states are final: a late report changes nothing.
    assert (await runner.complete(execution_id, 1, "COMPLETED")).status_code == 409
    detail = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]
    assert detail["status"] == "FAILED" and detail["error"] == "boom"


async def test_a_revoked_token_gets_401_on_every_call_about_held_work_and_changes_nothing(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    # The token epoch is checked inside the fenced statements themselves: a revoked token is told 401 (not
    # 409), and its start, logs and complete change nothing.
    runner, workflow_id = await _setup(admin, client)
    created = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    execution_id = created.json()["execution"]["id"]
    assert (await runner.poll(wait=5)).json()["execution"]["id"] == execution_id
    assert (await runner.start(execution_id, 1)).status_code == 200
    assert (await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")).status_code == 200

    logs = await runner.logs(execution_id, 1, "after revocation")
    assert logs.status_code == 401 and logs.json()["error"]["code"] == "not_authenticated"
    assert (await runner.complete(execution_id, 1, "COMPLETED")).status_code == 401
    credential = await client.get(
        f"/api/runner/executions/{execution_id}/credentials/anything", params={"attempt": 1}, headers=runner.headers
    )
    assert credential.status_code == 401
    detail = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]
    assert detail["status"] == "RUNNING"
    lines = (await admin.get(f"/api/executions/{execution_id}/logs")).json()
    assert all(line["message"] != "after revocation" for line in lines["lines"])
    # A call that is merely stale (wrong attempt) with a valid token is still a 409.
    runner.machine_secret = (await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")).json()[
        "machineSecret"
    ]
    assert (await runner.auth()).status_code == 200
    assert (await runner.start(execution_id, 2)).status_code == 409
    assert (await runner.complete(execution_id, 1, "COMPLETED")).status_code == 200


async def test_regenerate_secret_invalidates_live_runner_token_at_once(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner, _ = await _setup(admin, client)
    assert (await runner.heartbeat()).status_code == 200
    regenerated = await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")
    assert regenerated.status_code == 200
    assert (await runner.heartbeat()).status_code == 401
    assert (await runner.poll()).status_code == 401
    assert (await runner.auth()).status_code == 401  # the old secret is gone too
    runner.machine_secret = regenerated.json()["machineSecret"]
    assert (await runner.auth()).status_code == 200
    assert (await runner.heartbeat()).status_code == 200


async def test_a_poll_held_when_the_secret_is_regenerated_gets_nothing_and_the_runner_goes_offline(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, parked: Parked
) -> None:
    runner, workflow_id = await _setup(admin, client)
    assert (await runner.heartbeat()).status_code == 200
    poll = asyncio.create_task(runner.poll(wait=3))
    await parked(runner)

    regenerated = await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")
    assert regenerated.status_code == 200 and regenerated.json()["runner"]["status"] == "OFFLINE"
    created = await admin.post("/api/executions", json={"workflowId": workflow_id})

    assert (await poll).status_code in (204, 401)  # nothing was handed to the revoked token
    execution = (await admin.get(f"/api/executions/{created.json()['execution']['id']}")).json()["execution"]
    assert execution["status"] == "QUEUED" and execution["runnerId"] is None
    assert (await admin.get(f"/api/runners/{runner.runner_id}")).json()["runner"]["status"] == "OFFLINE"
    # Signed in with the new secret, the runner is back and takes the work.
    runner.machine_secret = regenerated.json()["machineSecret"]
    assert (await runner.auth()).status_code == 200
    assert (await runner.take(execution["id"]))["attempt"] == 1


async def test_runner_endpoints_reject_missing_or_forged_tokens(client: httpx.AsyncClient, hub: Hub) -> None:
    assert (await client.get("/api/runner/poll")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await client.post("/api/runner/heartbeat", json={}, headers=bad)).status_code == 401
    r = await client.post("/api/runner/auth", json={"machineKey": "rk_x", "machineSecret": "nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


async def test_long_poll_returns_promptly_when_work_is_created(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, parked: Parked
) -> None:
    runner, workflow_id = await _setup(admin, client)
    started = time.monotonic()
    poll = asyncio.create_task(runner.poll(wait=10))
    await parked(runner)
    created = await admin.post("/api/executions", json={"workflowId": workflow_id})
    response = await asyncio.wait_for(poll, 10)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["execution"]["id"] == created.json()["execution"]["id"]
    assert elapsed < 1.5, f"long poll took {elapsed:.2f}s"


async def test_long_poll_times_out_with_204(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    runner, _ = await _setup(admin, client)
    started = time.monotonic()
    assert (await runner.poll(wait=0.3)).status_code == 204
    assert time.monotonic() - started >= 0.3


async def test_complete_carries_the_last_log_lines_after_the_ones_already_sent(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner, workflow_id = await _setup(admin, client)
    execution_id = await running_execution(admin, runner, workflow_id)
    assert (await runner.logs(execution_id, 1, "first")).status_code == 200
    last = [{"level": "INFO", "message": "second"}, {"level": "ERROR", "message": "third"}]
    assert (await runner.complete(execution_id, 2, "FAILED", lines=last)).status_code == 409  # stale attempt
    done = await runner.complete(execution_id, 1, "FAILED", error="boom", lines=last)
    assert done.status_code == 200
    logs = (await admin.get(f"/api/executions/{execution_id}/logs")).json()
    assert [(x["seq"], x["level"], x["message"]) for x in logs["lines"]] == [
        (1, "INFO", "first"),
        (2, "INFO", "second"),
        (3, "ERROR", "third"),
    ]
    assert logs["nextSeq"] == 3
    assert (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]["status"] == "FAILED"
    # The same limits as a log upload.
    second_id = await running_execution(admin, runner, workflow_id)
    too_many = [{"level": "INFO", "message": "x"}] * 1001
    assert (await runner.complete(second_id, 1, lines=too_many)).status_code == 413
    assert (await admin.get(f"/api/executions/{second_id}")).json()["execution"]["status"] == "RUNNING"


async def test_stop_running_execution_is_signalled_in_heartbeat_and_logs(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner, workflow_id = await _setup(admin, client)
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    assert (await runner.poll(wait=5)).status_code == 200
    await runner.start(execution_id, 1)
    stop = await admin.post(f"/api/executions/{execution_id}/stop")
    assert stop.status_code == 200 and stop.json()["execution"]["stopRequested"] is True
    assert stop.json()["execution"]["status"] == "RUNNING"
    assert (await runner.heartbeat()).json()["stopExecutionIds"] == [execution_id]
    assert (await runner.logs(execution_id, 1)).json() == {"stopRequested": True}
    assert (await runner.complete(execution_id, 1, "STOPPED")).status_code == 200
    assert (await admin.post(f"/api/executions/{execution_id}/stop")).status_code == 409


async def test_stop_assigned_execution_frees_runner_at_once(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner, workflow_id = await _setup(admin, client)
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    assert (await runner.poll(wait=5)).json()["execution"]["status"] == "ASSIGNED"
    stop = await admin.post(f"/api/executions/{execution_id}/stop")
    assert stop.json()["execution"]["status"] == "STOPPED"
    assert (await runner.start(execution_id, 1)).status_code == 409
    async with hub.db.session() as session:
        row = (await session.execute(text("SELECT status, current_execution_id FROM runners"))).one()
    assert row == ("ONLINE", None)


async def test_labels_and_type_route_work_only_to_matching_runners(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "gpu-job", SIMPLE_DEFINITION, labels=["gpu"], runnerType="linux")
    plain = await ProtocolRunner.register(admin, client, "plain", type="linux")
    wrong_type = await ProtocolRunner.register(admin, client, "win", type="windows", labels=["gpu"])
    gpu = await ProtocolRunner.register(admin, client, "gpu", type="linux", labels=["gpu", "big"])
    for r in (plain, wrong_type, gpu):
        await r.auth()
        await r.heartbeat()
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    assert (await plain.poll()).status_code == 204
    assert (await wrong_type.poll()).status_code == 204
    assert (await gpu.poll(wait=5)).json()["execution"]["id"] == execution_id


async def test_pinned_execution_goes_to_its_runner_and_priority_orders_the_queue(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "w", SIMPLE_DEFINITION)
    low = (await admin.post("/api/executions", json={"workflowId": workflow_id, "priority": 1})).json()["execution"]
    high = (await admin.post("/api/executions", json={"workflowId": workflow_id, "priority": 8})).json()["execution"]
    a = await ProtocolRunner.register(admin, client, "a")
    b = await ProtocolRunner.register(admin, client, "b")
    await a.auth()
    await b.auth()
    pinned = (
        await admin.post("/api/executions", json={"workflowId": workflow_id, "priority": 5, "runnerId": b.runner_id})
    ).json()["execution"]
    await drain()  # let the create-time match attempts finish, so claims see unlocked rows
    assert (await a.poll(wait=5)).json()["execution"]["id"] == high["id"]
    assert (await b.poll(wait=5)).json()["execution"]["id"] == pinned["id"]
    await b.start(pinned["id"], 1)
    await b.complete(pinned["id"], 1)
    assert (await b.poll(wait=5)).json()["execution"]["id"] == low["id"]


async def test_runner_protocol_is_not_rate_limited_by_user_limiter(
    make_client: ClientFactory, client: httpx.AsyncClient, hub: Hub, admin: httpx.AsyncClient
) -> None:
    runner, _ = await _setup(admin, client)
    limit = hub.settings.rate_limit_per_minute
    hub.settings.rate_limit_per_minute = 3
    try:
        statuses = [(await runner.heartbeat()).status_code for _ in range(10)]
        user_statuses = [(await admin.get("/api/runners")).status_code for _ in range(5)]
    finally:
        hub.settings.rate_limit_per_minute = limit
    assert statuses == [200] * 10
    assert 429 in user_statuses


async def test_get_execution_with_wait_answers_when_the_execution_ends(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner, workflow_id = await _setup(admin, client)
    created = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    execution_id = created.json()["execution"]["id"]
    # Not ended within `wait`: the current state.
    early = await admin.get(f"/api/executions/{execution_id}", params={"wait": 0.2})
    assert early.status_code == 200 and early.json()["execution"]["status"] in ("QUEUED", "ASSIGNED")

    waiting = asyncio.create_task(admin.get(f"/api/executions/{execution_id}", params={"wait": 20}))
    await _held_open(hub, execution_id)
    assert (await runner.poll(wait=5)).json()["execution"]["id"] == execution_id
    assert (await runner.start(execution_id, 1)).status_code == 200
    await _held_open(hub, execution_id)  # RUNNING is not an end
    assert not waiting.done()
    started = time.monotonic()
    metrics = {"cpuAvg": 1.5, "cpuPeak": 9.0, "memAvgMb": 30, "memPeakMb": 41}
    done = await runner.complete(execution_id, 1, "COMPLETED", outputs={"answer": 42}, metrics=metrics)
    assert done.status_code == 200
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status_code == 200 and answer.json()["execution"]["status"] == "COMPLETED"
    assert time.monotonic() - started < 10  # woken by the end, not by the 20 s wait
    # The end report's row, handed to the waiting read with its runner's name, answers as a read of the ended
    # execution does.
    assert answer.json() == (await admin.get(f"/api/executions/{execution_id}")).json()
    ended = answer.json()["execution"]
    assert ended["outputs"] == {"answer": 42} and ended["runnerName"] == "r1"
    assert ended["triggeredByName"] == (await admin.get("/api/auth/me")).json()["user"]["email"]
    # Ended already: answered at once.
    again = await asyncio.wait_for(admin.get(f"/api/executions/{execution_id}", params={"wait": 20}), 5)
    assert again.json()["execution"]["status"] == "COMPLETED"


async def test_an_end_report_hands_the_ended_row_to_this_process_s_waiters_only_when_its_end_is_awaited(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner, workflow_id = await _setup(admin, client)
    endings = hub.executions.endings
    awaited = uuid.UUID(await running_execution(admin, runner, workflow_id))
    signal = endings.register(awaited)
    try:
        await queries.await_end(hub.db, awaited)  # a waiting client's look marks it: its end is announced
        assert (await runner.complete(str(awaited), 1, "FAILED", error="boom", outputs={"n": 1})).status_code == 200
        handed = endings.ended(awaited)
        assert handed is not None and handed.runner_name == "r1"
        stored = (await queries.get_execution(hub.db, awaited)).execution
        columns = [c.key for c in sa_inspect(Execution).column_attrs]
        assert {c: getattr(handed.execution, c) for c in columns} == {c: getattr(stored, c) for c in columns}
        assert handed.execution.status == "FAILED" and handed.execution.error == "boom"
        assert handed.execution.completed_at is not None
    finally:
        endings.unregister(awaited, signal)
    assert endings.ended(awaited) is None  # its last waiter gone: nothing is kept

    # Waited for here without the look's mark: nobody is told of the end, and the statement returns no row.
    unmarked = uuid.UUID(await running_execution(admin, runner, workflow_id))
    signal = endings.register(unmarked)
    try:
        assert (await runner.complete(str(unmarked), 1, "COMPLETED")).status_code == 200
        assert endings.ended(unmarked) is None and not signal.is_set()
    finally:
        endings.unregister(unmarked, signal)


async def test_a_held_read_answers_with_the_handed_row_and_the_names_it_read_while_waiting(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    # Handed here by hand, with no end in the database: what the read answers can only come from the hand-over.
    runner, workflow_id = await _setup(admin, client)
    execution_id = uuid.UUID(await running_execution(admin, runner, workflow_id))
    waiting = asyncio.create_task(hub.executions.wait_for_end(execution_id, 20))
    await _held_open(hub, str(execution_id))
    running = (await queries.get_execution(hub.db, execution_id)).execution
    ended = lifecycle.execution_from(
        {a.key: getattr(running, a.key) for a in sa_inspect(Execution).column_attrs} | {"status": "COMPLETED"}
    )
    hub.executions.endings.hand(lifecycle.Ended(ended, "renamed-r1"))
    view = await asyncio.wait_for(waiting, 5)
    assert view.execution is ended and view.names is not None
    me = (await admin.get("/api/auth/me")).json()["user"]
    assert view.names.of(ended) == {
        "runner_name": "renamed-r1",
        "triggered_by_name": me["email"],
        "waiting_reason": None,
    }
    assert hub.executions.endings.ended(execution_id) is None  # the read is over: nothing is kept


async def test_get_execution_with_wait_wakes_on_a_stop_and_rejects_a_bad_wait(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "hello", SIMPLE_DEFINITION)
    created = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    execution_id = created.json()["execution"]["id"]
    waiting = asyncio.create_task(admin.get(f"/api/executions/{execution_id}", params={"wait": 20}))
    await _held_open(hub, execution_id)
    assert (await admin.post(f"/api/executions/{execution_id}/stop")).status_code == 200
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.json()["execution"]["status"] == "STOPPED"
    for bad in ("-1", "31", "soon"):
        r = await admin.get(f"/api/executions/{execution_id}", params={"wait": bad})
        assert r.status_code == 422, bad


async def test_log_uploads_commit_asynchronously_and_state_changes_durably(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    # Log uploads do not wait for the WAL flush; state changes still do. (Signs of life are no transaction of
    # their own at all: tests/integration/test_liveness.py.)
    import uuid

    from exekra.hub import lifecycle

    runner, _ = await _setup(admin, client)
    runner_id = uuid.UUID(runner.runner_id)
    show = text("SHOW synchronous_commit")
    async with hub.db.transaction() as session:
        await session.execute(text("SET LOCAL synchronous_commit = on"))
        assert await lifecycle.touch_runner(session, runner_id, 0) is not None  # back ONLINE: a state change
        assert (await session.execute(show)).scalar_one() == "on"
    # A log upload too; a start (a state change) stays durable.
    workflow_id = await publish_workflow(admin, "logged", SIMPLE_DEFINITION)
    created = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    execution_id = created.json()["execution"]["id"]
    assert (await runner.poll(wait=5)).json()["execution"]["id"] == execution_id
    held = lifecycle.Attempt(uuid.UUID(execution_id), runner_id, 0, 1)
    async with hub.db.transaction() as session:
        await session.execute(text("SET LOCAL synchronous_commit = on"))
        assert await lifecycle.start(session, held)
        assert (await session.execute(show)).scalar_one() == "on"
        line = LogLine(None, "INFO", "one")
        assert await lifecycle.store_logs(session, held, lifecycle.LogBatch([line], 3, 10**6, "")) is False
        assert (await session.execute(show)).scalar_one() == "off"
    assert (await runner.heartbeat()).status_code == 200


async def _held_open(hub: Hub, execution_id: str) -> None:
    """Wait until a `?wait=` read of the execution is held open in the hub, waiting for its end."""
    ident = uuid.UUID(execution_id)

    async def waiting() -> bool:
        return hub.executions.endings.is_waiting(ident)

    await eventually(waiting, 5, f"a held read of {execution_id}", interval=0.005)


async def test_the_log_size_cap_keeps_batches_until_it_is_passed_then_one_marker_and_nothing_more(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "max_log_bytes_per_execution", 100_000)
    runner, workflow_id = await _setup(admin, client)
    execution_id = await running_execution(admin, runner, workflow_id)
    line = "x" * 99  # 600 lines: 59,400 bytes a batch
    for batch in range(4):
        answer = await runner.logs(execution_id, 1, *[f"{batch}{line}"] * 600)
        assert answer.status_code == 200 and answer.json() == {"stopRequested": False}
    last = [{"level": "INFO", "message": "the very end"}]
    assert (await runner.complete(execution_id, 1, "COMPLETED", lines=last)).status_code == 200

    stored = (await admin.get(f"/api/executions/{execution_id}/logs", params={"limit": 5000})).json()["lines"]
    assert len(stored) == 1201  # two batches (the log was under the cap before each), then the marker only
    assert {x["message"][0] for x in stored[:1200]} == {"0", "1"}
    assert stored[-1]["level"] == "WARNING" and stored[-1]["message"].startswith("log limit reached: ")
    assert "100,000 bytes" in stored[-1]["message"]
    assert [x["seq"] for x in stored] == list(range(1, 1202))
    async with hub.db.session() as session:
        counted = (
            await session.execute(
                text("SELECT log_bytes, log_dropped, status FROM executions WHERE id = :id"),
                {"id": uuid.UUID(execution_id)},
            )
        ).one()
    assert (counted.log_bytes, counted.log_dropped, counted.status) == (2 * 600 * 100, 600 + 600 + 1, "COMPLETED")
