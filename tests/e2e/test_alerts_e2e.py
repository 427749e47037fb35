"""Alerts on a real hub with a real runner (docs/alerts.md): a workflow fails on the runner, and a local webhook
receiver gets the signed alert; channel and rule are made with the `exekra alerts` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..receiver import Receiver, http_receiver
from .conftest import HubProcess, RunnerProcess, publish, run_and_wait

pytestmark = pytest.mark.timeout(180)

FAILING: dict[str, Any] = {"nodes": [{"id": "boom", "activity": "control.fail", "params": {"message": "no luck"}}]}

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(hub_process: HubProcess, api: httpx.Client, tmp_path: Path) -> Cli:
    """`cli("alerts", …)`: the `exekra` command as the e2e admin (by EXEKRA_TOKEN)."""
    token = api.headers["Authorization"].removeprefix("Bearer ")
    env = {
        **os.environ,
        "EXEKRA_CONFIG_DIR": str(tmp_path),
        "EXEKRA_HUB_URL": hub_process.url,
        "EXEKRA_TOKEN": token,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "exekra.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    return run


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


def test_a_failing_workflow_on_a_real_runner_reaches_the_webhook_signed(
    api: httpx.Client,
    cli: Cli,
    receiver: Receiver,
    start_runner: Callable[..., RunnerProcess],
) -> None:
    runner = start_runner()
    workflow_id = publish(api, FAILING, labels=[runner.name])
    workflow = api.get(f"/api/workflows/{workflow_id}").json()["workflow"]["name"]

    made = cli("alerts", "channels", "create", f"hook-{workflow}", "--webhook", receiver.url + "/exekra")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.splitlines()[-1].strip()
    assert secret.startswith("exs_") and "shown only now" in made.stdout
    rule = cli(
        "alerts", "rules", "create", f"fail-{workflow}", "--channel", f"hook-{workflow}",
        "--on", "FAILED", "--workflow", workflow, "--cooldown", "60",
    )  # fmt: skip
    assert rule.returncode == 0, rule.stderr
    try:
        execution = run_and_wait(api, workflow_id)
        assert execution["status"] == "FAILED"

        [call] = receiver.wait_for(1, within=30)  # the end wakes the hub's delivery worker at once
        payload = call.json()
        assert call.signed_by(secret)
        assert payload["kind"] == "ALERT" and payload["events"][0]["executionId"] == execution["id"]
        assert payload["events"][0]["runnerName"] == runner.name and "no luck" in payload["events"][0]["error"]

        second = run_and_wait(api, workflow_id)  # inside the cool-down: waits for the digest
        assert second["status"] == "FAILED"
        listed = cli("alerts", "deliveries", "--rule", f"fail-{workflow}", "--json")
        assert listed.returncode == 0, listed.stderr
        statuses = sorted((d["kind"], d["status"]) for d in json.loads(listed.stdout)["deliveries"])
        assert statuses in ([("ALERT", "SENT")], [("ALERT", "SENT"), ("DIGEST", "PENDING")])
        assert len(receiver.received) == 1

        shown = cli("alerts", "rules", "list", "--workflow", workflow)
        assert shown.returncode == 0 and f"fail-{workflow}" in shown.stdout and "FAILED" in shown.stdout
        audit = api.get("/api/audit", params={"action": "alert.rule.create"}).json()["entries"]
        assert any(e["details"]["name"] == f"fail-{workflow}" for e in audit)
        assert secret not in api.get("/api/audit", params={"limit": 200}).text
    finally:
        assert cli("alerts", "rules", "delete", f"fail-{workflow}").returncode == 0
        assert cli("alerts", "channels", "delete", f"hook-{workflow}").returncode == 0
