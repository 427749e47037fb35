"""Fixtures for the workflow package: a workflow runner that records the log, and a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from workflow_support import ActivityCall, WorkflowRun


@pytest.fixture
def run(tmp_path: Path) -> WorkflowRun:
    return WorkflowRun(tmp_path)


@pytest.fixture
def call(tmp_path: Path) -> ActivityCall:
    return ActivityCall(tmp_path)


class _Handler(BaseHTTPRequestHandler):
    server: _TestServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def _reply(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path == "/echo":
            echo = {
                "method": self.command,
                "query": parse_qs(url.query),
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body,
            }
            self._reply(200, json.dumps(echo).encode(), "application/json")
        elif url.path == "/page":
            self._reply(200, b"<p>hello</p>", "text/html", **{"X-Page": "1"})
        elif url.path == "/missing":
            self._reply(404, b'{"error": "not found"}', "application/json")
        elif url.path == "/redirect":
            self._reply(302, b"", "text/plain", Location="/page")
        elif url.path == "/slow":
            self.server.release.wait(10)
            self._reply(200, b"late", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = _route


class _TestServer(ThreadingHTTPServer):
    daemon_threads = True
    release: threading.Event


@pytest.fixture(scope="module")
def http_server() -> Iterator[_TestServer]:
    """An HTTP server on 127.0.0.1: /echo, /page, /missing (404), /redirect, /slow (waits for `release`)."""
    server = _TestServer(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def base_url(http_server: _TestServer) -> str:
    host, port = http_server.server_address[:2]
    return f"http://{host!s}:{port}"
