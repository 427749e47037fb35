"""`exekra hub --workers 2`: one port served by two worker processes that behave as one hub.

Which worker served a request is read from the operating system: the worker process that holds the hub's
end of the request's TCP connection (keep-alive keeps later requests of a client on that connection).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import httpx
import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exekra.db.migrate import upgrade
from exekra.embedded import create_database, drop_database
from exekra.hub.license.envelope import LicenseTerms, sign
from tests.integration.protocol import ProtocolRunner, eventually, long_poll_waiting, publish_workflow

from .conftest import PASSWORD, HubProcess, wait_until

WORKERS = 2
ROUNDS = 5  # executions per direction (runner on worker A and created on worker B, then the other way round)
LONG_POLL_SECONDS = 20
WAKE_BOUND_SECONDS = 2.0  # a missed cross-process wake-up would show as LONG_POLL_SECONDS
NOOP: dict[str, object] = {"nodes": [{"id": "hi", "activity": "log.message", "params": {"message": "hi"}}]}
AUTHORITY = Ed25519PrivateKey.generate()  # the licensing authority the module's hub trusts


@pytest.fixture(scope="module")
def workers_database_url(pg_server_url: str) -> Iterator[str]:
    name = f"exekra_workers_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    upgrade(url)
    yield url
    drop_database(pg_server_url, name)


def start_hub(hub: HubProcess) -> HubProcess:
    hub.start()
    answered: set[int] = set()

    def every_worker_answered() -> bool:
        answered.add(health_served_by(hub))
        return len(answered) == WORKERS

    try:  # the supervisor listens before its workers have started
        wait_until(every_worker_answered, 30, 0.05, f"each of {WORKERS} workers to answer")
    except BaseException:
        hub.stop()
        raise
    return hub


@pytest.fixture(scope="module")
def hub(workers_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """The module's hub, `exekra hub --workers 2`; the module's shutdown test, its last but one, stops it."""
    raw_key = AUTHORITY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    hub = start_hub(
        HubProcess(
            workers_database_url,
            tmp_path_factory.mktemp("workers-hub"),
            args=("--workers", str(WORKERS)),
            extra_env={"EXEKRA_LICENSE_PUBLIC_KEY": base64.b64encode(raw_key).decode()},
        )
    )
    yield hub
    hub.stop()


def workers_of(hub: HubProcess) -> list[psutil.Process]:
    """The supervisor's worker processes (not multiprocessing's resource tracker, its other child)."""
    assert hub.process is not None
    workers = []
    for child in psutil.Process(hub.process.pid).children():
        with contextlib.suppress(psutil.Error):  # e.g. a worker that just ended, not yet reaped
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
    return workers


def serving_worker(hub: HubProcess, response: httpx.Response) -> int:
    """The pid of the worker holding the hub's end of the connection `response` came over."""
    client_addr = tuple(response.extensions["network_stream"].get_extra_info("client_addr"))
    for worker in workers_of(hub):
        for connection in worker.net_connections("tcp"):
            if connection.laddr.port == hub.port and connection.raddr and tuple(connection.raddr) == client_addr:
                return worker.pid
    raise AssertionError(f"no worker holds the connection from {client_addr}")


def health_served_by(hub: HubProcess) -> tuple[int, str]:
    """GET /api/health on a new connection; the pid of the worker that answered and its instance id."""
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        r = client.get("/api/health")
        assert r.status_code == 200
        assert r.json()["database"] == "ok"
        return serving_worker(hub, r), r.json()["instance"]


@pytest.fixture(scope="module")
def admin_token(hub: HubProcess) -> str:
    r = httpx.post(f"{hub.url}/api/auth/bootstrap", json={"email": "admin@workers.test", "password": PASSWORD})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


async def client_on(hub: HubProcess, worker: int, token: str | None = None) -> httpx.AsyncClient:
    """A client with one kept-alive connection, served by `worker`: new connections until one lands there."""
    for _ in range(100):
        client = httpx.AsyncClient(
            base_url=hub.url,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=LONG_POLL_SECONDS + 10,
        )
        if serving_worker(hub, await client.get("/api/health")) == worker:
            return client
        await client.aclose()
    raise AssertionError(f"no connection landed on worker {worker}")


@pytest.fixture
async def clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []
    yield opened
    for client in opened:
        await client.aclose()


def test_new_connections_are_served_by_every_worker(hub: HubProcess) -> None:
    served: collections.Counter[tuple[int, str]] = collections.Counter()
    with ThreadPoolExecutor(8) as pool:
        while len(served) < WORKERS and served.total() < 400:
            served.update(pool.map(lambda _: health_served_by(hub), range(40)))
    assert {pid for pid, _ in served} == {w.pid for w in workers_of(hub)}, served
    assert len({instance for _, instance in served}) == WORKERS  # each process has its own instance id


async def test_a_long_poll_on_one_worker_is_woken_by_an_execution_created_on_the_other(
    hub: HubProcess, admin_token: str, clients: list[httpx.AsyncClient]
) -> None:
    first, second = (w.pid for w in workers_of(hub))
    admin = await client_on(hub, first, admin_token)
    clients.append(admin)
    delivered: list[str] = []
    wake_seconds: list[float] = []
    for runner_on, created_on in ((first, second), (second, first)):
        label = f"w-{secrets.token_hex(4)}"
        runner_http = await client_on(hub, runner_on)
        watcher = await client_on(hub, runner_on)  # reads the runner's worker's /metrics
        creator = await client_on(hub, created_on, admin_token)
        clients += [runner_http, watcher, creator]
        runner = await ProtocolRunner.register(admin, runner_http, label, labels=[label])
        assert (await runner.auth()).status_code == 200
        workflow_id = await publish_workflow(admin, label, NOOP, labels=[label])
        for _ in range(ROUNDS):
            poll = asyncio.create_task(runner.poll(wait=LONG_POLL_SECONDS))
            await long_poll_waiting(watcher)
            assert serving_worker(hub, await watcher.get("/api/health")) == runner_on
            assert not poll.done(), "the poll should be waiting: nothing is queued"
            created_at = time.monotonic()
            created = await creator.post("/api/executions", json={"workflowId": workflow_id})
            assert created.status_code == 201, created.text
            answer = await poll
            wake_seconds.append(time.monotonic() - created_at)
            assert serving_worker(hub, created) == created_on
            assert serving_worker(hub, answer) == runner_on
            assert answer.status_code == 200, answer.text
            execution = answer.json()["execution"]
            assert execution["id"] == created.json()["execution"]["id"]
            assert execution["attempt"] == 1
            assert (await runner.start(execution["id"], 1)).status_code == 200
            assert (await runner.complete(execution["id"], 1)).status_code == 200
            delivered.append(execution["id"])
    assert max(wake_seconds) < WAKE_BOUND_SECONDS, wake_seconds
    assert len(set(delivered)) == 2 * ROUNDS
    for execution_id in delivered:
        body = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]
        assert (body["status"], body["attempt"]) == ("COMPLETED", 1)


async def test_a_licence_installed_through_one_worker_is_in_force_on_the_other_at_once(
    hub: HubProcess, admin_token: str, clients: list[httpx.AsyncClient]
) -> None:
    first, second = (w.pid for w in workers_of(hub))
    installer, other = await client_on(hub, first, admin_token), await client_on(hub, second, admin_token)
    clients += [installer, other]
    before = (await other.get("/api/license")).json()["license"]
    assert before["status"] == "community" and "Community edition" in (await other.get("/runners")).text
    expires = date.today() + timedelta(days=5)  # inside the banner's 14 days
    terms = LicenseTerms(
        licensee="Workers Inc",
        email="admin@workers.test",
        max_runners=1000,
        expires_at=expires,
        hub_id=before["hubId"],
        edition="enterprise",
        trial=False,
        issued_at=datetime.now(UTC),
    )
    r = await installer.post("/api/license", json={"license": sign(terms, AUTHORITY)})
    assert r.status_code == 200, r.text
    assert serving_worker(hub, r) == first

    answer = await other.get("/api/license")
    assert serving_worker(hub, answer) == second
    assert answer.json()["license"]["status"] == "active" and answer.json()["license"]["licensee"] == "Workers Inc"

    async def banner_on_the_other_worker() -> bool:  # its own copy, refreshed by the NOTIFY
        return 'id="licence-banner"' in (await other.get("/runners")).text

    await eventually(banner_on_the_other_worker, 5, "the other worker to show the licence's banner")


def test_sigterm_stops_the_supervisor_and_every_worker(hub: HubProcess) -> None:
    assert hub.process is not None
    supervisor, workers = hub.process, workers_of(hub)
    hub.stop(signal.SIGTERM)
    assert supervisor.returncode == 0
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{hub.url}/api/health", timeout=2)


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    workers_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("workers-orphaned")
    hub = start_hub(HubProcess(workers_database_url, home, extra_env={"EXEKRA_HUB_WORKERS": str(WORKERS)}))
    workers = workers_of(hub)
    hub.stop(signal.SIGKILL)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
