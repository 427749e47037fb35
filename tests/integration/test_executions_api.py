"""Executions (SPEC §4, §5, §7.1): create, dedup, list and paging, detail, logs and their stream, stop, retry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import event, text

from exekra.hub.context import Hub
from exekra.hub.tasks import drain

from .conftest import SIMPLE_DEFINITION, UNKNOWN_ID
from .protocol import ProtocolRunner, eventually, publish_workflow, statements_sent

WITH_INPUTS: dict[str, Any] = {
    "inputs": {
        "name": {"type": "string", "required": True},
        "count": {"type": "integer", "default": 1},
    },
    **SIMPLE_DEFINITION,
}


async def _create(admin: httpx.AsyncClient, workflow_id: str, **fields: Any) -> dict[str, Any]:
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, **fields})
    assert r.status_code == 201, r.text
    execution: dict[str, Any] = r.json()["execution"]
    return execution


async def _online_runner(admin: httpx.AsyncClient, client: httpx.AsyncClient, name: str = "r1") -> ProtocolRunner:
    runner = await ProtocolRunner.register(admin, client, name)
    assert (await runner.auth()).status_code == 200
    assert (await runner.heartbeat()).status_code == 200
    return runner


async def _run(runner: ProtocolRunner, execution_id: str, *messages: str, status: str = "COMPLETED") -> None:
    """Take the execution through the protocol: poll, start, upload `messages`, report `status`."""
    polled = await runner.poll(wait=5)
    assert polled.status_code == 200 and polled.json()["execution"]["id"] == execution_id
    assert (await runner.start(execution_id, 1)).status_code == 200
    if messages:
        assert (await runner.logs(execution_id, 1, *messages)).status_code == 200
    assert (await runner.complete(execution_id, 1, status)).status_code == 200


def _sse_events(body: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a Server-Sent Events body."""
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], orjson.loads(fields["data"])))
    return events


# --- create --------------------------------------------------------------------------------------------


async def test_create_queues_at_once_with_attempt_zero_and_the_workflow_priority(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "prio-seven", SIMPLE_DEFINITION, priority=7, timeoutSeconds=60)
    r = await admin.post("/api/executions", json={"workflowId": workflow_id})
    assert r.status_code == 201
    assert r.json()["duplicate"] is False
    e = r.json()["execution"]
    assert e["status"] == "QUEUED" and e["attempt"] == 0 and e["priority"] == 7
    assert e["workflowId"] == workflow_id and e["versionId"]
    assert e["triggerType"] == "API" and e["timeoutSeconds"] == 60 and e["runnerId"] is None
    assert e["queuedAt"] and e["createdAt"].endswith("Z")


async def test_create_with_explicit_priority_overrides_the_workflow_default(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "prio", SIMPLE_DEFINITION, priority=7)
    assert (await _create(admin, workflow_id, priority=2))["priority"] == 2
    assert (await _create(admin, workflow_id, priority=0))["priority"] == 0
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, "priority": 10})
    assert r.status_code == 422 and "priority" in r.json()["error"]["message"]


async def test_inputs_are_checked_against_the_definition_and_defaults_applied(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "inputs", WITH_INPUTS)
    missing = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    assert missing.status_code == 422
    assert missing.json()["error"]["message"] == "inputs: input 'name' is required"
    wrong = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {"name": "a", "count": "x"}})
    assert wrong.status_code == 422 and wrong.json()["error"]["message"] == "inputs: input 'count' must be an integer"
    created = await _create(admin, workflow_id, inputs={"name": "Ada"})
    assert created["inputs"] == {"name": "Ada", "count": 1}
    not_object = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": [1, 2]})
    assert not_object.status_code == 422


async def test_a_strict_workflow_refuses_undeclared_inputs_with_422(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "strict-inputs", {**WITH_INPUTS, "strictInputs": True})
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {"name": "a", "lable": "x"}})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "inputs: input 'lable' is not declared (strictInputs)"
    async with hub.db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM executions"))).scalar_one() == 0
    assert (await _create(admin, workflow_id, inputs={"name": "a"}))["inputs"] == {"name": "a", "count": 1}


@pytest.mark.parametrize("workflow_id", [UNKNOWN_ID, "not-a-uuid"])
async def test_create_for_unknown_workflow_is_404(admin: httpx.AsyncClient, workflow_id: str) -> None:
    r = await admin.post("/api/executions", json={"workflowId": workflow_id})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_create_for_workflow_without_published_version_is_409(admin: httpx.AsyncClient, hub: Hub) -> None:
    r = await admin.post("/api/workflows", json={"name": "draft-only", "definition": SIMPLE_DEFINITION})
    workflow_id = r.json()["workflow"]["id"]
    r = await admin.post("/api/executions", json={"workflowId": workflow_id})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    async with hub.db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM executions"))).scalar_one() == 0


async def test_create_for_archived_workflow_is_409(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "old", SIMPLE_DEFINITION)
    assert (await admin.delete(f"/api/workflows/{workflow_id}")).status_code == 200
    assert (await admin.post("/api/executions", json={"workflowId": workflow_id})).status_code == 409


async def test_create_pinned_to_unknown_runner_is_404(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "pin", SIMPLE_DEFINITION)
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, "runnerId": str(uuid.uuid4())})
    assert r.status_code == 404


# --- duplicate detection -------------------------------------------------------------------------------


async def test_idempotency_key_in_body_returns_the_first_execution_with_200(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "dedup", SIMPLE_DEFINITION)
    first = await admin.post("/api/executions", json={"workflowId": workflow_id, "idempotencyKey": "order-1"})
    again = await admin.post("/api/executions", json={"workflowId": workflow_id, "idempotencyKey": "order-1"})
    assert first.status_code == 201 and first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["execution"]["id"] == first.json()["execution"]["id"]
    assert again.json()["execution"]["idempotencyKey"] == "order-1"
    other = await admin.post("/api/executions", json={"workflowId": workflow_id, "idempotencyKey": "order-2"})
    assert other.status_code == 201 and other.json()["execution"]["id"] != first.json()["execution"]["id"]


async def test_idempotency_key_header_deduplicates_like_the_body_field(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "dedup", SIMPLE_DEFINITION)
    body = {"workflowId": workflow_id}
    first = await admin.post("/api/executions", json=body, headers={"Idempotency-Key": "hdr-1"})
    again = await admin.post("/api/executions", json=body, headers={"Idempotency-Key": "hdr-1"})
    assert first.status_code == 201 and again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["execution"]["id"] == first.json()["execution"]["id"]
    # The header and the body field name the same key.
    by_body = await admin.post("/api/executions", json={**body, "idempotencyKey": "hdr-1"})
    assert by_body.status_code == 200 and by_body.json()["execution"]["id"] == first.json()["execution"]["id"]
    new = await admin.post("/api/executions", json=body, headers={"Idempotency-Key": "hdr-2"})
    assert new.status_code == 201 and new.json()["duplicate"] is False


async def test_without_a_key_every_create_is_a_new_execution(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "plain", SIMPLE_DEFINITION)
    ids = {(await _create(admin, workflow_id))["id"] for _ in range(3)}
    assert len(ids) == 3


async def test_twenty_concurrent_creates_with_one_key_make_exactly_one_execution(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "race", SIMPLE_DEFINITION)
    body = {"workflowId": workflow_id, "idempotencyKey": "same-key"}
    responses = await asyncio.gather(*(admin.post("/api/executions", json=body) for _ in range(20)))
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert len({r.json()["execution"]["id"] for r in responses}) == 1
    assert sum(r.json()["duplicate"] for r in responses) == 19
    async with hub.db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM executions"))).scalar_one() == 1
        assert (await session.execute(text("SELECT count(*) FROM execution_keys"))).scalar_one() == 1


# --- list ----------------------------------------------------------------------------------------------


async def test_list_filters_by_workflow_runner_status_and_time(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    wf1 = await publish_workflow(admin, "wf1", SIMPLE_DEFINITION)
    wf2 = await publish_workflow(admin, "wf2", SIMPLE_DEFINITION)
    runner = await _online_runner(admin, client)
    done = await _create(admin, wf1)
    await _run(runner, done["id"])
    await admin.patch(f"/api/runners/{runner.runner_id}", json={"enabled": False})  # no more work for it
    queued1 = await _create(admin, wf1)
    queued2 = await _create(admin, wf2)
    stopped = await _create(admin, wf2)
    await admin.post(f"/api/executions/{stopped['id']}/stop")

    async def ids(**params: Any) -> list[str]:
        r = await admin.get("/api/executions", params=params)
        assert r.status_code == 200, r.text
        assert r.json()["total"] == len(r.json()["executions"])
        return [e["id"] for e in r.json()["executions"]]

    everything = [stopped["id"], queued2["id"], queued1["id"], done["id"]]  # newest first
    assert await ids() == everything
    assert await ids(workflowId=wf1) == [queued1["id"], done["id"]]
    assert await ids(runnerId=runner.runner_id) == [done["id"]]
    assert await ids(status="QUEUED") == [queued2["id"], queued1["id"]]
    assert await ids(status="completed,STOPPED") == [stopped["id"], done["id"]]
    assert await ids(workflowId=wf2, status="QUEUED") == [queued2["id"]]
    assert await ids(**{"from": queued1["createdAt"]}) == everything[:3]
    assert await ids(to=queued1["createdAt"]) == [done["id"]]  # `to` is exclusive
    assert await ids(**{"from": queued1["createdAt"], "to": stopped["createdAt"]}) == [queued2["id"], queued1["id"]]
    assert await ids(workflowId=str(uuid.uuid4())) == []

    listed = (await admin.get("/api/executions", params={"workflowId": wf1})).json()["executions"][0]
    assert listed["workflowName"] == "wf1" and listed["versionNumber"] == 1


async def test_list_rejects_unknown_status_with_422(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/api/executions", params={"status": "QUEUED,SLEEPING"})
    assert r.status_code == 422 and "SLEEPING" in r.json()["error"]["message"]


@pytest.mark.parametrize("params", [{"limit": 201}, {"limit": 0}, {"page": 0}, {"from": "yesterday"}, {"page": "two"}])
async def test_list_rejects_bad_paging_and_time_parameters_with_422(
    admin: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    r = await admin.get("/api/executions", params=params)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


async def test_list_rejects_a_forged_cursor_with_400(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/api/executions", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Invalid cursor"


async def test_page_and_limit_split_the_list_and_report_the_total(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "paged", SIMPLE_DEFINITION)
    created = [(await _create(admin, workflow_id))["id"] for _ in range(5)]
    newest_first = created[::-1]
    r = await admin.get("/api/executions", params={"page": 2, "limit": 2})
    body = r.json()
    assert (body["total"], body["page"], body["limit"]) == (5, 2, 2)
    assert [e["id"] for e in body["executions"]] == newest_first[2:4]
    last = (await admin.get("/api/executions", params={"page": 3, "limit": 2})).json()
    assert [e["id"] for e in last["executions"]] == newest_first[4:] and last["nextCursor"] is None
    default = (await admin.get("/api/executions")).json()
    assert default["page"] == 1 and default["limit"] == 50


async def test_cursor_paging_walks_every_execution_exactly_once_newest_first(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "keyset", SIMPLE_DEFINITION)
    created = [(await _create(admin, workflow_id))["id"] for _ in range(23)]
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = (await admin.get("/api/executions", params=params)).json()
        pages += 1
        # The first page counts; keyset pages do not (a walk costs one page query per page).
        assert (body["total"], body["totalCapped"]) == ((23, False) if pages == 1 else (None, False))
        seen += [e["id"] for e in body["executions"]]
        # New rows arriving meanwhile must not shift the walk (keyset, not offset).
        if pages == 2:
            await _create(admin, workflow_id)
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == created[::-1] and len(set(seen)) == len(seen)


async def test_a_status_list_pages_newest_first_across_its_statuses_by_offset_and_by_cursor(
    admin: httpx.AsyncClient,
) -> None:
    workflow_id = await publish_workflow(admin, "mixed", SIMPLE_DEFINITION)
    other = await publish_workflow(admin, "other", SIMPLE_DEFINITION)
    created = []
    for i in range(7):
        execution = await _create(admin, workflow_id)
        if i % 3:
            await admin.post(f"/api/executions/{execution['id']}/stop")
        created.append(execution["id"])
        await _create(admin, other)
    newest_first = created[::-1]
    params = {"workflowId": workflow_id, "status": "STOPPED,queued,QUEUED", "limit": 3}

    offset_pages = [(await admin.get("/api/executions", params={**params, "page": n})).json() for n in (1, 2, 3)]
    assert [e["id"] for p in offset_pages for e in p["executions"]] == newest_first
    assert [p["total"] for p in offset_pages] == [7, 7, 7]

    seen: list[str] = []
    cursor = None
    while True:
        body = (await admin.get("/api/executions", params={**params, **({"cursor": cursor} if cursor else {})})).json()
        seen += [e["id"] for e in body["executions"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == newest_first


async def test_total_is_exact_up_to_the_cap_and_the_cap_with_total_capped_beyond(
    admin: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "executions_total_cap", 3)
    big = await publish_workflow(admin, "big", SIMPLE_DEFINITION)
    small = await publish_workflow(admin, "small", SIMPLE_DEFINITION)
    for _ in range(5):
        await _create(admin, big)
    for _ in range(3):
        stopped = await _create(admin, small)
        await admin.post(f"/api/executions/{stopped['id']}/stop")
    await _create(admin, small)

    async def total(**params: Any) -> tuple[int, bool, int]:
        r = await admin.get("/api/executions", params=params)
        assert r.status_code == 200, r.text
        return r.json()["total"], r.json()["totalCapped"], len(r.json()["executions"])

    assert await total() == (3, True, 9)  # 9 match: counting stops at the cap, the page is whole
    assert await total(workflowId=big) == (3, True, 5)
    assert await total(workflowId=small, status="STOPPED") == (3, False, 3)  # exactly the cap is not capped
    assert await total(workflowId=small, status="QUEUED") == (1, False, 1)
    assert await total(status="QUEUED", limit=2) == (3, True, 2)
    assert await total(workflowId=str(uuid.uuid4())) == (0, False, 0)
    assert await total(exactTotal="true") == (9, False, 9)
    assert await total(workflowId=big, status="QUEUED", exactTotal="true", limit=1) == (5, False, 1)
    assert await total(page=3, limit=4) == (3, True, 1)  # offset pages count too


async def test_cursor_pages_are_not_counted_even_with_exact_total(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "walk", SIMPLE_DEFINITION)
    for _ in range(3):
        await _create(admin, workflow_id)
    first = (await admin.get("/api/executions", params={"limit": 1, "exactTotal": "true"})).json()
    assert (first["total"], first["totalCapped"]) == (3, False)
    second = (
        await admin.get("/api/executions", params={"limit": 1, "exactTotal": "true", "cursor": first["nextCursor"]})
    ).json()
    assert (second["total"], second["totalCapped"], len(second["executions"])) == (None, False, 1)


# --- detail and logs -----------------------------------------------------------------------------------


async def test_get_execution_detail_has_metrics_and_version(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "detail", SIMPLE_DEFINITION)
    created = await _create(admin, workflow_id)
    r = await admin.get(f"/api/executions/{created['id']}")
    assert r.status_code == 200
    e = r.json()["execution"]
    assert e["id"] == created["id"] and e["workflowName"] == "detail" and e["versionNumber"] == 1
    assert e["metrics"] == {"cpuAvg": None, "cpuPeak": None, "memAvgMb": None, "memPeakMb": None}


async def test_unknown_or_malformed_execution_id_is_404_everywhere(admin: httpx.AsyncClient) -> None:
    for execution_id in (str(uuid.uuid4()), "not-a-uuid", "1"):
        for method, suffix in [
            ("GET", ""),
            ("GET", "/logs"),
            ("GET", "/logs/stream"),
            ("POST", "/stop"),
            ("POST", "/retry"),
        ]:
            r = await admin.request(method, f"/api/executions/{execution_id}{suffix}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, suffix, execution_id)


async def test_logs_after_seq_return_only_newer_lines_and_the_next_seq(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "logs", SIMPLE_DEFINITION)
    runner = await _online_runner(admin, client)
    execution = await _create(admin, workflow_id)
    await _run(runner, execution["id"], "one", "two", "three")
    url = f"/api/executions/{execution['id']}/logs"
    everything = (await admin.get(url)).json()
    assert [(x["seq"], x["message"], x["level"]) for x in everything["lines"]] == [
        (1, "one", "INFO"),
        (2, "two", "INFO"),
        (3, "three", "INFO"),
    ]
    assert everything["nextSeq"] == 3 and all(x["ts"].endswith("Z") for x in everything["lines"])
    newer = (await admin.get(url, params={"afterSeq": 1})).json()
    assert [x["seq"] for x in newer["lines"]] == [2, 3] and newer["nextSeq"] == 3
    assert (await admin.get(url, params={"afterSeq": 3})).json() == {"lines": [], "nextSeq": 3}
    assert (await admin.get(url, params={"afterSeq": -1})).status_code == 422


async def test_log_stream_of_a_finished_execution_sends_the_lines_then_end(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "sse", SIMPLE_DEFINITION)
    runner = await _online_runner(admin, client)
    execution = await _create(admin, workflow_id)
    await _run(runner, execution["id"], "first", "second", status="FAILED")
    r = await admin.get(f"/api/executions/{execution['id']}/logs/stream")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    assert [(name, data.get("seq"), data.get("message")) for name, data in events[:2]] == [
        ("log", 1, "first"),
        ("log", 2, "second"),
    ]
    assert events[2:] == [("end", {"status": "FAILED"})]
    after = _sse_events((await admin.get(f"/api/executions/{execution['id']}/logs/stream?afterSeq=1")).text)
    assert [name for name, _ in after] == ["log", "end"] and after[0][1]["message"] == "second"


async def test_log_stream_follows_a_running_execution_until_it_ends(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "live", SIMPLE_DEFINITION)
    runner = await _online_runner(admin, client)
    execution_id = (await _create(admin, workflow_id))["id"]
    assert (await runner.poll(wait=5)).status_code == 200
    await runner.start(execution_id, 1)
    await runner.logs(execution_id, 1, "before")
    stream = asyncio.create_task(admin.get(f"/api/executions/{execution_id}/logs/stream", timeout=20))
    await _following(hub, 1)
    assert not stream.done()  # still running: the stream stays open
    await runner.logs(execution_id, 1, "after")
    await runner.complete(execution_id, 1)
    events = _sse_events((await asyncio.wait_for(stream, 10)).text)
    assert [(name, data.get("message")) for name, data in events] == [
        ("log", "before"),
        ("log", "after"),
        ("end", None),
    ]
    assert events[-1][1] == {"status": "COMPLETED"}


async def test_a_hundred_idle_log_streams_cost_the_database_nothing_and_each_gets_the_next_line(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "log_streams_per_user", 100)
    workflow_id = await publish_workflow(admin, "watched", SIMPLE_DEFINITION)
    runner = await _online_runner(admin, client)
    execution_id = (await _create(admin, workflow_id))["id"]
    assert (await runner.poll(wait=5)).status_code == 200
    assert (await runner.start(execution_id, 1)).status_code == 200
    path = f"/api/executions/{execution_id}/logs/stream"
    streams = [asyncio.create_task(admin.get(path, timeout=60)) for _ in range(100)]
    try:
        await _following(hub, 100, idle=True)
        statements: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            statements.append(statement)

        event.listen(hub.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            await asyncio.sleep(1.0)  # the idle period being measured: no line, no end
        finally:
            event.remove(hub.db.engine.sync_engine, "before_cursor_execute", count)
        # The streams' reads: the log lines, and the execution's status (the maintenance loop may run meanwhile).
        reads = [s for s in statements if "execution_logs" in s or "workflow_versions.id = execution.version_id" in s]
        assert reads == []

        assert (await runner.logs(execution_id, 1, "the next line")).status_code == 200
        assert (await runner.complete(execution_id, 1)).status_code == 200
        answers = await asyncio.wait_for(asyncio.gather(*streams), 30)
    finally:
        for stream in streams:
            stream.cancel()
    for answer in answers:
        assert [(name, data.get("message")) for name, data in _sse_events(answer.text)] == [
            ("log", "the next line"),
            ("end", None),
        ]
    assert hub.executions.followers.count == 0


async def test_log_streams_are_capped_per_user(
    admin: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "log_streams_per_user", 2)
    workflow_id = await publish_workflow(admin, "capped", SIMPLE_DEFINITION)
    execution_id = (await _create(admin, workflow_id))["id"]
    path = f"/api/executions/{execution_id}/logs/stream"
    held = [asyncio.create_task(admin.get(path, timeout=30)) for _ in range(2)]
    await _following(hub, 2)

    r = await admin.get(path)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"

    assert (await admin.post(f"/api/executions/{execution_id}/stop")).status_code == 200
    for answer in await asyncio.wait_for(asyncio.gather(*held), 10):
        assert _sse_events(answer.text) == [("end", {"status": "STOPPED"})]


async def _following(hub: Hub, count: int, *, idle: bool = False) -> None:
    """Wait until `count` log streams follow in the hub (`idle`: and wait, having read everything)."""
    followers = hub.executions.followers

    async def following() -> bool:
        return (followers.idle if idle else followers.count) == count

    await eventually(following, 10, f"{count} log streams to follow", interval=0.01)


# --- stop and retry ------------------------------------------------------------------------------------


async def test_stop_of_a_queued_execution_stops_it_at_once(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "stop", SIMPLE_DEFINITION)
    execution = await _create(admin, workflow_id)
    r = await admin.post(f"/api/executions/{execution['id']}/stop")
    assert r.status_code == 200
    stopped = r.json()["execution"]
    assert stopped["status"] == "STOPPED" and stopped["completedAt"] and stopped["attempt"] == 0
    assert (await admin.get(f"/api/executions/{execution['id']}")).json()["execution"]["status"] == "STOPPED"
    again = await admin.post(f"/api/executions/{execution['id']}/stop")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_a_stopped_execution_is_never_handed_to_a_runner(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "stop", SIMPLE_DEFINITION)
    execution = await _create(admin, workflow_id)
    await admin.post(f"/api/executions/{execution['id']}/stop")
    runner = await _online_runner(admin, client)
    assert (await runner.poll()).status_code == 204


async def test_retry_creates_a_new_execution_with_the_same_version_and_inputs(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "retry", WITH_INPUTS, priority=3)
    original = await _create(admin, workflow_id, inputs={"name": "Ada", "count": 4})
    await admin.post(f"/api/executions/{original['id']}/stop")

    r = await admin.post(f"/api/executions/{original['id']}/retry")
    assert r.status_code == 201
    retried = r.json()["execution"]
    assert retried["id"] != original["id"] and retried["status"] == "QUEUED" and retried["attempt"] == 0
    assert retried["versionId"] == original["versionId"] and retried["inputs"] == {"name": "Ada", "count": 4}
    assert retried["workflowId"] == workflow_id and retried["priority"] == 3


async def test_retry_is_refused_once_the_version_is_superseded_or_the_workflow_archived(
    admin: httpx.AsyncClient,
) -> None:
    """As creation refuses them: a retry never runs a version that is no longer the published one."""
    workflow_id = await publish_workflow(admin, "retry", WITH_INPUTS)
    original = await _create(admin, workflow_id, inputs={"name": "Ada"})
    await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": SIMPLE_DEFINITION})
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200

    r = await admin.post(f"/api/executions/{original['id']}/retry")
    assert r.status_code == 409 and "no longer the published one" in r.json()["error"]["message"]

    current = await _create(admin, workflow_id)
    assert (await admin.delete(f"/api/workflows/{workflow_id}")).status_code in (200, 204)
    r = await admin.post(f"/api/executions/{current['id']}/retry")
    assert r.status_code == 409 and "archived" in r.json()["error"]["message"]


async def test_stop_and_create_are_audited_with_the_acting_user(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "audited", SIMPLE_DEFINITION)
    execution = await _create(admin, workflow_id)
    await admin.post(f"/api/executions/{execution['id']}/stop")
    await drain()
    me = (await admin.get("/api/auth/me")).json()["user"]["id"]
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                text("SELECT action, actor_type, actor_id FROM audit_log WHERE entity_id = :id ORDER BY id"),
                {"id": execution["id"]},
            )
        ).all()
    assert [tuple(r) for r in rows] == [("execution.create", "USER", me), ("execution.stop", "USER", me)]


# Set only in the block `statements_sent` counts in, and in the tasks it starts (a task copies its context when
# created): the hub's loops started before it (maintenance, liveness flush, leader lease) do not see it.
async def test_a_create_is_one_round_trip_once_its_workflow_is_known_and_audited_as_before(
    admin: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow_id = await publish_workflow(admin, "counted", SIMPLE_DEFINITION)
    await _create(admin, workflow_id)  # the token resolved and its use noted, the workflow and definition read, once
    await drain()  # and its dispatch is over
    offered: list[uuid.UUID] = []

    async def offer(execution_id: uuid.UUID) -> None:  # the dispatch after the commit is not the create's
        offered.append(execution_id)

    monkeypatch.setattr(hub.dispatcher, "execution_queued", offer)
    with statements_sent(hub, monkeypatch) as sent:
        r = await admin.post("/api/executions", json={"workflowId": workflow_id})
        await drain()
    assert r.status_code == 201, r.text
    execution = r.json()["execution"]
    # The row with its audit entry, checked against the workflow's revision: no BEGIN, no COMMIT, and no read of the
    # workflow, which the first create read (the token, used a moment ago, is known too).
    assert len(sent) == 1, [" ".join(q.split())[:100] for q in sent]
    assert [str(e) for e in offered] == [execution["id"]]
    me = (await admin.get("/api/auth/me")).json()["user"]["id"]
    async with hub.db.session() as session:
        row = (
            await session.execute(
                text(
                    "SELECT actor_type, actor_id, ip, action, entity_type, entity_id, details, ts = e.created_at AS ts"
                    "  FROM audit_log a JOIN executions e ON e.id::text = a.entity_id WHERE a.entity_id = :id"
                ),
                {"id": execution["id"]},
            )
        ).one()
    assert row._asdict() == {
        "actor_type": "USER",
        "actor_id": me,
        "ip": "127.0.0.1",
        "action": "execution.create",
        "entity_type": "execution",
        "entity_id": execution["id"],
        "details": {"workflowId": workflow_id, "triggerType": "API"},
        "ts": True,  # stamped in the transaction that created the row
    }


async def test_malformed_id_in_a_list_filter_is_422(admin: httpx.AsyncClient) -> None:
    for name in ("workflowId", "runnerId"):
        r = await admin.get("/api/executions", params={name: "not-an-id"})
        assert r.status_code == 422 and name in r.json()["error"]["message"]


# --- names beside ids (issue 13, item 4) ----------------------------------------------------------------


async def test_list_and_detail_name_the_runner_and_who_triggered(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "named", SIMPLE_DEFINITION)
    runner = await _online_runner(admin, client, "build-07")
    queued = await _create(admin, workflow_id)
    assert queued["runnerName"] is None and queued["triggeredByName"] == "admin@example.com"
    await _run(runner, queued["id"])
    detail = (await admin.get(f"/api/executions/{queued['id']}")).json()["execution"]
    assert (detail["runnerId"], detail["runnerName"]) == (runner.runner_id, "build-07")
    assert detail["triggeredByName"] == "admin@example.com"
    listed = (await admin.get("/api/executions", params={"workflowId": workflow_id})).json()["executions"]
    assert [(e["runnerName"], e["triggeredByName"]) for e in listed] == [("build-07", "admin@example.com")]

    r = await admin.post("/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": "erp-hook"})
    fired = await client.post(f"/api/webhooks/{r.json()['token']}", json={})
    by_hook = (await admin.get(f"/api/executions/{fired.json()['executionId']}")).json()["execution"]
    assert (by_hook["triggerType"], by_hook["triggeredByName"]) == ("WEBHOOK", "erp-hook")


_SAYING_V2 = {**WITH_INPUTS, "nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "v2"}}]}


async def _changed_elsewhere(hub: Hub, statement: str, workflow_id: str) -> None:
    """A change of the workflow made as another hub process (or any program) makes it: nothing here is told."""
    async with hub.db.transaction() as session:
        await session.execute(text(statement), {"id": uuid.UUID(workflow_id)})


async def test_a_create_from_a_remembered_workflow_sees_every_change_made_since_by_anyone(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    # The workflow read by the first create is remembered; each change counts up its revision, and a create built
    # from a stale memory inserts nothing (no key claimed either) and reads the workflow again.
    workflow_id = await publish_workflow(admin, "remembered", WITH_INPUTS, priority=5)
    assert (await _create(admin, workflow_id, inputs={"name": "Ada"}))["priority"] == 5

    await _changed_elsewhere(hub, "UPDATE workflows SET priority = 2, labels = '{gpu}' WHERE id = :id", workflow_id)
    changed = await _create(admin, workflow_id, inputs={"name": "Ada"}, idempotencyKey="after-change")
    assert changed["priority"] == 2
    again = await admin.post(
        "/api/executions", json={"workflowId": workflow_id, "inputs": {"name": "Ada"}, "idempotencyKey": "after-change"}
    )
    assert again.status_code == 200 and again.json()["execution"]["id"] == changed["id"]
    async with hub.db.session() as session:
        keys = (await session.execute(text("SELECT execution_id FROM execution_keys WHERE key = 'after-change'"))).all()
        labels = await session.execute(text("SELECT required_labels FROM executions WHERE id = :id"), changed)
    assert [str(k.execution_id) for k in keys] == [changed["id"]]
    assert labels.scalar_one() == ["gpu"]

    # A new version published, whose inputs the remembered one also takes: run (the versions' change was counted).
    await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": _SAYING_V2})
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200
    latest = await _create(admin, workflow_id, inputs={"name": "Ada"})
    assert (await admin.get(f"/api/executions/{latest['id']}")).json()["execution"]["versionNumber"] == 2
    # Another, whose inputs differ: refused on the remembered definition's inputs, so checked on a read, and run.
    await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": SIMPLE_DEFINITION})
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200
    latest = await _create(admin, workflow_id)
    assert (await admin.get(f"/api/executions/{latest['id']}")).json()["execution"]["versionNumber"] == 3

    await _changed_elsewhere(hub, "UPDATE workflows SET archived = true WHERE id = :id", workflow_id)
    r = await admin.post("/api/executions", json={"workflowId": workflow_id})
    assert r.status_code == 409 and "archived" in r.json()["error"]["message"]
    await _changed_elsewhere(hub, "UPDATE workflows SET archived = false WHERE id = :id", workflow_id)
    assert (await _create(admin, workflow_id))["status"] == "QUEUED"

    # Every version gone at once (TRUNCATE fires no row trigger; a statement trigger renews every revision).
    await _changed_elsewhere(hub, "TRUNCATE workflow_versions CASCADE", workflow_id)
    r = await admin.post("/api/executions", json={"workflowId": workflow_id})
    assert r.status_code == 409 and "no published version" in r.json()["error"]["message"]


async def test_the_revision_counts_every_change_of_a_workflow_and_of_its_versions(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "counted", SIMPLE_DEFINITION)

    async def revision() -> int:
        async with hub.db.session() as session:
            found = await session.execute(text("SELECT revision FROM workflows WHERE id = :id"), {"id": workflow_id})
            return int(found.scalar_one())

    seen = [await revision()]
    await admin.patch(f"/api/workflows/{workflow_id}", json={"priority": 7})
    seen.append(await revision())
    await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": SIMPLE_DEFINITION})
    seen.append(await revision())
    await admin.post(f"/api/workflows/{workflow_id}/publish")
    seen.append(await revision())
    await _changed_elsewhere(
        hub, "DELETE FROM workflow_versions WHERE workflow_id = :id AND NOT published", workflow_id
    )
    seen.append(await revision())
    assert seen == sorted(set(seen)), seen  # each change counted up
