"""The hub client: request shapes, answers, and the error hierarchy (against httpx's mock transport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from exekra.runner.client import (
    AuthInfo,
    Conflict,
    HubClient,
    HubUnavailable,
    RateLimited,
    Rejected,
    Unauthorized,
)
from exekra.runner.config import RunnerConfig

Handler = Callable[[httpx.Request], httpx.Response]


def client(make_config: Callable[..., RunnerConfig], handler: Handler, token: str | None = "t0") -> HubClient:
    hub = HubClient(make_config("https://hub.example:4545/"), transport=httpx.MockTransport(handler))
    hub.token = token
    return hub


def error(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> Handler:
    body = {"error": {"code": "x", "message": message, "details": None}}
    return lambda request: httpx.Response(status, json=body, headers=headers)


async def test_auth_sends_identity_and_keeps_the_token(make_config: Callable[..., RunnerConfig]) -> None:
    seen: list[dict[str, Any]] = []
    expires = datetime.now(UTC) + timedelta(seconds=100)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/runner/auth" and "Authorization" not in request.headers
        seen.append(json.loads(request.content))
        answer = {"token": "t1", "expiresAt": expires.isoformat().replace("+00:00", "Z"), "runnerId": "r1"}
        return httpx.Response(200, json={**answer, "maxLongPollSeconds": 0, "reportIntervalSeconds": 1})

    hub = client(make_config, handler, token=None)
    info = await hub.auth()
    assert hub.token == "t1" and info.runner_id == "r1"
    assert (info.heartbeat_interval, info.poll_interval, info.max_long_poll, info.report_interval) == (30, 5, 0, 1)
    assert 75 <= info.renew_after() <= 80
    assert set(seen[0]) == {"machineKey", "machineSecret", "hostname", "os", "version"}
    await hub.aclose()


def test_renewal_is_at_least_a_second_away_even_for_an_expired_token() -> None:
    info = AuthInfo("t", datetime.now(UTC) - timedelta(minutes=5), "r", 30, 5, 30, 2)
    assert info.renew_after() == 1.0


async def test_poll_holds_longer_than_the_wait_and_maps_204_to_none(make_config: Callable[..., RunnerConfig]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["wait"] == "30" and request.headers["Authorization"] == "Bearer t0"
        assert request.extensions["timeout"]["read"] > 30
        return httpx.Response(204)

    hub = client(make_config, handler)
    assert await hub.poll(30) is None
    await hub.aclose()


async def test_logs_and_heartbeat_answers(make_config: Callable[..., RunnerConfig]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path.endswith("/logs"):
            assert body == {"attempt": 3, "lines": []}
            return httpx.Response(200, json={"stopRequested": True})
        assert body["executionId"] == "e1" and body["cpuPercent"] == 1.0
        return httpx.Response(200, json={"status": "BUSY", "stopExecutionIds": ["e1"]})

    hub = client(make_config, handler)
    assert await hub.logs("e1", 3, []) is True
    assert (await hub.heartbeat({"cpuPercent": 1.0}, "e1")).stop_execution_ids == ["e1"]
    await hub.aclose()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, Unauthorized),
        (409, Conflict),
        (404, Rejected),
        (422, Rejected),
        (500, HubUnavailable),
        (503, HubUnavailable),
    ],
)
async def test_error_statuses_map_to_the_error_hierarchy(
    status: int, kind: type[Exception], make_config: Callable[..., RunnerConfig]
) -> None:
    hub = client(make_config, error(status, "stale attempt"))
    with pytest.raises(kind, match=f"{status} stale attempt"):
        await hub.start("e1", 1)
    await hub.aclose()


async def test_429_carries_retry_after(make_config: Callable[..., RunnerConfig]) -> None:
    hub = client(make_config, error(429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as caught:
        await hub.auth()
    assert caught.value.retry_after == 7
    await hub.aclose()


async def test_connection_errors_and_garbage_answers_mean_unavailable(make_config: Callable[..., RunnerConfig]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    hub = client(make_config, refuse)
    with pytest.raises(HubUnavailable, match="refused"):
        await hub.heartbeat({}, None)
    await hub.aclose()
    hub = client(make_config, lambda request: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(HubUnavailable, match="not JSON"):
        await hub.logs("e1", 1, [])
    await hub.aclose()


async def test_calls_before_auth_are_unauthorized(make_config: Callable[..., RunnerConfig]) -> None:
    hub = client(make_config, lambda request: httpx.Response(204), token=None)
    with pytest.raises(Unauthorized):
        await hub.poll(0)
    await hub.aclose()
