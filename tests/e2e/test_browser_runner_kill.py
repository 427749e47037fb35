"""A runner killed with SIGKILL while `browser.open` loads a page leaves no Chromium behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import httpx
import psutil

from exekra.runner.metrics import TREE_MARKER_VARIABLE
from exekra.runner.worker import ORPHAN_GRACE_SECONDS
from tests.activities.conftest import needs_chromium
from tests.activities.webapp import serve

from .conftest import RunnerProcess, publish, wait_status, wait_until


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@needs_chromium
def test_sigkill_of_the_runner_during_browser_open_leaves_no_chromium(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    with serve() as app:
        runner = start_runner()
        definition = {"nodes": [{"id": "open", "activity": "browser.open", "params": {"url": f"{app.url}/slow"}}]}
        workflow_id = publish(api, definition, labels=[runner.name])
        r = api.post("/api/executions", json={"workflowId": workflow_id})
        assert r.status_code == 201, r.text
        wait_status(api, r.json()["execution"]["id"], "RUNNING")
        assert app.slow_requested.wait(60), "Chromium never asked for the page"

        assert runner.process is not None
        tree = psutil.Process(runner.process.pid).children(recursive=True)
        chromium = [p for p in tree if "chrom" in p.name().lower()]
        assert chromium, f"no Chromium under the runner: {[p.name() for p in tree]}"
        # Chromium's own children (zygote, renderers) get a cleaned environment; the browser keeps ours.
        (marker,) = {p.environ().get(TREE_MARKER_VARIABLE) for p in chromium} - {None}

        os.kill(runner.process.pid, signal.SIGKILL)
        runner.process.wait(10)
        runner.process = None
        wait_until(
            lambda: not any(alive(p) for p in tree), ORPHAN_GRACE_SECONDS + 15, 0.1, "the runner's tree to be gone"
        )

    def marked() -> list[int]:
        found = []
        for process in psutil.process_iter():
            try:
                if process.environ().get(TREE_MARKER_VARIABLE) == marker and alive(process):
                    found.append(process.pid)
            except psutil.Error:
                continue
        return found

    assert marked() == []
