"""The SDK's `wait`: it asks the hub to hold each read until the execution ends (`?wait=`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from exekra.client import ExekraClient


def _execution(status: str) -> dict[str, Any]:
    return {
        "id": "e1",
        "workflowId": "w1",
        "versionId": "v1",
        "status": status,
        "priority": 5,
        "attempt": 1,
        "triggerType": "API",
        "createdAt": "2026-11-29T00:00:00Z",
    }


def test_wait_sends_a_held_read_and_returns_the_ended_execution() -> None:
    seen: list[str | None] = []
    answers = iter(["RUNNING", "COMPLETED"])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params.get("wait"))
        return httpx.Response(200, json={"execution": _execution(next(answers))})

    with ExekraClient("http://hub", "exk_t", transport=httpx.MockTransport(handler)) as hub:
        done = hub.wait("e1", poll_interval=0.01)
    assert done.status == "COMPLETED"
    assert seen == ["20.0", "20.0"]


def test_wait_never_holds_a_read_past_its_timeout() -> None:
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(float(request.url.params.get("wait", "0")))
        return httpx.Response(200, json={"execution": _execution("RUNNING")})

    with (
        ExekraClient("http://hub", "exk_t", transport=httpx.MockTransport(handler)) as hub,
        pytest.raises(TimeoutError, match="still RUNNING"),
    ):
        hub.wait("e1", timeout=0.2, poll_interval=0.05)
    assert seen and all(w <= 0.2 for w in seen)
