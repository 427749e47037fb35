"""The API's edges (SPEC §7, §7.2, §10.3, §10.4): the error shape and statuses, body and rate limits,
health, the OpenAPI document and local docs, and the audit trail of mutating actions."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from exekra import __version__
from exekra.embedded import EmbeddedRedis
from exekra.hub.context import Hub
from exekra.hub.ratelimit import RateLimiter
from exekra.hub.runners import service as runners_service

from .conftest import PASSWORD, SIMPLE_DEFINITION, ClientFactory, still_limiter
from .protocol import ProtocolRunner, publish_workflow, running_execution

RedisFactory = Callable[..., EmbeddedRedis]


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is `status` with exactly the error shape `{"error": {code, message, details}}`."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


async def _oversized(size: int) -> AsyncIterator[bytes]:
    """A JSON-looking body of `size` bytes, streamed in chunks (no Content-Length: chunked encoding)."""
    yield b'{"email": "a@example.com", "password": "'
    remaining = size
    while remaining > 0:
        chunk = min(remaining, 64 * 1024)
        yield b"x" * chunk
        remaining -= chunk
    yield b'"}'


# --- the error shape -----------------------------------------------------------------------------------


async def test_every_error_status_uses_the_one_error_shape(
    make_client: ClientFactory, admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    operator = await make_client("OPERATOR")
    assert_error(await client.post("/api/auth/login", content=b"{oops", headers=_json()), 400, "bad_request")
    assert_error(await client.get("/api/auth/me"), 401, "not_authenticated")
    assert_error(await operator.post("/api/runners", json={"name": "x"}), 403, "forbidden")
    assert_error(await admin.get(f"/api/runners/{uuid.uuid4()}"), 404, "not_found")
    assert_error(await client.get("/api/no-such-thing"), 404, "not_found")
    assert_error(await client.delete("/api/health"), 405, "method_not_allowed")
    assert_error(
        await client.post("/api/auth/bootstrap", json={"email": "b@example.com", "password": PASSWORD}), 409, "conflict"
    )
    big = b"x" * (hub.settings.max_body_bytes + 1)
    assert_error(await client.post("/api/auth/login", content=big, headers=_json()), 413, "payload_too_large")
    assert_error(await admin.post("/api/executions", json={"workflowId": 7}), 422, "validation_failed")


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/api/auth/login"),
        ("POST", "/api/executions"),
        ("PATCH", "/api/runners/x"),
        ("POST", "/api/runner/auth"),
    ],
)
@pytest.mark.parametrize("payload", [b"{", b'{"a": }', b"\xff\xfe", b"[1, 2"])
async def test_malformed_json_is_400(admin: httpx.AsyncClient, method: str, url: str, payload: bytes) -> None:
    error = assert_error(await admin.request(method, url, content=payload, headers=_json()), 400, "bad_request")
    assert error["message"] == "Malformed JSON body"


async def test_wrong_types_are_422_naming_the_field(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/executions", json={"workflowId": str(uuid.uuid4()), "priority": "high"})
    error = assert_error(r, 422, "validation_failed")
    assert error["message"].startswith("priority:")
    assert error["details"][0]["loc"] == ["body", "priority"]
    r = await admin.post("/api/runners", json={"name": ["not", "a", "string"]})
    assert assert_error(r, 422, "validation_failed")["message"].startswith("name:")
    r = await admin.post("/api/executions", json=["a", "list"])
    assert_error(r, 422, "validation_failed")
    r = await admin.get("/api/executions", params={"limit": "many"})
    assert assert_error(r, 422, "validation_failed")["message"].startswith("query.limit:")


async def test_body_over_the_limit_with_content_length_is_413(client: httpx.AsyncClient, hub: Hub) -> None:
    limit = hub.settings.max_body_bytes
    r = await client.post("/api/auth/login", content=b"x" * (limit + 1), headers=_json())
    error = assert_error(r, 413, "payload_too_large")
    assert str(limit) in error["message"]


async def test_streamed_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient, hub: Hub) -> None:
    r = await client.post("/api/auth/login", content=_oversized(hub.settings.max_body_bytes), headers=_json())
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert_error(r, 413, "payload_too_large")


async def test_body_just_under_the_limit_is_read(client: httpx.AsyncClient, hub: Hub) -> None:
    # Over the password's length bound but within the body limit: validated, not refused as too large.
    r = await client.post("/api/auth/login", content=_oversized(hub.settings.max_body_bytes - 100), headers=_json())
    assert_error(r, 422, "validation_failed")


async def test_runner_protocol_bodies_are_limited_too(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await ProtocolRunner.register(admin, client, "r1")
    await runner.auth()
    r = await client.post(
        "/api/runner/heartbeat", content=_oversized(hub.settings.max_body_bytes), headers={**_json(), **runner.headers}
    )
    assert_error(r, 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/api/nope", "/api/executions/x/nope", "/nope"])
async def test_unknown_routes_are_404_in_the_error_shape(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(path), 404, "not_found")


async def test_wrong_method_is_405_with_allow_header(admin: httpx.AsyncClient) -> None:
    r = await admin.put("/api/executions", json={})
    assert_error(r, 405, "method_not_allowed")
    # Starlette names the methods of the first route matching the path only (POST here, not also GET).
    allowed = set(r.headers["allow"].replace(" ", "").split(","))
    assert allowed and allowed <= {"GET", "POST"}


# --- rate limiting -------------------------------------------------------------------------------------


@pytest.fixture
def rate_limit_of_five(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> int:
    """Five user requests per minute, counted by a fresh in-memory limiter (`still_limiter`)."""
    still_limiter(hub, monkeypatch)
    monkeypatch.setattr(hub.settings, "rate_limit_per_minute", 5)
    return 5


async def test_user_requests_over_the_limit_get_429_with_retry_after_and_limit_headers(
    admin: httpx.AsyncClient, rate_limit_of_five: int
) -> None:
    answers = [await admin.get("/api/runners") for _ in range(rate_limit_of_five)]
    assert [r.status_code for r in answers] == [200] * 5
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["4", "3", "2", "1", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "5" for r in answers)

    limited = await admin.get("/api/workflows")  # the limit is per client, across endpoints
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Limit"] == "5" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in limited.headers


async def test_creating_reading_and_retrying_executions_count_in_the_same_limit_and_say_so(
    admin: httpx.AsyncClient, rate_limit_of_five: int
) -> None:
    # All three are served by the hub's lane (LeanRoutes), with the rate limit as their router's own dependency.
    workflow_id = await publish_workflow(admin, "limited", SIMPLE_DEFINITION)  # two requests of five
    created = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    assert created.status_code == 201
    assert (created.headers["X-RateLimit-Limit"], created.headers["X-RateLimit-Remaining"]) == ("5", "2")
    execution_id = created.json()["execution"]["id"]
    read = await admin.get(f"/api/executions/{execution_id}")
    assert (read.status_code, read.headers["X-RateLimit-Remaining"]) == (200, "1")
    retried = await admin.post(f"/api/executions/{execution_id}/retry")  # the fifth
    assert (retried.status_code, retried.headers["X-RateLimit-Remaining"]) == (201, "0")
    assert_error(await admin.post("/api/executions", json={"workflowId": workflow_id}), 429, "rate_limited")
    limited = await admin.get(f"/api/executions/{execution_id}")
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


@pytest.fixture
def rate_limit_of_five_in_redis(hub: Hub, monkeypatch: pytest.MonkeyPatch, embedded_redis: RedisFactory) -> str:
    """Five user requests per minute, counted in a private Redis of this test (nothing else talks to it); its URL."""
    url = embedded_redis().url
    monkeypatch.setattr(hub, "limiter", RateLimiter(url, 0.5))
    monkeypatch.setattr(hub.settings, "rate_limit_per_minute", 5)
    return url


@asynccontextmanager
async def redis_commands(url: str) -> AsyncIterator[list[str]]:
    """The commands clients send to the Redis at `url` while the block runs (MONITOR; a script's own commands are
    not counted), in order, lower case."""
    seen: list[str] = []
    marker = f"end-of-block-{uuid.uuid4().hex}"
    async with aioredis.from_url(url) as client, aioredis.from_url(url) as watcher:
        await client.ping()  # the marker's connection is made (its handshake sent) before the watch starts
        async with watcher.monitor() as monitor:
            yield seen
            await client.echo(marker)
            while True:
                command = await asyncio.wait_for(monitor.next_command(), timeout=5)
                if command["command"] == f"ECHO {marker}":
                    return
                if command["client_type"] != "lua":
                    seen.append(command["command"].split()[0].lower())


async def test_a_request_counted_in_redis_costs_one_redis_command_and_answers_the_same_headers(
    admin: httpx.AsyncClient, rate_limit_of_five_in_redis: str
) -> None:
    first = await admin.get("/api/runners")  # the first count also sends the script itself (once per Redis)
    assert first.headers["X-RateLimit-Remaining"] == "4"
    async with redis_commands(rate_limit_of_five_in_redis) as sent:
        answers = [await admin.get("/api/runners") for _ in range(4)]
        limited = await admin.get("/api/workflows")
    assert sent == ["evalsha"] * 5  # one round trip per request, the refused one too
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["3", "2", "1", "0"]
    assert all(r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "5" for r in answers)
    assert all(0 <= int(r.headers["X-RateLimit-Reset"]) - time.time() <= 60 for r in answers)
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Limit"] == "5" and limited.headers["X-RateLimit-Remaining"] == "0"


async def test_rate_limit_counts_each_user_separately(
    make_client: ClientFactory, admin: httpx.AsyncClient, rate_limit_of_five: int
) -> None:
    operator = await make_client("OPERATOR")  # its sign-in counts for the address, not for the user
    for _ in range(rate_limit_of_five):
        await admin.get("/api/runners")
    assert (await admin.get("/api/runners")).status_code == 429
    assert (await operator.get("/api/runners")).status_code == 200


async def test_anonymous_requests_are_limited_per_address(client: httpx.AsyncClient, rate_limit_of_five: int) -> None:
    statuses = [(await client.get("/api/auth/me")).status_code for _ in range(rate_limit_of_five + 1)]
    assert statuses == [401] * 5 + [429]


async def test_runner_protocol_and_health_are_never_rate_limited(
    admin: httpx.AsyncClient,
    client: httpx.AsyncClient,
    hub: Hub,
    rate_limit_of_five: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub.settings, "rate_limit_per_minute", 1_000_000)  # set up freely first
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await ProtocolRunner.register(admin, admin, "r1")  # protocol calls from the admin's own client
    monkeypatch.setattr(hub.settings, "rate_limit_per_minute", rate_limit_of_five)
    statuses = [(await admin.get("/api/runners")).status_code for _ in range(rate_limit_of_five + 1)]
    assert statuses[-1] == 429  # the user is limited...
    anonymous = [(await client.get("/api/auth/me")).status_code for _ in range(rate_limit_of_five + 1)]
    assert anonymous[-1] == 429  # ...and so is the address the runner calls from

    assert (await runner.auth()).status_code == 200
    assert [(await runner.heartbeat()).status_code for _ in range(12)] == [200] * 12
    assert [(await runner.poll()).status_code for _ in range(12)] == [204] * 12
    assert [(await client.get("/api/health")).status_code for _ in range(12)] == [200] * 12
    monkeypatch.setattr(hub.settings, "rate_limit_per_minute", 1_000_000)
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    monkeypatch.setattr(hub.settings, "rate_limit_per_minute", rate_limit_of_five)
    assert (await runner.poll(wait=5)).status_code == 200
    assert (await runner.start(execution_id, 1)).status_code == 200
    assert [(await runner.logs(execution_id, 1, "x")).status_code for _ in range(12)] == [200] * 12
    assert (await runner.complete(execution_id, 1)).status_code == 200


# --- health, OpenAPI and docs --------------------------------------------------------------------------


async def test_health_reports_database_queue_mode_version_instance_and_leader(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    instance = body.pop("instance")
    assert body == {"status": "ok", "database": "ok", "queue": "direct", "version": __version__, "leader": True}
    assert isinstance(instance, str) and len(instance) >= 8
    assert (await client.get("/api/health")).json()["instance"] == instance  # one id for the process


async def test_openapi_document_is_3_1_and_describes_the_api(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1.")
    assert {"/api/executions", "/api/runners/{runner_id}", "/api/auth/login", "/api/runner/poll"} <= set(doc["paths"])


async def test_docs_page_uses_only_locally_served_assets(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/static/swagger/") for a in assets), assets
    assert "//" not in re.sub(r"<!--.*?-->", "", r.text).replace("http://testserver", "")
    assert "'/api/openapi.json'" in r.text
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 0, asset
    assert "javascript" in (await client.get("/static/swagger/swagger-ui-bundle.js")).headers["content-type"]
    assert (await client.get("/static/swagger/swagger-ui.css")).headers["content-type"].startswith("text/css")


# --- audit ---------------------------------------------------------------------------------------------


async def test_mutating_actions_write_audit_rows_with_actor_and_action(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    me = (await admin.get("/api/auth/me")).json()["user"]["id"]
    user = (await admin.post("/api/auth/register", json={"email": "new@example.com", "password": PASSWORD})).json()
    token = (await admin.post("/api/auth/tokens", json={"name": "script"})).json()["apiToken"]
    await admin.delete(f"/api/auth/tokens/{token['id']}")
    workflow_id = await publish_workflow(admin, "audited", SIMPLE_DEFINITION)
    runner = await ProtocolRunner.register(admin, client, "r1")
    await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    await admin.post(f"/api/executions/{execution_id}/stop")
    await admin.post(f"/api/executions/{execution_id}/retry")
    await admin.patch(f"/api/users/{user['user']['id']}", json={"role": "DEVELOPER"})
    await admin.delete(f"/api/users/{user['user']['id']}")

    async with hub.db.session() as session:
        rows = (await session.execute(text("SELECT action, actor_type, actor_id, entity_id, ip FROM audit_log"))).all()
    by_action: dict[str, list[Any]] = {}
    for row in rows:
        by_action.setdefault(row.action, []).append(row)
    expected = {
        "user.create": user["user"]["id"],
        "token.create": token["id"],
        "token.revoke": token["id"],
        "workflow.create": workflow_id,
        "workflow.publish": workflow_id,
        "runner.register": runner.runner_id,
        "runner.regenerate_secret": runner.runner_id,
        "execution.create": execution_id,
        "execution.stop": execution_id,
        "user.update": user["user"]["id"],
        "user.delete": user["user"]["id"],
    }
    for action, entity_id in expected.items():
        assert action in by_action, f"no audit row for {action}"
        assert any(
            r.entity_id == entity_id and r.actor_type == "USER" and r.actor_id == me and r.ip for r in by_action[action]
        ), (action, by_action[action])
    assert len(by_action["execution.create"]) == 2  # the retry is a create too


async def test_failed_actions_write_no_audit_rows(admin: httpx.AsyncClient, hub: Hub) -> None:
    async with hub.db.session() as session:
        before = (await session.execute(text("SELECT count(*) FROM audit_log"))).scalar_one()
    await admin.post("/api/runners", json={"name": ""})
    await admin.post("/api/executions", json={"workflowId": str(uuid.uuid4())})
    await admin.delete(f"/api/users/{uuid.uuid4()}")
    async with hub.db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM audit_log"))).scalar_one() == before


@pytest.mark.parametrize(
    "failure",
    [
        DBAPIError("SELECT 1", None, ConnectionResetError("server closed the connection"), connection_invalidated=True),
        ConnectionRefusedError("connect call failed"),
        PoolTimeout("QueuePool limit of size 10 overflow 0 reached, connection timed out, timeout 30.00"),
    ],
    ids=["connection-invalidated", "connection-refused", "pool-exhausted"],
)
async def test_a_lost_database_connection_answers_503_with_retry_after(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(runners_service, "list_runners", broken)
    r = await admin.get("/api/runners")
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert r.json()["error"]["code"] == "not_ready"


class _ConcurrencyFailure(Exception):
    def __init__(self, pgcode: str) -> None:
        super().__init__(f"database error {pgcode}")
        self.pgcode = pgcode


@pytest.mark.parametrize("pgcode", ["40P01", "40001"], ids=["deadlock", "serialization-failure"])
async def test_a_transaction_the_database_undid_for_a_concurrent_one_answers_503_retry_now(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, pgcode: str
) -> None:
    async def undone(*args: object, **kwargs: object) -> None:
        raise DBAPIError("UPDATE runners ...", None, _ConcurrencyFailure(pgcode))

    monkeypatch.setattr(runners_service, "list_runners", undone)
    r = await admin.get("/api/runners")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "not_ready"


async def test_metrics_endpoint_exposes_queue_mode_and_runner_counts(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await admin.post("/api/runners", json={"name": "counted"})
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert 'exekra_queue_mode{mode="direct"} 1.0' in r.text
    assert 'exekra_runners{status="OFFLINE"} 1.0' in r.text
    assert "exekra_queue_mode_changes_total 0.0" in r.text


async def test_a_nul_character_is_the_clients_error_and_a_log_line_keeps_it_visible(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """PostgreSQL cannot store NUL in text or JSON: found by the fuzz gate as a 500 on `?search=%00`."""
    searched = await admin.get("/api/users", params={"search": "a\x00b"})
    assert searched.status_code == 400, searched.text
    assert searched.json()["error"]["message"] == "Text may not contain the NUL character (\\u0000)"
    named = await admin.post("/api/workflows", json={"name": "nul\x00name", "definition": SIMPLE_DEFINITION})
    assert named.status_code in (400, 422), named.text
    inputs = await admin.post(
        "/api/workflows", json={"name": "nul-desc", "description": "a\x00", "definition": SIMPLE_DEFINITION}
    )
    assert inputs.status_code in (400, 422), inputs.text

    # A program that prints NUL does not lose its log: the line is kept, the NUL shown as U+FFFD.
    workflow_id = await publish_workflow(admin, "nul-log", SIMPLE_DEFINITION)
    runner = await ProtocolRunner.register(admin, client, "nul-logger")
    await runner.auth()
    execution_id = await running_execution(admin, runner, workflow_id)
    assert (await runner.logs(execution_id, 1, "before\x00after")).status_code == 200
    lines = (await admin.get(f"/api/executions/{execution_id}/logs")).json()["lines"]
    assert [line["message"] for line in lines] == ["before\ufffdafter"]


async def test_metrics_can_require_a_bearer_token(
    client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "metrics_token", "scrape-secret")
    assert_error(await client.get("/metrics"), 401, "not_authenticated")
    assert_error(await client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401, "not_authenticated")
    r = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert r.status_code == 200 and "exekra_queue_mode" in r.text


async def test_metrics_can_be_turned_off(client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub.settings, "metrics_enabled", False)
    assert_error(await client.get("/metrics"), 404, "not_found")
