"""Fixtures and helpers of the queue tests: a database of their own, an in-process hub with Redis (or without),
private Redis servers to kill, and runner loops."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from exekra.config import Settings
from exekra.db.migrate import upgrade_async
from exekra.db.models import Base
from exekra.embedded import EmbeddedRedis, create_database, drop_database
from exekra.hub.app import create_app
from exekra.hub.context import Hub
from exekra.hub.dispatch import wakeups
from exekra.hub.dispatch.switching import SwitchingDispatcher

from ..conftest import ADMIN_EMAIL, PASSWORD, SIMPLE_DEFINITION
from ..protocol import ProtocolRunner, eventually, publish_workflow


@pytest.fixture(scope="module")
async def queue_database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A migrated database of the test module's own: no other hub of the session dispatches in it."""
    async with own_database(pg_server_url) as url:
        yield url


@pytest.fixture
def redis_server(embedded_redis: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    """A private Redis server, to kill and restart at will."""
    return embedded_redis()


@pytest.fixture
async def hub(queue_database_url: str, redis_server: EmbeddedRedis, tmp_path: Path) -> AsyncIterator[RunningHub]:
    """A hub in Redis mode on an emptied database."""
    await empty_tables(queue_database_url)
    async with running_hub(hub_settings(queue_database_url, tmp_path, redis_server.url)) as running:
        await running.in_redis_mode()
        yield running


@asynccontextmanager
async def own_database(pg_server_url: str) -> AsyncIterator[str]:
    """A migrated database for one test module: no other hub of the session dispatches in it."""
    name = f"exekra_queue_{secrets.token_hex(4)}"
    url = await asyncio.to_thread(create_database, pg_server_url, name)
    await upgrade_async(url)
    try:
        yield url
    finally:
        await asyncio.to_thread(drop_database, pg_server_url, name)


async def empty_tables(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


def hub_settings(database_url: str, home: Path, redis_url: str | None, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        home=home,
        secret_key="ZXhla3JhIGludGVncmF0aW9uIHRlc3RzIGtleSAzMmI=",  # 32 bytes in base64
        rate_limit_per_minute=1_000_000,
        login_failures_per_minute=1_000_000,
        runner_auth_failures_per_minute=1_000_000,
        **overrides,
    )


@dataclass
class RunningHub:
    """An in-process hub and an ADMIN client of it."""

    app: FastAPI
    admin: httpx.AsyncClient
    http: httpx.AsyncClient  # anonymous: runners and health

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    @property
    def dispatcher(self) -> SwitchingDispatcher:
        dispatcher = self.hub.dispatcher
        assert isinstance(dispatcher, SwitchingDispatcher)
        return dispatcher

    async def queue_mode(self) -> str:
        r = await self.http.get("/api/health")
        assert r.status_code == 200, r.text
        mode: str = r.json()["queue"]
        return mode

    async def in_redis_mode(self) -> None:
        """Until the hub is in Redis mode. A hub whose first Redis command timed out (a loaded machine: the timeout
        is 0.5 s) starts in direct mode and switches at its next probe, within a second."""

        async def redis_mode() -> bool:
            return await self.queue_mode() == "redis"

        await eventually(redis_mode, 10, "the hub in Redis mode")

    async def workflow(self, **settings: Any) -> str:
        return await publish_workflow(self.admin, f"wf-{secrets.token_hex(4)}", SIMPLE_DEFINITION, **settings)

    async def runner(self, **fields: Any) -> ProtocolRunner:
        runner = await ProtocolRunner.register(self.admin, self.http, f"r-{secrets.token_hex(4)}", **fields)
        assert (await runner.auth()).status_code == 200
        return runner

    async def create(self, workflow_id: str, **fields: Any) -> str:
        r = await self.admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}, **fields})
        assert r.status_code == 201, r.text
        return str(r.json()["execution"]["id"])

    async def create_many(self, workflow_id: str, count: int) -> list[str]:
        return await concurrently([lambda: self.create(workflow_id)] * count)

    async def execution(self, execution_id: str) -> dict[str, Any]:
        r = await self.admin.get(f"/api/executions/{execution_id}")
        assert r.status_code == 200, r.text
        execution: dict[str, Any] = r.json()["execution"]
        return execution


@asynccontextmanager
async def running_hub(settings: Settings) -> AsyncIterator[RunningHub]:
    """Start a hub in this process (its lifespan included) and sign in its first admin."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://hub") as admin,
            httpx.AsyncClient(transport=transport, base_url="http://hub") as http,
        ):
            r = await admin.post("/api/auth/bootstrap", json={"email": ADMIN_EMAIL, "password": PASSWORD})
            if r.status_code == 409:
                r = await admin.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
            assert r.status_code in (200, 201), r.text
            admin.headers["Authorization"] = f"Bearer {r.json()['token']}"
            yield RunningHub(app, admin, http)


async def concurrently(calls: list[Callable[[], Awaitable[str]]], limit: int = 25) -> list[str]:
    """Run the calls with at most `limit` in flight (a burst, without queueing hundreds on a busy machine)."""
    gate = asyncio.Semaphore(limit)

    async def gated(call: Callable[[], Awaitable[str]]) -> str:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(gated(call) for call in calls)))


@dataclass
class Ledger:
    """What protocol runners did: completions per execution, and which runner held each."""

    completions: Counter[str] = field(default_factory=Counter)
    held_by: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def record(self, execution_id: str, runner_id: str) -> None:
        assert self.held_by.setdefault(execution_id, runner_id) == runner_id, f"{execution_id} held by two runners"
        self.completions[execution_id] += 1
        self.order.append(execution_id)


async def work_until(runner: ProtocolRunner, ledger: Ledger, done: asyncio.Event, wait: float = 1) -> None:
    """Poll, start and complete executions until `done` is set."""
    while not done.is_set():
        polled = await runner.poll(wait=wait)
        if polled.status_code == 204:
            continue
        assert polled.status_code == 200, polled.text
        execution = polled.json()["execution"]
        execution_id, attempt = execution["id"], execution["attempt"]
        assert (await runner.start(execution_id, attempt)).status_code == 200
        assert (await runner.complete(execution_id, attempt)).status_code == 200
        ledger.record(execution_id, str(runner.runner_id))


async def take_one(runner: ProtocolRunner, ledger: Ledger, wait: float = 0) -> str | None:
    """One poll (waiting up to `wait` s for work); runs what it got to completion and returns its id."""
    polled = await runner.poll(wait=wait)
    if polled.status_code == 204:
        return None
    execution = polled.json()["execution"]
    assert (await runner.start(execution["id"], execution["attempt"])).status_code == 200
    assert (await runner.complete(execution["id"], execution["attempt"])).status_code == 200
    ledger.record(execution["id"], str(runner.runner_id))
    return str(execution["id"])


async def wakeup_subscribers(redis_url: str, count: int) -> None:
    """Wait until `count` hub processes (or `Wakeups` of tests) are subscribed to the wake-ups in Redis."""

    async def subscribed() -> bool:
        async with aioredis.Redis.from_url(redis_url, decode_responses=True) as redis:
            return dict(await redis.pubsub_numsub(wakeups.CHANNEL)).get(wakeups.CHANNEL) == count

    await eventually(subscribed, 10, f"{count} subscribers of the wake-ups in Redis")
