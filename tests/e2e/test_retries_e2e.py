"""Automatic retries with real runners and two hub processes: the session's hub, which the runners talk to, and
a second one on the same database whose maintenance pass runs every half second and makes the retries."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import HubProcess, RunnerProcess, publish, run_and_wait, wait_terminal, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def retrying_hub(
    e2e_database_url: str, api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubProcess]:
    """A second hub process on the e2e database (migrated by the first, which `api` started)."""
    hub = HubProcess(
        e2e_database_url,
        tmp_path_factory.mktemp("retrying-hub"),
        extra_env={"EXEKRA_MAINTENANCE_INTERVAL_SECONDS": "0.5"},
    )
    hub.start()
    yield hub
    hub.stop()


def retry_of(api: httpx.Client, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    """The automatic retry of `execution_id`, once it has ended."""

    def retried() -> str | None:
        found = api.get("/api/executions", params={"retryOf": execution_id}).json()["executions"]
        return str(found[0]["id"]) if found else None

    retry_id: str = wait_until(retried, timeout, 0.1, f"a retry of {execution_id}")
    return wait_terminal(api, retry_id)


def test_a_step_that_fails_the_first_time_completes_on_its_retry(
    api: httpx.Client, retrying_hub: HubProcess, start_runner: Callable[..., RunnerProcess], tmp_path: Path
) -> None:
    runner = start_runner()
    marker = tmp_path / f"tried-{secrets.token_hex(4)}"
    script = (
        "import pathlib\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.write_text('once')\n"
        "    raise RuntimeError('first try fails')\n"
        "result = {'second': True}\n"
    )
    definition = {"nodes": [{"id": "flaky", "activity": "python.run", "params": {"script": script}}]}
    policy = {"attempts": 3, "backoffSeconds": 1, "backoffFactor": 2, "on": ["FAILED"]}
    workflow_id = publish(api, definition, labels=[runner.name], retry=policy)

    original = run_and_wait(api, workflow_id)
    assert original["status"] == "FAILED" and "exit code 1" in original["error"]
    retry = retry_of(api, original["id"])

    assert retry["status"] == "COMPLETED", retry["error"]
    assert (retry["retryOf"], retry["retryAttempt"]) == (original["id"], 1)
    assert retry["versionId"] == original["versionId"] and retry["runnerId"] == runner.runner_id
    assert api.get("/api/executions", params={"retryOf": retry["id"]}).json()["executions"] == []
    token = api.headers["Authorization"].removeprefix("Bearer ")
    env = {**os.environ, "EXEKRA_CONFIG_DIR": str(tmp_path), "EXEKRA_HUB_URL": retrying_hub.url, "EXEKRA_TOKEN": token}
    for shown, line in ((retry, f"retry of: {original['id']} (retry 1)"), (original, f"retried as: {retry['id']}")):
        command = [sys.executable, "-m", "exekra.cli", "executions", "show", shown["id"]]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and line in result.stdout, result.stdout + result.stderr


def test_an_always_failing_workflow_is_retried_its_attempts_and_no_more(
    api: httpx.Client, retrying_hub: HubProcess, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    definition = {"nodes": [{"id": "boom", "activity": "control.fail", "params": {"message": "no luck"}}]}
    workflow_id = publish(api, definition, labels=[runner.name], retry={"attempts": 2, "on": ["FAILED"]})

    chain = [run_and_wait(api, workflow_id)]
    for _ in range(2):
        chain.append(retry_of(api, chain[-1]["id"]))

    assert [(e["status"], e["retryAttempt"]) for e in chain] == [("FAILED", 0), ("FAILED", 1), ("FAILED", 2)]
    assert [e["retryOf"] for e in chain] == [None, chain[0]["id"], chain[1]["id"]]
    for retry in chain[1:]:
        params = {"action": "execution.retry", "entityId": retry["id"]}
        [entry] = api.get("/api/audit", params=params).json()["entries"]
        assert entry["actorType"] == "SYSTEM"
        assert entry["details"] == {"retryOf": retry["retryOf"], "attempt": retry["retryAttempt"]}
    time.sleep(2)  # four passes of the retrying hub: a third retry would have been made by now
    executions = api.get("/api/executions", params={"workflowId": workflow_id}).json()["executions"]
    assert len(executions) == 3
