"""Node events: a runner's log lines name their node and mark its start and end; the hub stores them and
answers each node's state (`GET /api/executions/{id}/nodes`), which the live execution graph draws."""

from __future__ import annotations

from typing import Any

import httpx

from .protocol import ProtocolRunner, publish_workflow, running_execution

BRANCHING: dict[str, Any] = {
    "nodes": [
        {"id": "check", "activity": "control.if", "params": {"condition": "{{ true }}"}},
        {"id": "yes", "activity": "log.message", "params": {"message": "yes"}},
        {"id": "no", "activity": "log.message", "params": {"message": "no"}},
        {"id": "after", "activity": "log.message", "params": {"message": "after"}},
    ],
    "edges": [
        {"from": "check", "to": "yes", "when": "true"},
        {"from": "check", "to": "no", "when": "false"},
        {"from": "yes", "to": "after"},
    ],
}


def line(message: str, node: str | None = None, event: str | None = None, ts: str | None = None) -> dict[str, Any]:
    return {
        "level": "INFO",
        "message": message,
        **({"node": node} if node else {}),
        **({"event": event} if event else {}),
        **({"ts": ts} if ts else {}),
    }


async def post_lines(runner: ProtocolRunner, execution_id: str, lines: list[dict[str, Any]]) -> httpx.Response:
    return await runner.http.post(
        f"/api/runner/executions/{execution_id}/logs", json={"attempt": 1, "lines": lines}, headers=runner.headers
    )


async def running(admin: httpx.AsyncClient, client: httpx.AsyncClient, name: str) -> tuple[ProtocolRunner, str]:
    """A runner `name` running an execution of a new BRANCHING workflow; and the execution's id."""
    workflow_id = await publish_workflow(admin, f"branching-{name}", BRANCHING)
    runner = await ProtocolRunner.register(admin, client, name)
    await runner.auth()
    return runner, await running_execution(admin, runner, workflow_id)


async def states(admin: httpx.AsyncClient, execution_id: str) -> dict[str, tuple[str, int | None]]:
    answer = await admin.get(f"/api/executions/{execution_id}/nodes")
    assert answer.status_code == 200, answer.text
    return {n["id"]: (n["state"], n["durationMs"]) for n in answer.json()["nodes"]}


async def test_node_states_follow_the_event_lines_and_the_log_keeps_node_and_event(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner, execution_id = await running(admin, client, "r-nodes")
    assert await states(admin, execution_id) == {
        "check": ("NOT_REACHED", None),
        "yes": ("NOT_REACHED", None),
        "no": ("NOT_REACHED", None),
        "after": ("NOT_REACHED", None),
    }

    sent = [
        line("runner r-nodes started attempt 1"),
        line("node check started", "check", "started", "2026-12-03T10:00:00.000Z"),
        line("node check completed", "check", "completed", "2026-12-03T10:00:00.250Z"),
        line("node yes started", "yes", "started", "2026-12-03T10:00:00.300Z"),
        line("yes", "yes"),
    ]
    assert (await post_lines(runner, execution_id, sent)).status_code == 200
    assert await states(admin, execution_id) == {
        "check": ("COMPLETED", 250),
        "yes": ("RUNNING", None),
        "no": ("NOT_REACHED", None),
        "after": ("NOT_REACHED", None),
    }
    stored = (await admin.get(f"/api/executions/{execution_id}/logs")).json()["lines"]
    assert [(x["node"], x["event"]) for x in stored] == [
        (None, None),
        ("check", "started"),
        ("check", "completed"),
        ("yes", "started"),
        ("yes", None),
    ]

    # The last lines ride with `complete`, as a short execution's do.
    last = [
        line("node yes failed", "yes", "failed", "2026-12-03T10:00:01.300Z"),
        line("node no skipped", "no", "skipped", "2026-12-03T10:00:01.301Z"),
    ]
    assert (await runner.complete(execution_id, 1, "FAILED", error="yes failed", lines=last)).status_code == 200
    assert await states(admin, execution_id) == {
        "check": ("COMPLETED", 250),
        "yes": ("FAILED", 1000),
        "no": ("SKIPPED", None),
        "after": ("NOT_REACHED", None),
    }


async def test_a_node_still_running_when_the_execution_ends_is_stopped(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner, execution_id = await running(admin, client, "r-killed")
    assert (await post_lines(runner, execution_id, [line("node check started", "check", "started")])).status_code == 200
    # The runner killed the process tree on a timeout: no end event ever comes for the node.
    assert (await runner.complete(execution_id, 1, "FAILED", error="timed out")).status_code == 200
    assert (await states(admin, execution_id))["check"] == ("STOPPED", None)


async def test_bad_node_marks_are_refused_whole_and_unknown_executions_are_404(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner, execution_id = await running(admin, client, "r-bad")
    for bad in (line("x", "check", "exploded"), line("x", "n" * 256)):
        answer = await post_lines(runner, execution_id, [line("fine"), bad])
        assert answer.status_code == 422, answer.text
    assert (await admin.get(f"/api/executions/{execution_id}/logs")).json()["lines"] == []
    missing = await admin.get("/api/executions/00000000-0000-0000-0000-000000000000/nodes")
    assert missing.status_code == 404
    assert (await admin.get("/api/executions/not-an-id/nodes")).status_code in (400, 404, 422)
