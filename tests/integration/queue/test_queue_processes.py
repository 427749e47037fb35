"""Two hub processes on one database and one Redis: long-poll wake-ups cross processes (with Redis and
without), and no execution is ever assigned twice."""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Iterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from exekra.db.migrate import upgrade
from exekra.embedded import EmbeddedRedis, create_database, drop_database
from exekra.hub.dispatch import wakeups
from tests.e2e.conftest import HubProcess, wait_until

from ..conftest import ADMIN_EMAIL, PASSWORD, SIMPLE_DEFINITION
from ..protocol import ProtocolRunner, eventually, long_poll_waiting, publish_workflow
from .conftest import Ledger, concurrently, wakeup_subscribers, work_until

EXECUTIONS = 300


@pytest.fixture(scope="module")
def processes_database_url(pg_server_url: str) -> Iterator[str]:
    name = f"exekra_procs_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    upgrade(url)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="module")
def two_hubs(
    processes_database_url: str, shared_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubProcess, HubProcess]]:
    env = {"EXEKRA_REDIS_URL": shared_redis.url}
    hubs = tuple(HubProcess(processes_database_url, tmp_path_factory.mktemp(n), extra_env=env) for n in "ab")
    try:
        for hub in hubs:
            hub.start()
        yield hubs[0], hubs[1]
    finally:
        for hub in hubs:
            hub.stop()


def queue_modes(*hubs: HubProcess) -> set[str]:
    return {httpx.get(f"{hub.url}/api/health", timeout=2).json()["queue"] for hub in hubs}


def wait_for_mode(mode: str, *hubs: HubProcess) -> None:
    wait_until(lambda: queue_modes(*hubs) == {mode}, 10, 0.05, f"both hubs in {mode} mode")


@pytest.fixture
async def clients(two_hubs: tuple[HubProcess, HubProcess]) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """An ADMIN client of each hub (one session works on both: sessions live in PostgreSQL)."""
    a, b = two_hubs
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as on_b,
    ):
        r = await on_a.post("/api/auth/bootstrap", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        if r.status_code == 409:
            r = await on_a.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        assert r.status_code in (200, 201), r.text
        for client in (on_a, on_b):
            client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield on_a, on_b


async def _runner(admin: httpx.AsyncClient, http: httpx.AsyncClient, **fields: object) -> ProtocolRunner:
    runner = await ProtocolRunner.register(admin, http, f"r-{secrets.token_hex(4)}", **fields)
    assert (await runner.auth()).status_code == 200
    return runner


async def _create(admin: httpx.AsyncClient, workflow_id: str) -> str:
    r = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
    assert r.status_code == 201, r.text
    return str(r.json()["execution"]["id"])


async def _wake_up_latency(runner: ProtocolRunner, on_other_hub: httpx.AsyncClient, workflow_id: str) -> float:
    """Seconds from an execution's creation on the other hub to the answer of a poll waiting on this one."""
    poll = asyncio.create_task(runner.poll(wait=10))
    await long_poll_waiting(runner.http)
    assert not poll.done()
    execution_id = await _create(on_other_hub, workflow_id)
    created = time.monotonic()
    answer = await asyncio.wait_for(poll, 15)
    latency = time.monotonic() - created
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == execution_id
    attempt = answer.json()["execution"]["attempt"]
    assert (await runner.start(execution_id, attempt)).status_code == 200
    assert (await runner.complete(execution_id, attempt)).status_code == 200
    return latency


def _announced(payload: str) -> str:
    """The runner an announcement (`origin:runner`, or `origin:runner:epoch:answer` with the execution) names."""
    return payload.partition(":")[2].partition(":")[0]


class WakeupChannels:
    """Hears the hubs' wake-up announcements on both ways they travel: PostgreSQL `NOTIFY` and Redis pub/sub."""

    def __init__(self, database_url: str, redis_url: str | None) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.heard: dict[str, list[str]] = {"postgres": [], "redis": []}

    async def ways(self, runner_id: str, during: Awaitable[object]) -> set[str]:
        """The ways by which an announcement for `runner_id` travelled while `during` ran."""
        postgres = await asyncpg.connect(self.database_url)
        redis = aioredis.Redis.from_url(self.redis_url, decode_responses=True) if self.redis_url else None
        try:
            await postgres.add_listener(wakeups.CHANNEL, lambda *args: self.heard["postgres"].append(args[-1]))
            pubsub = None
            if redis is not None:
                pubsub = redis.pubsub()
                await pubsub.subscribe(wakeups.CHANNEL)
            await during
            # Each way delivers in order: once a marker sent now arrives, whatever was sent before has arrived.
            await postgres.execute(f"NOTIFY {wakeups.CHANNEL}, 'marker'")
            await eventually(self._marker_through_postgres, 5, "the marker through PostgreSQL")
            if redis is not None and pubsub is not None:
                await redis.publish(wakeups.CHANNEL, "marker")
                while not self._got("redis"):
                    message = await pubsub.get_message(timeout=5)
                    assert message is not None, "the marker through Redis"
                    if message["type"] == "message":
                        self.heard["redis"].append(message["data"])
                await pubsub.aclose()
        finally:
            await postgres.close()
            if redis is not None:
                await redis.aclose()
        return {way for way, heard in self.heard.items() if any(_announced(p) == runner_id for p in heard)}

    def _got(self, way: str) -> bool:
        return "marker" in self.heard[way]

    async def _marker_through_postgres(self) -> bool:
        return self._got("postgres")


async def test_long_poll_on_one_hub_wakes_for_work_created_on_the_other_with_redis_and_without(
    two_hubs: tuple[HubProcess, HubProcess],
    clients: tuple[httpx.AsyncClient, ...],
    shared_redis: EmbeddedRedis,
    processes_database_url: str,
) -> None:
    hub_a, hub_b = two_hubs
    on_a, on_b = clients
    label = secrets.token_hex(4)
    workflow_id = await publish_workflow(on_a, f"wf-{label}", SIMPLE_DEFINITION, labels=[label])
    async with httpx.AsyncClient(base_url=hub_a.url, timeout=60) as runner_http:
        runner = await _runner(on_a, runner_http, labels=[label])
        assert runner.runner_id is not None
        assert (await runner.poll()).status_code == 204  # ONLINE and idle
        wait_for_mode("redis", hub_a, hub_b)
        await wakeup_subscribers(shared_redis.url, 2)

        # In Redis mode the announcement goes by Redis only: a NOTIFY costs every listening hub a transaction.
        latency = _wake_up_latency(runner, on_b, workflow_id)
        channels = WakeupChannels(processes_database_url, shared_redis.url)
        assert await channels.ways(runner.runner_id, _bounded(latency, 1.0)) == {"redis"}

        shared_redis.stop()
        try:
            wait_for_mode("direct", hub_a, hub_b)
            latency = _wake_up_latency(runner, on_b, workflow_id)
            channels = WakeupChannels(processes_database_url, None)
            assert await channels.ways(runner.runner_id, _bounded(latency, 1.0)) == {"postgres"}
        finally:
            shared_redis.start()
        wait_for_mode("redis", hub_a, hub_b)

        # Subscribed again to the restarted Redis: wake-ups go by Redis again.
        await wakeup_subscribers(shared_redis.url, 2)
        latency = _wake_up_latency(runner, on_b, workflow_id)
        channels = WakeupChannels(processes_database_url, shared_redis.url)
        assert await channels.ways(runner.runner_id, _bounded(latency, 1.0)) == {"redis"}


async def _bounded(latency: Awaitable[float], bound: float) -> None:
    """A wake-up that crossed the processes: within `bound` seconds (a correctness bound, not a benchmark)."""
    assert await latency < bound


async def test_two_hub_processes_never_assign_an_execution_twice(
    two_hubs: tuple[HubProcess, HubProcess], clients: tuple[httpx.AsyncClient, ...], processes_database_url: str
) -> None:
    hub_a, hub_b = two_hubs
    on_a, on_b = clients
    wait_for_mode("redis", hub_a, hub_b)
    label = secrets.token_hex(4)
    workflow_id = await publish_workflow(on_a, f"wf-{label}", SIMPLE_DEFINITION, labels=[label])
    ledger = Ledger()
    done = asyncio.Event()
    async with (
        httpx.AsyncClient(base_url=hub_a.url, timeout=60) as via_a,
        httpx.AsyncClient(base_url=hub_b.url, timeout=60) as via_b,
    ):
        runners = [await _runner(on_a, via_a if n % 2 else via_b, labels=[label]) for n in range(10)]
        polling_a = {str(r.runner_id) for r in runners[1::2]}
        polling_b = {str(r.runner_id) for r in runners[0::2]}
        workers = [asyncio.create_task(work_until(r, ledger, done)) for r in runners]
        try:
            created = await concurrently(
                [functools.partial(_create, on_a if n % 2 else on_b, workflow_id) for n in range(EXECUTIONS)]
            )

            async def all_completed() -> bool:
                return len(ledger.completions) >= EXECUTIONS

            await eventually(all_completed, 60, "every execution to complete")
        finally:
            done.set()
            await asyncio.gather(*workers)

    assert set(ledger.completions) == set(created)
    assert all(n == 1 for n in ledger.completions.values())
    holders = set(ledger.held_by.values())
    assert holders & polling_a and holders & polling_b, "both hubs handed out work"
    connection = await asyncpg.connect(processes_database_url)
    try:
        rows = await connection.fetch(
            "SELECT e.status, e.attempt, count(*) FROM executions e JOIN workflows w ON w.id = e.workflow_id "
            "WHERE w.id = $1::uuid GROUP BY 1, 2",
            workflow_id,
        )
    finally:
        await connection.close()
    assert [tuple(r) for r in rows] == [("COMPLETED", 1, EXECUTIONS)]
