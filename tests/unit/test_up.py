"""`exekra up` checks its port before starting anything, and trusts only its own hub's health answer (issue 13,
item 2). The whole `up` with real processes is in tests/e2e/test_up.py and tests/e2e/test_first_hour.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exekra import cli
from exekra.config import get_settings
from exekra.up import HubDidNotStart, runner_environment, wait_for_own_hub


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_up_refuses_a_taken_port_in_one_line_before_starting_anything(
    taken_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "EXEKRA_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    home = tmp_path / "home"
    code = cli.main(["up", "--port", str(taken_port), "--home", str(home)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert f"port {taken_port}" in lines[0] and "--port 0" in lines[0]
    assert "admin login" not in captured.out and "dashboard" not in captured.out
    assert not (home / "postgres").exists()  # nothing was started


def test_up_refuses_a_short_secret_key_in_one_line_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "EXEKRA_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXEKRA_SECRET_KEY", "changeme")
    get_settings.cache_clear()
    home = tmp_path / "home"
    code = cli.main(["up", "--port", "0", "--home", str(home)])
    captured = capsys.readouterr()
    get_settings.cache_clear()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert "EXEKRA_SECRET_KEY is a passphrase of 8 characters" in lines[0]
    assert not (home / "postgres").exists()  # nothing was started


class _Health(BaseHTTPRequestHandler):
    instance = ""

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "instance": self.instance, "leader": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    """A server answering `/api/health` with whatever instance id the test sets."""
    handler = type("Health", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def hub_process() -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in for the hub process `up` started (alive until the test ends)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait(timeout=10)


def test_waiting_ignores_another_hub_on_the_port(
    health_server: tuple[str, type[_Health]], hub_process: subprocess.Popen[bytes]
) -> None:
    url, handler = health_server
    handler.instance = "someone-else-1234"
    with pytest.raises(HubDidNotStart, match="another server answers"):
        wait_for_own_hub(url, hub_process, "mine", timeout=1.0)


def test_waiting_ends_when_its_own_hub_answers(
    health_server: tuple[str, type[_Health]], hub_process: subprocess.Popen[bytes]
) -> None:
    url, handler = health_server
    handler.instance = "mine-5e1f"
    wait_for_own_hub(url, hub_process, "mine", timeout=10.0)


def test_waiting_stops_when_the_hub_process_exits(health_server: tuple[str, type[_Health]]) -> None:
    url, handler = health_server
    handler.instance = "someone-else-1234"
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], env=os.environ)
    exited.wait(timeout=30)
    with pytest.raises(HubDidNotStart, match="exited with code 3"):
        wait_for_own_hub(url, exited, "mine", timeout=30.0)


def test_local_runners_get_no_hub_secret_only_their_own_settings() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/op",
        "EXEKRA_ADMIN_PASSWORD": "admin-secret",
        "EXEKRA_SECRET_KEY": "key-secret",
        "EXEKRA_LICENSE_PUBLIC_KEY": "pem",
        "DATABASE_URL": "postgresql://u:p@db/exekra",
        "REDIS_URL": "redis://:p@cache/0",
        "EXEKRA_CHROMIUM": "/usr/bin/chromium",
        "EXEKRA_SAMPLE_INTERVAL_SECONDS": "2",
    }
    assert runner_environment(environ) == {
        "PATH": "/usr/bin",
        "HOME": "/home/op",
        "EXEKRA_CHROMIUM": "/usr/bin/chromium",
        "EXEKRA_SAMPLE_INTERVAL_SECONDS": "2",
    }
