"""A PostgreSQL promotion under a running hub (docs/deployment.md, "PostgreSQL high availability").

A primary with a synchronous streaming standby, a real `exekra hub` whose `DATABASE_URL` names both
(libpq multi-host form, `target_session_attrs=read-write`) and a real `exekra runner`, executions created all
along. The primary is stopped in immediate mode and the standby promoted: the same hub process finds the new
primary by itself, the executions created after the promotion complete, and none acknowledged before is lost.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from exekra.db.migrate import upgrade
from exekra.embedded import EmbeddedPostgres

from .conftest import (
    TERMINAL,
    Background,
    HubProcess,
    RunnerProcess,
    admin_client,
    fetch,
    publish,
    register_runner,
    wait_until,
)
from .replication import primary_and_standby, stop_immediately

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

NOOP = {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "tick"}}], "edges": []}
HUB_ENV = {"EXEKRA_MAINTENANCE_INTERVAL_SECONDS": "1", "EXEKRA_LOG_LEVEL": "WARNING"}
BEFORE, AFTER = 5, 5  # executions completed before the failover, and created after the promotion
WINDOW = 3  # executions the creator keeps unfinished at most


def test_the_hub_follows_a_promoted_standby_by_itself_and_loses_no_acknowledged_execution(
    server_tmp_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with primary_and_standby(server_tmp_path) as (primary, standby):
        database = primary.create_database("exekra_failover")
        upgrade(database)
        hub = HubProcess(both_hosts(database, primary, standby), tmp_path / "hub", extra_env=dict(HUB_ENV))
        hub.home.mkdir()
        runner: RunnerProcess | None = None
        creator: Creator | None = None
        try:
            hub.start()
            with admin_client(hub, "admin@failover.test") as api:
                label = f"failover-{secrets.token_hex(3)}"
                workflow_id = publish(api, NOOP, labels=[label])
                runner = register_runner(api, hub.url, tmp_path, [label])
            creator = Creator(hub, api.headers, workflow_id)
            creator.start()
            on_primary = single_host(database, primary)
            wait_until(lambda: completed(on_primary) >= BEFORE, 60, 0.1, f"{BEFORE} executions to complete")
            hub_pid = hub.process.pid if hub.process else None

            failed_at = time.monotonic()
            stop_immediately(primary)
            standby.promote()
            promoted_at = time.monotonic()
            first_after = creator.next_index()
            on_new_primary = single_host(database, standby)
            first = wait_until(lambda: creator.acknowledged().get(first_after), 60, 0.1, "a create after the promotion")
            wait_until(lambda: status(on_new_primary, first) == "COMPLETED", 60, 0.05, "it to complete")
            recovered_at = time.monotonic()
            wait_until(lambda: creator.acknowledged_from(first_after) >= AFTER, 60, 0.1, "creates after the promotion")
            creator.stop.set()
            creator.finish(30)

            acknowledged = creator.acknowledged()
            wait_until(lambda: completed(on_new_primary) >= len(acknowledged), 60, 0.1, "every execution to complete")
            rows = fetch(on_new_primary, "SELECT id::text, status, attempt FROM executions")
            assert rows is not None
            by_id = {row["id"]: row for row in rows}
            assert set(acknowledged.values()) <= set(by_id), "an acknowledged execution was lost in the promotion"
            assert len(by_id) == len(acknowledged), "an execution was created twice"
            assert {row["status"] for row in rows} == {"COMPLETED"}
            assert {row["attempt"] for row in rows} == {1}, "an execution was started twice"
            assert hub.process is not None and hub.process.pid == hub_pid, "the hub process was restarted"
            health = httpx.get(f"{hub.url}/api/health", timeout=5).json()
            assert health["leader"] is True, health  # the lease, lost with the old primary, is held on the new one
            with capsys.disabled():
                print(
                    f"\n  PostgreSQL promotion: {len(acknowledged)} executions ({first_after} before the failover),"
                    f" all COMPLETED once; promotion took {promoted_at - failed_at:.1f} s, the first execution created"
                    f" after it completed {recovered_at - failed_at:.1f} s after the primary stopped;"
                    f" {creator.failed_creates} create answers lost and retried"
                )
        finally:
            if creator is not None:
                creator.stop.set()
            if runner is not None:
                runner.stop()
            hub.stop()


def both_hosts(database: str, primary: EmbeddedPostgres, standby: EmbeddedPostgres) -> str:
    """The libpq multi-host URL of `database` on the primary and the standby, writable one wanted."""
    parts = urlsplit(database)
    userinfo = parts.netloc.rpartition("@")[0]
    hosts = f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
    return f"postgresql://{userinfo}@{hosts}{parts.path}?target_session_attrs=read-write&connection_limit=10"


def single_host(database: str, server: EmbeddedPostgres) -> str:
    return urlsplit(database)._replace(netloc=urlsplit(server.url).netloc).geturl()


def completed(url: str) -> int:
    rows = fetch(url, "SELECT count(*) AS n FROM executions WHERE status = 'COMPLETED'")
    return int(rows[0]["n"]) if rows else 0


def status(url: str, execution_id: str) -> str | None:
    rows = fetch(url, f"SELECT status FROM executions WHERE id = '{execution_id}'")
    return str(rows[0]["status"]) if rows else None


class Creator(Background):
    """Creates executions through the hub, at most `WINDOW` unfinished at a time, each under an idempotency key that
    a retry (an answer lost to the failover) repeats, and remembers every one the hub acknowledged."""

    def __init__(self, hub: HubProcess, headers: httpx.Headers, workflow_id: str) -> None:
        super().__init__("creator", self._create_until_stopped)
        self.hub = hub
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

    def _create_until_stopped(self) -> None:
        with httpx.Client(base_url=self.hub.url, headers=self.headers, timeout=10) as client:
            for i in itertools.count():
                with self._lock:
                    self._next = i
                while not self.stop.is_set():
                    body = {"workflowId": self.workflow_id, "idempotencyKey": f"failover-{i}"}
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
                if i >= WINDOW - 1:
                    self._wait_terminal(client, self._acknowledged[i - WINDOW + 1])

    def _wait_terminal(self, client: httpx.Client, execution_id: str) -> None:
        """Until the execution ends (or the test stops): the runner sets the pace, so no backlog builds up."""
        while not self.stop.is_set():
            with contextlib.suppress(httpx.TransportError):
                r = client.get(f"/api/executions/{execution_id}")
                if r.status_code == 200 and r.json()["execution"]["status"] in TERMINAL:
                    return
            self.stop.wait(0.05)
