"""Issue 13's "Done when": the first hour of a new user, end to end, with no traceback at any step.

Fresh EXEKRA_HOME; `exekra up` on a taken port (refused), then on a free one; sign in; change the password;
push and run a workflow; a misspelt input warned about, then refused once the workflow is strict; read its log
by a short id; Ctrl-C stops everything quietly and quickly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_until

WORKFLOW: dict[str, Any] = {
    "inputs": {"who": {"type": "string", "required": True}},
    "nodes": [{"id": "greet", "activity": "log.message", "params": {"message": "hello {{ inputs.who }}"}}],
    "outputs": {"greeting": "hello {{ inputs.who }}"},
}
NEW_PASSWORD = "first-hour-new-password"


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """A new user's shell: nothing configured, a fresh EXEKRA_HOME and config directory."""
    unset = ("DATABASE_URL", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXEKRA_") and k not in unset}
    return {**env, "EXEKRA_HOME": str(tmp_path / "home"), "EXEKRA_CONFIG_DIR": str(tmp_path / "config")}


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def exekra(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "exekra.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in result.stderr, (args, result.stderr)
    return result


def test_the_first_hour(environment: dict[str, str], taken_port: int, tmp_path: Path) -> None:
    refused = exekra(environment, "up", "--port", str(taken_port))
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and f"port {taken_port}" in refused.stderr
    assert "admin login" not in refused.stdout

    output = tmp_path / "up.log"
    with output.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "exekra.cli", "up", "--port", "0", "--runners", "1"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
    try:
        wait_until(lambda: "local runner(s) started" in output.read_text() or up.poll() is not None, 120, 0.2, "up")
        started = output.read_text()
        assert up.poll() is None, started
        assert "Traceback" not in started
        url = re.search(r"dashboard and API: (http://127\.0\.0\.1:\d+)", started)
        password = re.search(r"admin login: admin@exekra\.local / (\S+)", started)
        assert url and password, started
        env = {**environment, "EXEKRA_HUB_URL": url.group(1)}

        signed_in = exekra(env, "login", "--email", "admin@exekra.local", "--password-stdin", stdin=password.group(1))
        assert signed_in.returncode == 0, signed_in.stderr
        changed = exekra(env, "users", "passwd", "--password-stdin", stdin=f"{password.group(1)}\n{NEW_PASSWORD}\n")
        assert changed.returncode == 0, changed.stderr
        old = exekra(env, "login", "--email", "admin@exekra.local", "--password-stdin", stdin=password.group(1))
        assert old.returncode == 3 and "Wrong email or password" in old.stderr
        again = exekra(env, "login", "--email", "admin@exekra.local", "--password-stdin", stdin=NEW_PASSWORD)
        assert again.returncode == 0, again.stderr

        definition = tmp_path / "greeter.json"
        definition.write_text(json.dumps(WORKFLOW))
        pushed = exekra(env, "workflow", "push", str(definition), "--name", "greeter", "--publish")
        assert pushed.returncode == 0 and "version 1 published" in pushed.stdout, pushed.stderr
        ran = exekra(env, "run", "greeter", "-i", "who=new user", "--wait", "--timeout", "90")
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("COMPLETED") and "on runner local-1" in ran.stderr

        misspelt = exekra(env, "run", "greeter", "-i", "who=x", "-i", "wh0=y")
        assert misspelt.returncode == 0 and "wh0" in misspelt.stderr, misspelt.stderr
        definition.write_text(json.dumps({**WORKFLOW, "strictInputs": True}))
        strict = exekra(env, "workflow", "push", str(definition), "--name", "greeter", "--publish")
        assert strict.returncode == 0 and "version 2 published" in strict.stdout, strict.stderr
        refused_input = exekra(env, "run", "greeter", "-i", "who=x", "-i", "wh0=y")
        assert refused_input.returncode != 0, refused_input.stdout
        assert "input 'wh0' is not declared (strictInputs)" in refused_input.stderr
        assert len(refused_input.stderr.strip().splitlines()) <= 2, refused_input.stderr

        listed = json.loads(exekra(env, "executions", "list", "--workflow", "greeter", "--json").stdout)
        execution_id = listed["executions"][-1]["id"]  # the first run (newest first)
        logs = exekra(env, "executions", "logs", execution_id[:8])
        assert logs.returncode == 0 and "hello new user" in logs.stdout, logs.stderr
        shown = exekra(env, "executions", "show", execution_id[:8])
        assert "by admin@exekra.local" in shown.stdout and "runner: local-1" in shown.stdout
    finally:
        if up.poll() is None:
            before = output.read_text()
            asked = time.monotonic()
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole foreground process group
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait(timeout=10)
            took = time.monotonic() - asked
    stopping = output.read_text()[len(before) :]
    assert up.returncode == 0, stopping[-3000:]
    assert "Traceback" not in stopping and "CancelledError" not in stopping, stopping[-3000:]
    assert "second shutdown request" not in stopping
    assert took < 15, f"exekra up took {took:.1f} s to stop"
