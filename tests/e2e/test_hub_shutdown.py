"""Ctrl-C on `exekra hub` (one process, or a supervisor with workers): held long polls answer 204, log streams
and held reads end, and the hub stops within a few seconds without a traceback in its output."""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exekra.db.migrate import upgrade
from exekra.embedded import create_database, drop_database
from tests.integration.protocol import held_requests

from .conftest import PASSWORD, HubProcess, wait_until

NOOP = {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "tick"}}]}
STOP_BOUND_SECONDS = 4.0  # about a second plus scheduling slack on a busy 2-core machine


@pytest.fixture(scope="module")
def shutdown_database_url(pg_server_url: str) -> Iterator[str]:
    name = f"exekra_shutdown_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    upgrade(url)
    yield url
    drop_database(pg_server_url, name)


@contextlib.contextmanager
def _admin(hub: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        r = client.post("/api/auth/bootstrap", json={"email": "admin@e2e.test", "password": PASSWORD})
        if r.status_code == 409:
            r = client.post("/api/auth/login", json={"email": "admin@e2e.test", "password": PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


def _in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["answer"] = call()
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_answers_held_requests_and_stops_quietly(
    shutdown_database_url: str, tmp_path: Path, workers: int
) -> None:
    hub = HubProcess(shutdown_database_url, tmp_path, extra_env={"EXEKRA_HUB_WORKERS": str(workers)})
    hub.start()
    try:
        with _admin(hub) as admin:
            # Work nobody can take (a label no runner has), so that every held request stays held.
            body = {"name": f"wf-{secrets.token_hex(3)}", "definition": NOOP, "labels": ["nobody"]}
            workflow_id = admin.post("/api/workflows", json=body).json()["workflow"]["id"]
            admin.post(f"/api/workflows/{workflow_id}/publish").raise_for_status()
            registered = admin.post("/api/runners", json={"name": f"r-{secrets.token_hex(3)}"})
            body = registered.json()
            token = httpx.post(
                f"{hub.url}/api/runner/auth",
                json={"machineKey": body["machineKey"], "machineSecret": body["machineSecret"]},
            ).json()["token"]
            queued = admin.post("/api/executions", json={"workflowId": workflow_id}).json()["execution"]["id"]
            runner_headers = {"Authorization": f"Bearer {token}"}
            poll, polled = _in_background(
                lambda: httpx.get(f"{hub.url}/api/runner/poll?wait=30", headers=runner_headers, timeout=40)
            )
            waiting, waited = _in_background(
                lambda: admin.get(f"/api/executions/{queued}", params={"wait": 30}, timeout=40)
            )
            stream, streamed = _in_background(lambda: admin.get(f"/api/executions/{queued}/logs/stream", timeout=40))
            for kind in ("long_poll", "execution_wait", "log_stream"):
                wait_until(lambda kind=kind: _held(hub, kind), 10, 0.05, f"a {kind} to be held")

            assert hub.process is not None
            sent = time.monotonic()
            hub.process.send_signal(signal.SIGINT)
            hub.process.wait(timeout=30)
            stopped_after = time.monotonic() - sent

            for thread in (poll, waiting, stream):
                thread.join(10)
    finally:
        hub.stop()
    output = hub.log_path.read_text()
    assert "Traceback" not in output and "CancelledError" not in output, output[-3000:]
    assert "second shutdown" not in output.lower()
    assert stopped_after < STOP_BOUND_SECONDS, f"the hub took {stopped_after:.1f}s to stop:\n{output[-2000:]}"
    assert polled.get("answer") is not None and polled["answer"].status_code == 204, polled
    assert waited.get("answer") is not None and waited["answer"].json()["execution"]["status"] == "QUEUED"
    assert streamed.get("answer") is not None and streamed["answer"].status_code == 200


def _held(hub: HubProcess, kind: str) -> bool:
    """Whether the hub process answering holds a request of `kind` (with workers: eventually the right one)."""
    return held_requests(httpx.get(f"{hub.url}/metrics", timeout=5).text, kind) > 0
