"""End-to-end fixtures: a real hub process and real `exekra runner` processes, talking HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from exekra.db.migrate import upgrade
from exekra.embedded import create_database, drop_database, free_port

PASSWORD = "correct-horse-battery"
TERMINAL = {"COMPLETED", "FAILED", "STOPPED"}
# Hub settings for fault-injection tests: stale checks twice a second, runners offline after 3 s of silence.
FAST_STALE_CHECKS = {
    "EXEKRA_MAINTENANCE_INTERVAL_SECONDS": "0.5",
    "EXEKRA_RUNNER_OFFLINE_SECONDS": "3",
    "EXEKRA_STOP_GRACE_SECONDS": "2",
    "EXEKRA_QUEUE_TIMEOUT_SECONDS": "900",
    "EXEKRA_HEARTBEAT_INTERVAL_SECONDS": "1",
    "EXEKRA_LOG_LEVEL": "WARNING",
}
CHAOS_RUNNER = Path(__file__).with_name("chaos_runner.py")
DEPLOY_HAPROXY = Path(__file__).parents[2] / "deploy" / "haproxy.cfg"


@contextlib.contextmanager
def own_database(pg_server_url: str, tag: str) -> Iterator[str]:
    """A migrated database of its own (`exekra_e2e_<tag>_<random>`), dropped at the end."""
    name = f"exekra_e2e_{tag}_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(pg_server_url, name)


@pytest.fixture(scope="session")
def e2e_database_url(pg_server_url: str) -> Iterator[str]:
    with own_database(pg_server_url, "session") as url:
        yield url


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class HubProcess:
    """A hub started as `exekra hub` on a free port; can be killed and started again on the same port."""

    database_url: str
    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # more `exekra hub` options
    address: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()  # what the command runs under (`ip netns exec <host>`)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "hub.log"

    def start(self) -> None:
        env = {
            **{name: value for name, value in os.environ.items() if name != "REDIS_URL"},
            "DATABASE_URL": self.database_url,
            "EXEKRA_HOME": str(self.home),
            "EXEKRA_SECRET_KEY": "ZXhla3JhIGVuZC10by1lbmQgdGVzdHMga2V5IDMyYnk=",  # 32 bytes in base64
            "EXEKRA_HOST": self.address,
            "EXEKRA_PORT": str(self.port),
            "EXEKRA_RATE_LIMIT_PER_MINUTE": "100000",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "exekra.cli", "hub", "--access-log", *self.args],
            env=env,
            stdout=log,
            stderr=log,
        )
        wait_until(self._healthy, 30, 0.1, "the hub to answer /api/health")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"hub exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig)
            self.process = None


def answers(url: str) -> bool:
    """`GET url` answers 200."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def haproxy_config(hubs: list[str], bind: str) -> str:
    """`deploy/haproxy.cfg` listening on `bind` in front of `hubs` (each `address:port`) instead of Docker's names
    and resolver, and a `maxconn` that fits the open files a test process may have (HAProxy refuses to start with
    fewer than it needs)."""
    text = DEPLOY_HAPROXY.read_text().replace("maxconn 20000", "maxconn 4000")
    text = re.sub(r"(?ms)^# Docker's DNS.*?\n\n", "", text)
    text = text.replace(" resolvers docker init-addr last,libc,none", "")
    text = re.sub(r"(?m)^    server .*\n?", "", text).replace("bind :4545", f"bind {bind}")
    return text.rstrip() + "\n" + "".join(f"    server hub{i + 1} {h} check\n" for i, h in enumerate(hubs))


@dataclass
class LoadBalancer:
    """HAProxy in the foreground (`haproxy -db`), configured by `haproxy_config` in front of `hubs`."""

    hubs: list[str]  # `address:port` of each hub
    directory: Path
    address: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    prefix: tuple[str, ...] = ()  # what the command runs under (`ip netns exec <host>`)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "haproxy.log"

    def start(self) -> None:
        config = self.directory / "haproxy.cfg"
        config.write_text(haproxy_config(self.hubs, f"{self.address}:{self.port}"))
        with self.log_path.open("ab") as log:
            command = [*self.prefix, "haproxy", "-db", "-f", str(config)]
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        wait_until(self._passes_requests, 30, 0.1, "HAProxy to pass requests to a hub")

    def _passes_requests(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"haproxy exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
        return answers(f"{self.url}/api/health")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig)
            self.process = None


@pytest.fixture(scope="session")
def hub_process(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    hub = HubProcess(e2e_database_url, tmp_path_factory.mktemp("e2e-hub"))
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def api(hub_process: HubProcess) -> Iterator[httpx.Client]:
    """An ADMIN API client of the e2e hub."""
    with httpx.Client(base_url=hub_process.url, timeout=30) as client:
        r = client.post("/api/auth/bootstrap", json={"email": "admin@e2e.test", "password": PASSWORD})
        if r.status_code == 409:
            r = client.post("/api/auth/login", json={"email": "admin@e2e.test", "password": PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


@dataclass
class RunnerProcess:
    name: str
    runner_id: str
    machine_key: str
    machine_secret: str
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, hub_url: str, **env: str) -> None:
        full_env = {
            **os.environ,
            "EXEKRA_HUB_URL": hub_url,
            "EXEKRA_MACHINE_KEY": self.machine_key,
            "EXEKRA_MACHINE_SECRET": self.machine_secret,
            "EXEKRA_SAMPLE_INTERVAL_SECONDS": "0.2",
            **env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exekra.cli", "runner", "--workdir", str(self.workdir)],
            env=full_env,
            stdout=log,
            stderr=log,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_runner(api: httpx.Client, hub_process: HubProcess, tmp_path: Path) -> Iterator[Callable[..., RunnerProcess]]:
    """`start_runner(labels=[...], secret=None, **env)` registers a runner and starts `exekra runner` for it."""
    started: list[RunnerProcess] = []

    def _start(labels: list[str] | None = None, secret: str | None = None, **env: str) -> RunnerProcess:
        runner = register_runner(api, hub_process.url, tmp_path, labels, secret, **env)
        started.append(runner)
        return runner

    yield _start
    for runner in started:
        with contextlib.suppress(Exception):
            runner.stop()


def register_runner(
    api: httpx.Client, hub_url: str, directory: Path, labels: list[str] | None, secret: str | None = None, **env: str
) -> RunnerProcess:
    """Register a runner through `api` and start `exekra runner` for it (with `secret` instead of its own)."""
    name = f"e2e-{secrets.token_hex(4)}"
    r = api.post("/api/runners", json={"name": name, "labels": labels or [name]})
    r.raise_for_status()
    body = r.json()
    runner = RunnerProcess(
        name,
        body["runner"]["id"],
        body["machineKey"],
        secret or body["machineSecret"],
        directory / name,
        directory / f"{name}.log",
    )
    runner.start(hub_url, **env)
    return runner


def sql(database_url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on the database (what an operator's clock or a crash would do to the rows)."""

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(database_url)
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


@contextlib.contextmanager
def admin_client(hub: HubProcess, email: str) -> Iterator[httpx.Client]:
    """An ADMIN API client of `hub`: the first admin, made by bootstrap if there is none yet."""
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        r = client.post("/api/auth/bootstrap", json={"email": email, "password": PASSWORD})
        if r.status_code == 409:
            r = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


def yearly_schedule(api: httpx.Client, workflow_id: str, name: str) -> str:
    """A schedule whose next regular fire is months away: a test sets `next_fire_at` to make it due, and no
    regular fire (a minute boundary crossed during the test) can add a run to the count."""
    body = {"workflowId": workflow_id, "type": "SCHEDULE", "name": name, "cronExpression": "0 0 1 1 *"}
    r = api.post("/api/triggers", json=body)
    assert r.status_code == 201, r.text
    trigger_id: str = r.json()["trigger"]["id"]
    return trigger_id


def schedule_runs(database_url: str, trigger_ids: list[str]) -> dict[str, int]:
    """How many executions each schedule trigger started."""
    rows = sql(
        database_url,
        "SELECT triggered_by, count(*) AS n FROM executions WHERE triggered_by = ANY($1::text[]) GROUP BY 1",
        trigger_ids,
    )
    return {t: next((r["n"] for r in rows if r["triggered_by"] == t), 0) for t in trigger_ids}


def schedules_settled(database_url: str, trigger_ids: list[str]) -> bool:
    """No trigger of `trigger_ids` is due any more: every fire was handled."""
    rows = sql(
        database_url,
        "SELECT count(*) AS n FROM triggers WHERE id = ANY($1::uuid[]) AND next_fire_at <= now()",
        trigger_ids,
    )
    return bool(rows[0]["n"] == 0)


def publish(api: httpx.Client, definition: dict[str, Any], *, labels: list[str], **settings: Any) -> str:
    name = f"wf-{secrets.token_hex(4)}"
    r = api.post("/api/workflows", json={"name": name, "definition": definition, "labels": labels, **settings})
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow"]["id"]
    assert api.post(f"/api/workflows/{workflow_id}/publish").status_code == 200
    return workflow_id


def run_and_wait(
    api: httpx.Client, workflow_id: str, inputs: dict[str, Any] | None = None, timeout: float = 60
) -> dict[str, Any]:
    """Create an execution and wait until it is terminal; returns the execution."""
    r = api.post("/api/executions", json={"workflowId": workflow_id, "inputs": inputs or {}})
    assert r.status_code == 201, r.text
    return wait_terminal(api, r.json()["execution"]["id"], timeout)


def wait_terminal(api: httpx.Client, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        execution: dict[str, Any] = api.get(f"/api/executions/{execution_id}").json()["execution"]
        return execution if execution["status"] in ("COMPLETED", "FAILED", "STOPPED") else None

    result: dict[str, Any] = wait_until(terminal, timeout, 0.1, f"execution {execution_id} to end")
    return result


def wait_status(api: httpx.Client, execution_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        execution: dict[str, Any] = api.get(f"/api/executions/{execution_id}").json()["execution"]
        return execution if execution["status"] == status else None

    result: dict[str, Any] = wait_until(reached, timeout, 0.05, f"execution {execution_id} to be {status}")
    return result


def logs(api: httpx.Client, execution_id: str) -> list[str]:
    return [line["message"] for line in api.get(f"/api/executions/{execution_id}/logs").json()["lines"]]


@dataclass
class Runner:
    """A protocol-level runner process (`chaos_runner.py`) that journals every step; killed with SIGKILL at will."""

    name: str
    runner_id: str
    journal: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    prefix: tuple[str, ...] = ()  # what the command runs under (`ip netns exec <host>`)

    def start(self, hub_url: str, key: str, secret: str, *extra: str) -> None:
        with self.log.open("ab") as log:
            command = [*self.prefix, sys.executable, str(CHAOS_RUNNER), "--hub-url", hub_url]
            command += ["--journal", str(self.journal)]
            self.process = subprocess.Popen(
                [*command, "--machine-key", key, "--machine-secret", secret, *extra],
                stdout=log,
                stderr=log,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text().splitlines() if line.strip()]


class Background(threading.Thread):
    """A daemon thread whose exception fails the test when joined."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not finish within {timeout}s"
        if self.error is not None:
            raise self.error


async def fetch_rows(url: str, query: str) -> list[asyncpg.Record]:
    """Rows of `query`, on a connection of its own."""
    connection = await asyncpg.connect(url, timeout=3)
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


def fetch(url: str, query: str) -> list[asyncpg.Record] | None:
    """Rows of `query`, or None while the database is unreachable (a test may restart it)."""
    try:
        return asyncio.run(fetch_rows(url, query))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None


def create_through_outages(client: httpx.Client, workflow_id: str, key: str, stop: threading.Event) -> str | None:
    """Create an execution under the idempotency `key`, retrying through outages (a retry whose first answer was
    lost finds the same execution); its id, or None once `stop` is set."""
    while not stop.is_set():
        try:
            r = client.post("/api/executions", json={"workflowId": workflow_id, "idempotencyKey": key})
            if r.status_code in (200, 201):
                return str(r.json()["execution"]["id"])
            assert r.status_code >= 500 or r.status_code == 429, r.text
        except httpx.TransportError:
            pass
        stop.wait(0.1)
    return None


class Creator(Background):
    """Creates executions through the hub until `stop` is set, at most `window` unfinished at a time (the runners
    set the pace: no backlog builds up), each under an idempotency key that a retry (an answer lost to a failover)
    repeats; remembers every one the hub acknowledged, by creation index."""

    def __init__(self, hub_url: str, headers: httpx.Headers, workflow_id: str, window: int = 3) -> None:
        super().__init__("creator", self._create_until_stopped)
        self.hub_url = hub_url
        self.window = window
        self.key_prefix = secrets.token_hex(4)
        self.headers = headers
        self.workflow_id = workflow_id
        self.stop = threading.Event()
        self.failed_creates = 0
        self._acknowledged: dict[int, str] = {}
        self._next = 0
        self._lock = threading.Lock()

    def next_index(self) -> int:
        with self._lock:
            return self._next

    def acknowledged(self) -> dict[int, str]:
        with self._lock:
            return dict(self._acknowledged)

    def acknowledged_from(self, first: int) -> int:
        with self._lock:
            return sum(1 for i in self._acknowledged if i >= first)

    def stop_creating(self, timeout: float = 30) -> dict[int, str]:
        """Stop, wait for the thread, and return what the hub acknowledged."""
        self.stop.set()
        self.finish(timeout)
        return self.acknowledged()

    def _create_until_stopped(self) -> None:
        with httpx.Client(base_url=self.hub_url, headers=self.headers, timeout=10) as client:
            for i in itertools.count():
                with self._lock:
                    self._next = i
                while not self.stop.is_set():
                    body = {"workflowId": self.workflow_id, "idempotencyKey": f"{self.key_prefix}-{i}"}
                    try:
                        r = client.post("/api/executions", json=body)
                    except httpx.TransportError:
                        r = None
                    if r is not None and r.status_code in (200, 201):
                        with self._lock:
                            self._acknowledged[i] = r.json()["execution"]["id"]
                        break
                    assert r is None or r.status_code >= 500, r.text
                    self.failed_creates += 1
                    self.stop.wait(0.1)
                if self.stop.is_set():
                    return
                if i >= self.window - 1:
                    self._wait_terminal(client, self._acknowledged[i - self.window + 1])

    def _wait_terminal(self, client: httpx.Client, execution_id: str) -> None:
        """Until the execution ends (or the creator is stopped)."""
        while not self.stop.is_set():
            with contextlib.suppress(httpx.TransportError):
                r = client.get(f"/api/executions/{execution_id}")
                if r.status_code == 200 and r.json()["execution"]["status"] in TERMINAL:
                    return
            self.stop.wait(0.05)


def health(hub: HubProcess) -> dict[str, Any]:
    """The hub's `GET /api/health` answer."""
    body: dict[str, Any] = httpx.get(f"{hub.url}/api/health", timeout=5).json()
    return body


def completed(url: str) -> int:
    """How many executions of the database are COMPLETED (0 while it does not answer)."""
    rows = fetch(url, "SELECT count(*) AS n FROM executions WHERE status = 'COMPLETED'")
    return int(rows[0]["n"]) if rows else 0


def expect_each_completed_once(url: str, acknowledged: dict[int, str]) -> None:
    """Wait until every acknowledged execution completed; the database holds exactly those, each started once."""
    try:
        wait_until(lambda: completed(url) >= len(acknowledged), 60, 0.1, "every execution to complete")
    except AssertionError as timeout:
        rows = fetch(url, "SELECT id::text, status, attempt, runner_id::text FROM executions") or []
        missing = set(acknowledged.values()) - {row["id"] for row in rows}
        pending = [row for row in rows if row["status"] != "COMPLETED"]
        raise AssertionError(f"{timeout}; not completed: {pending}; acknowledged, not stored: {missing}") from None
    rows = fetch(url, "SELECT id::text, status, attempt FROM executions")
    assert rows is not None
    assert {row["id"] for row in rows} == set(acknowledged.values()), "an execution was lost or created twice"
    assert {row["status"] for row in rows} == {"COMPLETED"}
    assert {row["attempt"] for row in rows} == {1}, "an execution was started twice"


NOOP = {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "tick"}}], "edges": []}


@contextlib.contextmanager
def executions_flowing(hub: HubProcess, directory: Path) -> Iterator[Creator]:
    """Start `hub`, publish a no-op workflow, start a real runner for it and a `Creator` of its executions; the
    creator, flowing. Creator, runner and hub are stopped at the end."""
    runner: RunnerProcess | None = None
    creator: Creator | None = None
    try:
        hub.start()
        with admin_client(hub, "admin@flow.test") as api:
            label = f"flow-{secrets.token_hex(3)}"
            workflow_id = publish(api, NOOP, labels=[label])
            runner = register_runner(api, hub.url, directory, [label])
        creator = Creator(hub.url, api.headers, workflow_id)
        creator.start()
        yield creator
    finally:
        if creator is not None:
            creator.stop.set()
        if runner is not None:
            runner.stop()
        hub.stop()
