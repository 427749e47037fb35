"""Two hub processes behind HAProxy (docs/deployment.md): any hub answers any request.

Two real `exekra hub` processes share one PostgreSQL database and one Redis; a real HAProxy, configured from
`deploy/haproxy.cfg`, is in front of them. Which hub served a request through the balancer is read from the hubs'
access logs (each request carries an `X-Request-ID` of its own). Where a test needs its two sides on different
hubs, each side talks to its hub's own address, so the test proves the way across hubs whatever the balancer
chooses: a runner's long poll, a wait for an execution's end and a log stream held open on one hub are each woken
by what a request to the other hub did.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from exekra.client import AsyncExekraClient
from tests.integration.protocol import (
    ProtocolRunner,
    create_execution,
    eventually,
    held_requests,
    publish_workflow,
    running_execution,
)

from .conftest import (
    NOOP,
    PASSWORD,
    HubProcess,
    LoadBalancer,
    health,
    own_database,
    publish,
    register_runner,
    wait_terminal,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ADMIN = "admin@lb.test"
HELD_SECONDS = 20  # how long a long poll or a wait is held: a missed wake-up shows as this
WAKE_BOUND_SECONDS = 1.0  # a correctness bound (a wake-up crossed hubs), not a benchmark
ROUNDS = 3  # per direction


@pytest.fixture(scope="module")
def lb_database_url(pg_server_url: str) -> Iterator[str]:
    with own_database(pg_server_url, "lb") as url:
        yield url


@pytest.fixture(scope="module")
def hubs(lb_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[HubProcess]]:
    """Two hub processes on one database and one Redis, both dispatching through Redis (the session's Redis db,
    emptied once they are stopped: the tests after these find it as the session began)."""
    started = [
        HubProcess(lb_database_url, tmp_path_factory.mktemp("lb-hub"), extra_env={"EXEKRA_REDIS_URL": redis_url})
        for _ in "ab"
    ]
    try:
        for hub in started:
            hub.start()
        for hub in started:
            wait_until(lambda hub=hub: health(hub)["queue"] == "redis", 10, 0.1, "the hub to queue in Redis")
        yield started
    finally:
        for hub in started:
            hub.stop()
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()


@pytest.fixture(scope="module")
def balancer(hubs: list[HubProcess], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadBalancer]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is missing (`make deploy-tools` installs it)")
    haproxy = LoadBalancer([f"{hub.address}:{hub.port}" for hub in hubs], tmp_path_factory.mktemp("haproxy"))
    try:
        haproxy.start()
        yield haproxy
    finally:
        haproxy.stop()


@pytest.fixture(scope="module")
def admin_token(balancer: LoadBalancer) -> str:
    """The first admin's session, made through the balancer."""
    r = httpx.post(f"{balancer.url}/api/auth/bootstrap", json={"email": ADMIN, "password": PASSWORD}, timeout=30)
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


@pytest.fixture
def lb_api(balancer: LoadBalancer, admin_token: str) -> Iterator[httpx.Client]:
    """An ADMIN API client of the balancer."""
    with httpx.Client(base_url=balancer.url, headers=bearer(admin_token), timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def at_hubs(hubs: list[HubProcess], admin_token: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """An ADMIN API client of each hub at the hub's own address, not through the balancer."""
    async with contextlib.AsyncExitStack() as clients:
        yield [
            await clients.enter_async_context(
                httpx.AsyncClient(base_url=hub.url, headers=bearer(admin_token), timeout=30)
            )
            for hub in hubs
        ]


async def held_on(hub: httpx.AsyncClient, kind: str) -> None:
    """Wait until the hub that `hub` talks to holds a request of `kind` open (its `/metrics`)."""

    async def holds() -> bool:
        return held_requests((await hub.get("/metrics")).text, kind) > 0

    await eventually(holds, 5, f"a held {kind} on {hub.base_url}")


async def held_wait(hub: httpx.AsyncClient, execution_id: str) -> asyncio.Task[httpx.Response]:
    """`GET /api/executions/{id}?wait=` on `hub`, once the hub holds it."""
    path, timeout = f"/api/executions/{execution_id}", HELD_SECONDS + 10
    waiting = asyncio.create_task(hub.get(path, params={"wait": HELD_SECONDS}, timeout=timeout))
    await held_on(hub, "execution_wait")
    assert not waiting.done(), "the wait should be held: the execution has not ended"
    return waiting


def milliseconds(seconds: list[float]) -> str:
    return ", ".join(f"{s * 1000:.1f} ms" for s in seconds)


def served_by(hubs: list[HubProcess], request_id: str) -> HubProcess:
    """The hub whose access log has the request `request_id` (written once the answer is sent)."""

    def logged_by() -> list[HubProcess]:
        return [hub for hub in hubs if f'"{request_id}"' in hub.log_path.read_text()]

    serving: list[HubProcess] = wait_until(logged_by, 10, 0.05, f"the access line of {request_id}")
    assert len(serving) == 1, f"{request_id} logged by {len(serving)} hubs"
    return serving[0]


def test_a_session_made_through_the_balancer_works_on_both_hubs_and_its_logout_ends_it_on_both(
    hubs: list[HubProcess], balancer: LoadBalancer, admin_token: str
) -> None:
    tag = secrets.token_hex(4)
    with httpx.Client(base_url=balancer.url, timeout=30) as anonymous:
        r = anonymous.post("/api/auth/login", json={"email": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
    with httpx.Client(base_url=balancer.url, headers=bearer(token), timeout=30) as lb:
        ids = [f"session-{tag}-{i}" for i in range(8)]
        for request_id in ids:
            r = lb.get("/api/auth/me", headers={"X-Request-ID": request_id})
            assert r.status_code == 200, r.text
            assert r.json()["user"]["email"] == ADMIN
        serving = [served_by(hubs, request_id) for request_id in ids]
        assert {hub.port for hub in serving} == {hub.port for hub in hubs}
        assert all(a is not b for a, b in itertools.pairwise(serving)), "the requests did not alternate"

        # Both hubs have checked the token and keep it in their token cache: the logout, served by one of them, must
        # end it on the other too.
        assert lb.post("/api/auth/logout").status_code == 200

    def refused_by_both() -> bool:
        return all(httpx.get(f"{hub.url}/api/auth/me", headers=bearer(token)).status_code == 401 for hub in hubs)

    wait_until(refused_by_both, 2, 0.05, "both hubs to refuse the ended session")


async def test_a_long_poll_on_one_hub_is_woken_within_a_second_by_an_execution_created_on_the_other(
    at_hubs: list[httpx.AsyncClient], capsys: pytest.CaptureFixture[str]
) -> None:
    latencies: list[float] = []
    for runner_on, created_on in (at_hubs, at_hubs[::-1]):
        label = f"lb-poll-{secrets.token_hex(4)}"
        runner = await ProtocolRunner.register(runner_on, runner_on, label, labels=[label])
        assert (await runner.auth()).status_code == 200
        workflow_id = await publish_workflow(created_on, label, NOOP, labels=[label])
        for _ in range(ROUNDS):
            poll = asyncio.create_task(runner.poll(wait=HELD_SECONDS))
            await held_on(runner_on, "long_poll")
            assert not poll.done(), "the poll should be waiting: nothing is queued"
            created_at = time.monotonic()
            execution = await create_execution(created_on, workflow_id)
            answer = await poll
            latencies.append(time.monotonic() - created_at)
            assert answer.status_code == 200, answer.text
            assert answer.json()["execution"]["id"] == execution["id"]
            assert (await runner.start(execution["id"], 1)).status_code == 200
            assert (await runner.complete(execution["id"], 1)).status_code == 200
    with capsys.disabled():
        print(f"\nlong poll woken from the other hub: {milliseconds(latencies)}")
    assert max(latencies) < WAKE_BOUND_SECONDS, latencies


async def test_a_wait_for_an_execution_on_one_hub_returns_when_the_other_hub_ends_it(
    at_hubs: list[httpx.AsyncClient], capsys: pytest.CaptureFixture[str]
) -> None:
    on_a, on_b = at_hubs
    label = f"lb-wait-{secrets.token_hex(4)}"
    runner = await ProtocolRunner.register(on_b, on_b, label, labels=[label])
    assert (await runner.auth()).status_code == 200
    workflow_id = await publish_workflow(on_a, label, NOOP, labels=[label])
    latencies: list[float] = []

    # Waited for on A, completed by its runner on B.
    running = await running_execution(on_a, runner, workflow_id)
    waiting = await held_wait(on_a, running)
    ended_at = time.monotonic()
    assert (await runner.complete(running, 1, outputs={"done": True})).status_code == 200
    answer = await waiting
    latencies.append(time.monotonic() - ended_at)
    assert answer.status_code == 200 and answer.json()["execution"]["status"] == "COMPLETED", answer.text

    # Waited for on B, stopped by a user on A (held ASSIGNED by the runner, so the stop ends it at once).
    assigned = (await create_execution(on_a, workflow_id))["id"]
    await runner.take(assigned, 1)
    waiting = await held_wait(on_b, assigned)
    ended_at = time.monotonic()
    assert (await on_a.post(f"/api/executions/{assigned}/stop")).status_code == 200
    answer = await waiting
    latencies.append(time.monotonic() - ended_at)
    assert answer.status_code == 200 and answer.json()["execution"]["status"] == "STOPPED", answer.text

    with capsys.disabled():
        print(f"\nwait answered after the other hub ended the execution: {milliseconds(latencies)}")
    assert max(latencies) < WAKE_BOUND_SECONDS, latencies


async def test_a_log_stream_followed_on_one_hub_receives_the_lines_a_runner_uploads_to_the_other(
    at_hubs: list[httpx.AsyncClient], hubs: list[HubProcess], admin_token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    on_a, on_b = at_hubs
    label = f"lb-logs-{secrets.token_hex(4)}"
    runner = await ProtocolRunner.register(on_b, on_b, label, labels=[label])
    assert (await runner.auth()).status_code == 200
    execution_id = await running_execution(on_b, runner, await publish_workflow(on_b, label, NOOP, labels=[label]))
    lines = [f"line {i} of {label}" for i in range(ROUNDS)]
    received: list[tuple[str, float]] = []
    latencies: list[float] = []
    async with AsyncExekraClient(hubs[0].url, admin_token) as follower_on_a:

        async def follow() -> None:
            async for line in follower_on_a.follow_logs(execution_id, reconnects=0):
                received.append((line.message, time.monotonic()))

        following = asyncio.create_task(follow())
        await held_on(on_a, "log_stream")
        for message in lines:
            sent_at = time.monotonic()
            assert (await runner.logs(execution_id, 1, message)).status_code == 200

            async def arrived(message: str = message) -> float | None:
                return next((at for text, at in received if text == message), None)

            latencies.append(await eventually(arrived, 5, f"{message!r} on the stream") - sent_at)
        assert (await runner.complete(execution_id, 1)).status_code == 200
        await asyncio.wait_for(following, 5)  # the stream ends with the execution
    with capsys.disabled():
        print(f"\nlog lines uploaded to the other hub, on the stream after: {milliseconds(latencies)}")
    assert [text for text, _ in received] == lines
    assert max(latencies) < WAKE_BOUND_SECONDS, latencies


def test_a_webhook_called_through_each_hub_starts_one_execution_per_call_that_a_real_runner_completes(
    hubs: list[HubProcess], lb_api: httpx.Client, balancer: LoadBalancer, tmp_path: Path
) -> None:
    definition = {
        "inputs": {"payload": {"type": "object", "required": True}},
        "nodes": [
            {"id": "echo", "activity": "vars.set", "params": {"name": "order", "value": "{{ inputs.payload.order }}"}}
        ],
        "edges": [],
        "outputs": {"order": "{{ nodes.echo.value }}"},
    }
    label = f"lb-hook-{secrets.token_hex(4)}"
    workflow_id = publish(lb_api, definition, labels=[label])
    r = lb_api.post("/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": label})
    assert r.status_code == 201, r.text
    path = f"/api/webhooks/{r.json()['token']}"
    runner = register_runner(lb_api, hubs[0].url, tmp_path, [label])
    try:
        calls = {}
        for i in range(2):
            order, request_id = f"{label}-{i}", f"hook-{label}-{i}"
            headers = {"Idempotency-Key": order, "X-Request-ID": request_id}
            r = httpx.post(f"{balancer.url}{path}", json={"order": order}, headers=headers, timeout=30)
            assert r.status_code == 202, r.text
            assert r.json()["duplicate"] is False
            calls[order] = (r.json()["executionId"], served_by(hubs, request_id))
        assert {hub.port for _, hub in calls.values()} == {hub.port for hub in hubs}, "one hub served both calls"

        for order, (execution_id, first) in calls.items():
            other = next(hub for hub in hubs if hub is not first)
            again = httpx.post(f"{other.url}{path}", json={"order": order}, headers={"Idempotency-Key": order})
            assert again.status_code == 200, again.text
            assert again.json()["duplicate"] is True and again.json()["executionId"] == execution_id

        for order, (execution_id, _) in calls.items():
            execution = wait_terminal(lb_api, execution_id, 60)
            assert execution["status"] == "COMPLETED", execution
            assert execution["outputs"] == {"order": order} and execution["triggerType"] == "WEBHOOK"
        total = lb_api.get("/api/executions", params={"workflowId": workflow_id}).json()["total"]
        assert total == 2
    finally:
        runner.stop()
