"""How the hub's application is stacked (hub/app.py): the hub's own middleware outermost, then the runner
protocol's lane, then FastAPI's layers; and the lane serves the protocol's routes at the paths the application
documents for them (the router is included as it is)."""

from __future__ import annotations

import inspect
import os
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from exekra.config import Settings
from exekra.hub import observability
from exekra.hub.app import BodySizeLimit, create_app
from exekra.hub.deps import rate_limit
from exekra.hub.observability import RequestTelemetry
from exekra.hub.routing import LeanLane
from exekra.hub.security_headers import SecurityHeaders

SECRET = "ZXhla3JhIGludGVncmF0aW9uIHRlc3RzIGtleSAzMmI="


def _layers(app: Any) -> list[type]:
    layers = []
    while app is not None and not isinstance(app, ServerErrorMiddleware):
        layers.append(type(app))
        app = getattr(app, "app", None)
    return [*layers, type(app)]


def test_the_edge_goes_around_the_lane_and_the_lane_before_fastapis_layers() -> None:
    plain = create_app(Settings(database_url="postgresql://hub@db/exekra", secret_key=SECRET))
    assert _layers(plain.build_middleware_stack()) == [
        RequestTelemetry,
        SecurityHeaders,
        BodySizeLimit,
        LeanLane,
        ServerErrorMiddleware,
    ]
    proxied = create_app(
        Settings(database_url="postgresql://hub@db/exekra", secret_key=SECRET, trusted_proxies=["10.0.0.1"])
    )
    assert _layers(proxied.build_middleware_stack())[:2] == [ProxyHeadersMiddleware, RequestTelemetry]


def test_the_lane_serves_every_documented_runner_route_and_the_executions_hot_ones_at_their_documented_paths() -> None:
    app = create_app(Settings(database_url="postgresql://hub@db/exekra", secret_key=SECRET))
    stack = app.build_middleware_stack()
    while not isinstance(stack, LeanLane):
        stack = stack.app
    served = {(method, route.path) for route in stack.routes for method in route.methods - {"HEAD"}}
    hot = {
        ("POST", "/api/executions"),
        ("GET", "/api/executions/{execution_id}"),
        ("POST", "/api/executions/{execution_id}/retry"),
    }
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path.startswith("/api/runner/") or (method.upper(), path) in hot
    }
    # The runner protocol (auth, heartbeat, poll, and eight per execution), and an execution's create, read and retry.
    assert len(served) == 14 and served == documented
    limited = [route for route in stack.routes if route.path.startswith("/api/executions")]
    assert all(route.dependencies == [Depends(rate_limit)] for route in limited)  # user-facing: rate limited


async def test_an_unhandled_error_is_answered_500_through_the_edge_with_its_request_id_and_headers() -> None:
    app = create_app(Settings(database_url="postgresql://hub@db/exekra", secret_key=SECRET))

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/broken", broken)  # through FastAPI's layers, now inside the edge
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        r = await c.get("/api/broken", headers={"X-Request-ID": "boom-1"})
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    assert r.headers["x-request-id"] == "boom-1"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


async def test_an_http_request_goes_to_the_lane_with_no_frame_of_the_framework_or_the_passing_layers_waiting() -> None:
    app = create_app(Settings(database_url="postgresql://hub@db/exekra", secret_key=SECRET))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/api/health",
        "scheme": "http",
        "headers": [(b"content-length", b"0")],
    }
    step = app(scope, receive, send)
    assert inspect.iscoroutine(step) and step.cr_code is RequestTelemetry.__call__.__code__  # the edge's outermost
    step.close()
    assert scope["app"] is app
    # Below telemetry (which awaits, to observe the answer), the security headers and the body limit hand the
    # request to the lane without a frame of their own.
    assert app.middleware_stack is not None
    passing = app.middleware_stack.app  # type: ignore[attr-defined]
    step = passing(scope, receive, send)
    assert step.cr_code is LeanLane.__call__.__code__
    step.close()
    lifespan = app({"type": "lifespan"}, receive, send)  # everything else: FastAPI's own call
    assert inspect.iscoroutine(lifespan) and lifespan.cr_code is FastAPI.__call__.__code__
    lifespan.close()


async def test_fastapis_own_telemetry_is_asked_once_and_when_on_takes_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(Settings(database_url="postgresql://hub@db/exekra", secret_key=SECRET))
    asked: list[bool] = []

    def enabled() -> bool:  # as with an OpenTelemetry provider set up before the first request
        asked.append(True)
        return True

    monkeypatch.setattr(app._native_telemetry, "enabled", enabled)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(2):
        step = app({"type": "http", "method": "GET", "path": "/api/health", "headers": []}, receive, send)
        assert step.cr_code is FastAPI.__call__.__code__  # type: ignore[attr-defined]
        step.close()  # type: ignore[attr-defined]
    assert asked == [True]


def test_uvicorn_takes_the_hub_for_an_asgi_3_application_by_itself() -> None:
    # HubApp's call returns a coroutine instead of being one: it is marked, or uvicorn would wrap it as ASGI 2.
    config = uvicorn.Config(create_app(Settings(database_url="postgresql://hub@db/exekra", secret_key=SECRET)))
    config.load()
    assert config.interface == "asgi3"


def test_a_forked_process_makes_request_ids_of_its_own() -> None:
    """A hub's worker processes may be forked from one that made ids already: each makes ids of its own."""
    parent = observability._request_id({"headers": []})
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        os.write(writer, observability._request_id({"headers": []}).encode())
        os._exit(0)
    os.close(writer)
    made = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(child, 0)
    again = observability._request_id({"headers": []})  # what the parent makes next: not what the child made
    assert len(made) == 16 and made != again and parent != again
