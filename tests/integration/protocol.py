"""A protocol-level test runner that speaks SPEC §7.3 over plain HTTP (no agent logic), the helpers that wait
on a hub's real state instead of sleeping, and dashboard form posting."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event, text

from exekra.hub.context import Hub
from exekra.workflow.catalogue import EVERY_RUNNER


def declaration(*activities: str, capabilities: tuple[str, ...] = (), digest: str = "d" * 64) -> dict[str, Any]:
    """A runner's catalogue as `auth` carries it: the built-ins every runner has, plus `activities`, each needing
    the capability its family names when that is one of `capabilities` (`browser.open` needs `browser`)."""

    def entry(name: str) -> dict[str, Any]:
        family = name.split(".")[0]
        return {
            "name": name,
            "category": "Plugins",
            "description": f"{name}, as a test runner declares it",
            "params": {"type": "object", "properties": {"what": {"type": "string"}}},
            "outputs": {"type": "object"},
            "capability": family if family in capabilities else None,
            "package": "acme-exekra",
            "version": "1.2.3",
        }

    names = sorted(EVERY_RUNNER | set(activities))
    return {"capabilities": list(capabilities), "activities": [entry(name) for name in names], "digest": digest}


class ProtocolRunner:
    """One registered runner driven step by step by a test."""

    def __init__(self, http: httpx.AsyncClient, machine_key: str, machine_secret: str) -> None:
        self.http = http
        self.machine_key = machine_key
        self.machine_secret = machine_secret
        self.token: str | None = None
        self.runner_id: str | None = None

    @classmethod
    async def register(
        cls, admin: httpx.AsyncClient, http: httpx.AsyncClient, name: str, **fields: Any
    ) -> ProtocolRunner:
        r = await admin.post("/api/runners", json={"name": name, **fields})
        assert r.status_code == 201, r.text
        body = r.json()
        runner = cls(http, body["machineKey"], body["machineSecret"])
        runner.runner_id = body["runner"]["id"]
        return runner

    @classmethod
    async def online(
        cls, admin: httpx.AsyncClient, http: httpx.AsyncClient, name: str, **fields: Any
    ) -> ProtocolRunner:
        """A registered runner that has signed in and sent a heartbeat: ONLINE, idle, eligible for work."""
        runner = await cls.register(admin, http, name, **fields)
        assert (await runner.auth()).status_code == 200
        assert (await runner.heartbeat()).status_code == 200
        return runner

    async def take(self, execution_id: str | None = None, attempt: int | None = None) -> dict[str, Any]:
        """Long-poll until work arrives (at most 5 s); checks it is `execution_id` at `attempt` when given."""
        polled = await self.poll(wait=5)
        assert polled.status_code == 200, f"no work for runner {self.runner_id}: {polled.status_code}"
        work: dict[str, Any] = polled.json()["execution"]
        if execution_id is not None:
            assert work["id"] == execution_id, work
        if attempt is not None:
            assert work["attempt"] == attempt, work
        return work

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def auth(self, catalogue: dict[str, Any] | None = None) -> httpx.Response:
        """Sign in; with `catalogue` (see `declaration`), declare what this runner can run, else declare nothing,
        as an older runner does."""
        body = {"machineKey": self.machine_key, "machineSecret": self.machine_secret, "hostname": "test", "os": "linux"}
        if catalogue is not None:
            body["catalogue"] = catalogue
        r = await self.http.post("/api/runner/auth", json=body)
        if r.status_code == 200:
            self.token = r.json()["token"]
        return r

    async def heartbeat(self, **metrics: Any) -> httpx.Response:
        body = {"cpuPercent": 5.0, "memoryPercent": 40.0, "memoryUsedMb": 800, "diskPercent": 50, "diskFreeGb": 20}
        return await self.http.post("/api/runner/heartbeat", json={**body, **metrics}, headers=self.headers)

    async def poll(self, wait: float = 0) -> httpx.Response:
        return await self.http.get("/api/runner/poll", params={"wait": wait}, headers=self.headers, timeout=wait + 10)

    async def start(self, execution_id: str, attempt: int) -> httpx.Response:
        return await self.http.post(
            f"/api/runner/executions/{execution_id}/start", json={"attempt": attempt}, headers=self.headers
        )

    async def logs(self, execution_id: str, attempt: int, *messages: str) -> httpx.Response:
        lines = [{"level": "INFO", "message": m} for m in messages]
        return await self.http.post(
            f"/api/runner/executions/{execution_id}/logs",
            json={"attempt": attempt, "lines": lines},
            headers=self.headers,
        )

    async def upload(
        self, execution_id: str, attempt: int, name: str, data: bytes, content_type: str = "text/plain", node: str = ""
    ) -> httpx.Response:
        """Upload one artifact the way the agent does: the file as the body, its type and size in the headers."""
        return await self.http.post(
            f"/api/runner/executions/{execution_id}/artifacts",
            params={"attempt": attempt, "name": name, "nodeId": node},
            content=data,
            headers={**self.headers, "Content-Type": content_type},
        )

    async def start_child(
        self, execution_id: str, attempt: int, workflow: str, key: str = "sub:1", **fields: Any
    ) -> httpx.Response:
        """A `workflow.run` call: start a child of the attempt (`fields`: inputs, version)."""
        body = {"attempt": attempt, "key": key, "workflow": workflow, **fields}
        return await self.http.post(f"/api/runner/executions/{execution_id}/children", json=body, headers=self.headers)

    async def child(self, execution_id: str, attempt: int, child_id: str, wait: float = 0) -> httpx.Response:
        params = {"attempt": attempt, "wait": wait}
        path = f"/api/runner/executions/{execution_id}/children/{child_id}"
        return await self.http.get(path, params=params, headers=self.headers, timeout=wait + 10)

    async def stop_child(self, execution_id: str, attempt: int, child_id: str) -> httpx.Response:
        path = f"/api/runner/executions/{execution_id}/children/{child_id}/stop"
        return await self.http.post(path, json={"attempt": attempt}, headers=self.headers)

    async def complete(
        self, execution_id: str, attempt: int, status: str = "COMPLETED", **extra: Any
    ) -> httpx.Response:
        body = {"attempt": attempt, "status": status, **extra}
        return await self.http.post(f"/api/runner/executions/{execution_id}/complete", json=body, headers=self.headers)


async def publish_workflow(admin: httpx.AsyncClient, name: str, definition: dict[str, Any], **settings: Any) -> str:
    """Create and publish a workflow through the API; returns its id."""
    r = await admin.post("/api/workflows", json={"name": name, "definition": definition, **settings})
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow"]["id"]
    r = await admin.post(f"/api/workflows/{workflow_id}/publish")
    assert r.status_code == 200, r.text
    return workflow_id


async def create_execution(admin: httpx.AsyncClient, workflow_id: str, **fields: Any) -> dict[str, Any]:
    """Create an execution through the API (201); returns it."""
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, **fields})
    assert r.status_code == 201, r.text
    execution: dict[str, Any] = r.json()["execution"]
    return execution


async def running_execution(admin: httpx.AsyncClient, runner: ProtocolRunner, workflow_id: str) -> str:
    """An execution of the workflow that `runner` (idle and eligible) has taken and started: RUNNING."""
    execution_id = str((await create_execution(admin, workflow_id))["id"])
    work = await runner.take(execution_id)
    assert (await runner.start(execution_id, work["attempt"])).status_code == 200
    return execution_id


async def backdate(hub: Hub, table: str, column: str, row_id: str, seconds: float) -> None:
    """Move `column` of one row `seconds` into the past (database clock), after the signs of life received
    so far are written (they would otherwise land after it, as newer ones)."""
    await hub.executions.liveness.flush()
    async with hub.db.transaction() as session:
        await session.execute(
            text(f"UPDATE {table} SET {column} = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": seconds, "id": uuid.UUID(row_id)},
        )


async def eventually(predicate: Callable[[], Awaitable[Any]], within: float, what: str, interval: float = 0.02) -> Any:
    """Await `predicate()` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def long_poll_waiting(hub_http: httpx.AsyncClient) -> None:
    """Wait until a runner's long poll waits in the hub process that `hub_http` talks to (its `/metrics`)."""

    async def waiting() -> bool:
        metrics = (await hub_http.get("/metrics")).text
        return held_requests(metrics, "long_poll") > 0

    await eventually(waiting, 5, "a long poll to wait in the hub", interval=0.01)


_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    """The form token of a rendered page."""
    match = _CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def post_form(c: httpx.AsyncClient, path: str, data: dict[str, str], *, page: str = "/") -> httpx.Response:
    """Post a dashboard form the way the browser does: with the token of a page of the same session."""
    token = csrf_of((await c.get(page)).text)
    return await c.post(path, data={**data, "csrf": token})


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def held_requests(metrics: str, kind: str) -> float:
    """How many requests of `kind` a hub process holds open, from its `/metrics` text."""
    prefix = f'exekra_held_requests{{kind="{kind}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    raise AssertionError(f"no exekra_held_requests for {kind} in /metrics")


_COUNTING: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)


@contextlib.contextmanager
def statements_sent(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every round trip to PostgreSQL the block sends, and the tasks it starts, their SQL: the driver pool's
    statements (BEGIN and COMMIT included) and the ORM's. The hub's own background work is not counted."""
    sent: list[str] = []

    def counting(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def send(connection: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
            if _COUNTING.get():
                sent.append(query)
            return await method(connection, query, *args, **kwargs)

        return send

    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        monkeypatch.setattr(asyncpg.Connection, name, counting(getattr(asyncpg.Connection, name)))

    def orm(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if _COUNTING.get():
            sent.append(statement)

    event.listen(hub.db.engine.sync_engine, "before_cursor_execute", orm)
    token = _COUNTING.set(True)
    try:
        yield sent
    finally:
        _COUNTING.reset(token)
        event.remove(hub.db.engine.sync_engine, "before_cursor_execute", orm)
        monkeypatch.undo()
