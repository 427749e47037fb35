"""Real hub + real `exekra runner` processes over HTTP: workflows run, stop, time out and crash as promised."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from .conftest import HubProcess, RunnerProcess, logs, publish, run_and_wait, wait_status, wait_terminal, wait_until


@pytest.fixture(scope="module")
def local_http() -> Iterator[str]:
    """A local HTTP server answering JSON, for the http.request step."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"greeting": "hi", "items": [1, 2, 3]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_workflow_with_shell_python_http_file_and_control_completes_with_outputs_and_logs(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess], local_http: str
) -> None:
    runner = start_runner()
    definition = {
        "inputs": {"who": {"type": "string", "required": True}},
        "nodes": [
            {
                "id": "sh",
                "activity": "shell.run",
                "params": {"command": "echo shell says {{ inputs.who }}", "shell": True},
            },
            {
                "id": "py",
                "activity": "python.run",
                "params": {"script": "print('python here')\nresult = {'n': sum(range(10))}"},
            },
            {"id": "get", "activity": "http.request", "params": {"method": "GET", "url": local_http + "/data"}},
            {"id": "check", "activity": "control.if", "params": {"condition": "{{ nodes.get.status == 200 }}"}},
            {
                "id": "save",
                "activity": "file.write",
                "params": {"path": "out/greeting.txt", "content": "{{ nodes.get.json.greeting }}"},
            },
            {"id": "read", "activity": "file.read", "params": {"path": "out/greeting.txt"}},
            {"id": "fail", "activity": "control.fail", "params": {"message": "bad status {{ nodes.get.status }}"}},
        ],
        "edges": [
            {"from": "sh", "to": "py"},
            {"from": "py", "to": "get"},
            {"from": "get", "to": "check"},
            {"from": "check", "to": "save", "when": "true"},
            {"from": "check", "to": "fail", "when": "false"},
            {"from": "save", "to": "read"},
        ],
        "outputs": {
            "stdout": "{{ nodes.sh.stdout }}",
            "n": "{{ nodes.py.result.n }}",
            "status": "{{ nodes.get.status }}",
            "content": "{{ nodes.read.content }}",
        },
    }
    workflow_id = publish(api, definition, labels=[runner.name])
    execution = run_and_wait(api, workflow_id, {"who": "exekra"})
    assert execution["status"] == "COMPLETED", (execution, runner.log())
    assert execution["outputs"]["n"] == 45
    assert execution["outputs"]["status"] == 200
    assert execution["outputs"]["content"] == "hi"
    assert "shell says exekra" in execution["outputs"]["stdout"]
    assert execution["runnerId"] == runner.runner_id and execution["attempt"] == 1
    lines = logs(api, execution["id"])
    assert any("shell says exekra" in line for line in lines)
    assert any("python here" in line for line in lines)
    assert not any("bad status" in line for line in lines)


def test_cpu_and_memory_metrics_are_reported_for_a_busy_step(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    script = (
        "import time\nblob = bytearray(80 * 1024 * 1024)\nend = time.time() + 1.5\nwhile time.time() < end:\n    pass"
    )
    workflow_id = publish(
        api, {"nodes": [{"id": "burn", "activity": "python.run", "params": {"script": script}}]}, labels=[runner.name]
    )
    execution = run_and_wait(api, workflow_id)
    assert execution["status"] == "COMPLETED", runner.log()
    metrics = execution["metrics"]
    assert metrics["cpuPeak"] > 0 and metrics["memPeakMb"] > 50, metrics
    assert metrics["cpuAvg"] is not None and metrics["memAvgMb"] > 0


def _descendants_of(runner: RunnerProcess) -> list[psutil.Process]:
    assert runner.process is not None
    return psutil.Process(runner.process.pid).children(recursive=True)


@pytest.mark.parametrize(
    "node",
    [
        {"id": "wait", "activity": "control.delay", "params": {"seconds": 600}},
        {"id": "sleep", "activity": "shell.run", "params": {"command": ["sleep", "600"]}},
    ],
    ids=["control.delay", "shell.run-sleep"],
)
def test_stop_of_a_long_step_ends_stopped_within_five_seconds_leaving_no_process(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess], node: dict[str, object]
) -> None:
    runner = start_runner()
    workflow_id = publish(api, {"nodes": [node]}, labels=[runner.name])
    execution_id = api.post("/api/executions", json={"workflowId": workflow_id}).json()["execution"]["id"]
    wait_status(api, execution_id, "RUNNING")
    wait_until(lambda: any("started" in line for line in logs(api, execution_id)), 15, what="the step to start")
    sleepers_before = [p for p in _descendants_of(runner) if p.cmdline() == ["sleep", "600"]]
    started = time.monotonic()
    assert api.post(f"/api/executions/{execution_id}/stop").status_code == 200
    execution = wait_terminal(api, execution_id, timeout=10)
    assert execution["status"] == "STOPPED"
    assert time.monotonic() - started < 5
    gone = wait_until(lambda: all(not p.is_running() for p in sleepers_before), 5, what="sleep to be killed")
    assert gone
    # Only the runner's warm idle worker may remain under the runner.
    workers = [p for p in _descendants_of(runner) if "sleep" in " ".join(p.cmdline())]
    assert workers == []


def test_workflow_timeout_ends_failed(api: httpx.Client, start_runner: Callable[..., RunnerProcess]) -> None:
    runner = start_runner()
    definition = {"nodes": [{"id": "nap", "activity": "shell.run", "params": {"command": ["sleep", "30"]}}]}
    workflow_id = publish(api, definition, labels=[runner.name], timeoutSeconds=1)
    execution = run_and_wait(api, workflow_id, timeout=30)
    assert execution["status"] == "FAILED"
    assert "timed out" in execution["error"]


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("import os\nos._exit(3)", "exit code 3"),
        ("import ctypes\nctypes.string_at(0)", "exit code"),
    ],
    ids=["os._exit(3)", "segfault"],
)
def test_a_crashing_step_ends_failed_with_the_reason(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess], script: str, reason: str
) -> None:
    runner = start_runner()
    workflow_id = publish(
        api, {"nodes": [{"id": "crash", "activity": "python.run", "params": {"script": script}}]}, labels=[runner.name]
    )
    execution = run_and_wait(api, workflow_id)
    assert execution["status"] == "FAILED"
    assert reason in execution["error"], execution["error"]


def test_runner_reconnects_after_hub_restart_and_takes_new_work(
    api: httpx.Client, hub_process: HubProcess, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    wait_until(lambda: api.get(f"/api/runners/{runner.runner_id}").json()["runner"]["status"] == "ONLINE", 20)
    workflow_id = publish(
        api, {"nodes": [{"id": "hi", "activity": "log.message", "params": {"message": "hi"}}]}, labels=[runner.name]
    )
    hub_process.stop()
    # The stopping hub ends the long poll with 204; the runner's next poll (a poll interval later) finds it gone.
    wait_until(lambda: "hub unreachable" in runner.log(), 20)
    hub_process.start()
    execution = run_and_wait(api, workflow_id, timeout=90)
    assert execution["status"] == "COMPLETED", runner.log()
    assert runner.log().count("hub unreachable") == 1


def test_wrong_secret_backs_off_without_hot_loop(
    api: httpx.Client, hub_process: HubProcess, start_runner: Callable[..., RunnerProcess]
) -> None:
    def auth_requests() -> int:  # one access line each (a JSON line names the path twice: message and route)
        return sum(1 for line in hub_process.log_path.read_text().splitlines() if "/api/runner/auth" in line)

    before = auth_requests()
    runner = start_runner(secret="rs_wrong")
    # Counted from its first attempt, not from its start: a loaded machine may take seconds to start the process.
    wait_until(lambda: auth_requests() > before, 30, what="the runner's first sign-in")
    first = auth_requests() - 1
    time.sleep(4)  # exponential backoff: 1 + 2 s apart, with jitter → a handful of attempts at most
    runner.stop()
    attempts = auth_requests() - first
    assert 1 <= attempts <= 5, attempts
