"""A runner call whose answer is lost after the hub acted on it (a connection cut after the commit, as a database
failover or a load balancer can do): the runner repeats it, and the execution still runs once and ends COMPLETED.

A real hub and a real `exekra runner`, with an HTTP proxy between them that forwards one call to the hub and then
closes the runner's connection instead of answering.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from .conftest import NOOP, HubProcess, logs, publish, register_runner, wait_terminal, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class AnswerDropper(ThreadingHTTPServer):
    """Forwards every request to `upstream`; drops the answer of the first call whose path ends with `suffix`
    and that the hub answered 200, by closing the connection after the hub acted."""

    daemon_threads = True

    def __init__(self, upstream: str, suffix: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.suffix = suffix
        self.dropped: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def drops(self, path: str, status: int) -> bool:
        with self.lock:
            if self.dropped or status != 200 or not path.endswith(self.suffix):
                return False
            self.dropped.append(path)
            return True


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AnswerDropper

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        path = self.path.split("?", 1)[0]
        with httpx.Client(base_url=self.server.upstream, timeout=60) as upstream:
            answer = upstream.request(self.command, self.path, headers=headers, content=body)
        if self.server.drops(path, answer.status_code):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = do_DELETE = _forward


@contextlib.contextmanager
def dropping(upstream: str, suffix: str) -> Iterator[AnswerDropper]:
    proxy = AnswerDropper(upstream, suffix)
    thread = threading.Thread(target=proxy.serve_forever, name="answer-dropper", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(10)


@pytest.mark.parametrize("suffix", ["/poll", "/start", "/complete"])
def test_a_call_whose_answer_is_lost_is_repeated_and_the_execution_runs_once(
    api: httpx.Client, hub_process: HubProcess, tmp_path: Path, suffix: str
) -> None:
    label = f"lost-{suffix.strip('/')}"
    workflow_id = publish(api, NOOP, labels=[label])
    with dropping(hub_process.url, suffix) as proxy:
        runner = register_runner(api, proxy.url, tmp_path, [label])
        try:
            created = api.post("/api/executions", json={"workflowId": workflow_id})
            assert created.status_code == 201, created.text
            execution_id = created.json()["execution"]["id"]
            execution = wait_terminal(api, execution_id, 60)
            wait_until(lambda: proxy.dropped, 10, 0.05, f"the answer of {suffix} to be dropped")
        finally:
            runner.stop()
    assert execution["status"] == "COMPLETED", (execution, runner.log())
    assert execution["attempt"] == 1
    assert logs(api, execution_id).count("tick") == 1
    assert "hub unreachable" in runner.log()
