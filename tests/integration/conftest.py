"""Fixtures for API tests: one migrated database and one in-process hub per session, emptied per test."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from limits.aio.storage import memory as limits_memory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from exekra.config import Settings
from exekra.db.migrate import upgrade_async
from exekra.db.models import Base
from exekra.db.raw import sqlstate
from exekra.hub.app import create_app
from exekra.hub.auth import security
from exekra.hub.context import Hub
from exekra.hub.ratelimit import RateLimiter

from .contract import AnswerShapes
from .protocol import ProtocolRunner, eventually

DEADLOCK = "40P01"

ADMIN_EMAIL = "admin@example.com"
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
async def migrated_database_url(database_url: str) -> str:
    await upgrade_async(database_url)
    return database_url


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id at its lowest cost for in-process API tests: full-cost hashing would dominate their time."""
    saved = security._hasher, security._DUMMY_HASH
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    security._hasher, security._DUMMY_HASH = hasher, hasher.hash("dummy")
    yield
    security._hasher, security._DUMMY_HASH = saved


@pytest.fixture(scope="session")
def license_authority() -> Ed25519PrivateKey:
    """The suite's licensing authority: the hubs under test trust its public key (`EXEKRA_LICENSE_PUBLIC_KEY`)."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def hub_settings(
    migrated_database_url: str, tmp_path_factory: pytest.TempPathFactory, license_authority: Ed25519PrivateKey
) -> Settings:
    home: Path = tmp_path_factory.mktemp("hub-home")
    public_key = license_authority.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return Settings(
        database_url=migrated_database_url,
        license_public_key=base64.b64encode(public_key).decode(),
        redis_url=None,
        home=home,
        secret_key="ZXhla3JhIGludGVncmF0aW9uIHRlc3RzIGtleSAzMmI=",  # 32 bytes in base64
        rate_limit_per_minute=1_000_000,
        login_failures_per_minute=1_000_000,
        runner_auth_failures_per_minute=1_000_000,
        alerts_enabled=False,  # tests drive alert workers themselves, on their own clocks (test_alerts.py)
    )


@pytest.fixture(scope="session")
async def hub_app(hub_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(hub_settings)
    async with app.router.lifespan_context(app):
        yield app


HubWith = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
def hub_with(hub_settings: Settings, hub: Hub) -> HubWith:
    """`async with hub_with(**settings) as app:` another hub process on the same database (its own pool,
    listener and limiter), with these settings changed."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[FastAPI]:
        app = create_app(hub_settings.model_copy(update=overrides))
        async with app.router.lifespan_context(app):
            yield app

    return start


@pytest.fixture(scope="session")
def answer_shapes(hub_app: FastAPI) -> AnswerShapes:
    return AnswerShapes(hub_app)


@pytest.fixture
async def hub(hub_app: FastAPI) -> AsyncIterator[Hub]:
    """The running hub's context, with every table emptied before the test."""
    state: Hub = hub_app.state.hub
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    for tries_left in reversed(range(5)):
        # TRUNCATE locks the tables one by one: a write of the hub's own background work (the signs of life, a
        # previous test's effects) that holds one and wants another may deadlock it, and PostgreSQL may pick it.
        try:
            async with state.db.transaction() as session:
                await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                if state.db.engine.dialect.server_version_info >= (15,):
                    # Its statistics reported with the commit, not up to 10 s later, when they would zero the live
                    # rows counted since (tests/integration/test_claim_plans.py counts them).
                    await session.execute(text("SELECT pg_stat_force_next_flush()"))
            break
        except DBAPIError as exc:
            if sqlstate(exc) != DEADLOCK or not tries_left:
                raise
    await state.licensing.reload()  # TRUNCATE sends no NOTIFY: forget a licence an earlier test installed
    yield state


@pytest.fixture
async def client(hub_app: FastAPI, hub: Hub, answer_shapes: AnswerShapes) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous API client talking to the in-process hub (every answer checked against its model)."""
    transport = httpx.ASGITransport(app=hub_app)
    hooks = {"response": [answer_shapes]}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", event_hooks=hooks) as c:
        yield c


ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(hub_app: FastAPI, hub: Hub, answer_shapes: AnswerShapes) -> AsyncIterator[ClientFactory]:
    """`await make_client(role)` → a client signed in as a fresh user of that role (None: anonymous)."""
    clients: list[httpx.AsyncClient] = []
    transport = httpx.ASGITransport(app=hub_app)

    async def _make(role: str | None = "ADMIN") -> httpx.AsyncClient:
        c = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", event_hooks={"response": [answer_shapes]}
        )
        clients.append(c)
        if role is None:
            return c
        admin_token = await _admin_token(c)
        if role == "ADMIN" and not clients[:-1]:
            token = admin_token
        else:
            email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.com"
            r = await c.post(
                "/api/auth/register",
                json={"email": email, "password": PASSWORD, "role": role},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            assert r.status_code == 201, r.text
            r = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
            token = r.json()["token"]
        c.headers["Authorization"] = f"Bearer {token}"
        return c

    async def _admin_token(c: httpx.AsyncClient) -> str:
        r = await c.post("/api/auth/bootstrap", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        if r.status_code == 409:
            r = await c.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["token"])

    yield _make
    for c in clients:
        await c.aclose()


@pytest.fixture
async def admin(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client("ADMIN")


def still_limiter(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the hub a fresh in-memory rate limiter whose clock stands still (both restored after the test). Its
    windows are minutes of the wall clock: just after one turns, the N hits of the minute before count as N - 1
    (weighted by what is left of the sliding window, then floored), and a test that crossed that moment was allowed
    one hit more (a 200 where it expected 429, at random)."""
    monkeypatch.setattr(hub, "limiter", RateLimiter(None, 0.5))
    frozen = time.time()
    monkeypatch.setattr(limits_memory, "time", SimpleNamespace(time=lambda: frozen))


@pytest.fixture
def strict_login_limit(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> int:
    """Three failed sign-ins per minute, counted by a fresh in-memory limiter (`still_limiter`)."""
    still_limiter(hub, monkeypatch)
    monkeypatch.setattr(hub.settings, "login_failures_per_minute", 3)
    return 3


OnlineRunner = Callable[..., Awaitable[ProtocolRunner]]


@pytest.fixture
def online_runner(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> OnlineRunner:
    """`await online_runner(name, **fields)` → a registered runner, signed in and ONLINE (`ProtocolRunner.online`)."""

    async def make(name: str = "runner", **fields: Any) -> ProtocolRunner:
        return await ProtocolRunner.online(admin, client, name, **fields)

    return make


Parked = Callable[[ProtocolRunner], Awaitable[None]]


@pytest.fixture
def parked(hub: Hub) -> Parked:
    """`await parked(runner)`: returns once the runner's long poll waits in the hub (at most 5 s)."""

    async def wait_until_parked(runner: ProtocolRunner) -> None:
        assert runner.runner_id is not None
        runner_id = uuid.UUID(runner.runner_id)

        async def is_waiting() -> bool:
            return hub.dispatcher.wakeups.is_waiting(runner_id)

        await eventually(is_waiting, 5, f"the long poll of {runner.runner_id} to wait", interval=0.005)

    return wait_until_parked


async def fill_audit(hub: Hub, count: int, action: str = "test.fill", days_ago: int = 0) -> None:
    """`count` SYSTEM audit entries of `action` for entities `t1`…, dated `days_ago` days back."""
    async with hub.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO audit_log (ts, actor_type, actor_id, action, entity_type, entity_id) "
                "SELECT now() - make_interval(days => :days), 'SYSTEM', NULL, :action, 'thing', 't' || n "
                "FROM generate_series(1, :count) AS n"
            ),
            {"action": action, "count": count, "days": days_ago},
        )


# An id no row has: a fixed one, so that the tests it names are the same in every pytest-xdist worker.
UNKNOWN_ID = "9d3b6f0e-2c4a-4e8b-a1f7-5c0d8e2b4a6f"

SIMPLE_DEFINITION: dict[str, Any] = {
    "nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "hello"}}],
    "edges": [],
}
