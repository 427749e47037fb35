"""`exekra up`: one command gives a working system, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import httpx
import psutil

from exekra.embedded import free_port

from .conftest import run_and_wait, wait_until

PASSWORD = "up-smoke-password"


def _command(process: psutil.Process) -> list[str]:
    """Its command line; none for a process that ended meanwhile (a zombie not reaped yet, or gone)."""
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:  # ZombieProcess included
        return []


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _start_up(home: Path, port: int, output: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"EXEKRA_ADMIN_PASSWORD": PASSWORD, "EXEKRA_SECRET_KEY": "ZXhla3JhIHVwIGUyZSB0ZXN0IGtleSwgMzIgYnl0ZXM="}
    with output.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "exekra.cli", "up", "--runners", "1", "--port", str(port), "--home", str(home)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _refused_without_password(port: int) -> bool:
    async def connect() -> bool:
        try:
            connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="exekra")
        except asyncpg.InvalidPasswordError:
            return True
        await connection.close()
        return False

    return asyncio.run(connect())


def _wait_started(up: subprocess.Popen[bytes], output: Path) -> str:
    wait_until(lambda: "local runner(s) started" in output.read_text() or up.poll() is not None, 120, 0.2, "up")
    assert up.poll() is None, output.read_text()
    return output.read_text()


def test_up_starts_everything_runs_the_example_and_sigint_stops_all_processes() -> None:
    home = Path(tempfile.mkdtemp(prefix="exekra-up-"))
    port = free_port()
    output = home / "up.log"
    up = _start_up(home, port, output)
    descendants: list[psutil.Process] = []
    try:
        text = _wait_started(up, output)
        assert f"http://127.0.0.1:{port}" in text
        assert re.search(rf"admin login: admin@exekra.local / {PASSWORD}", text)
        # The embedded PostgreSQL asks for the password of a 0600 file over TCP; nothing prints it.
        password_file = home / "postgres.password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        database_password = password_file.read_text().strip()
        assert database_password not in text
        pg_port = int(re.findall(r"embedded PostgreSQL on port (\d+)", text)[0])
        assert _refused_without_password(pg_port)
        descendants = _descendants(up.pid)
        runners = [p for p in descendants if "runner" in _command(p)[:4]]
        assert runners, [_command(p) for p in descendants]
        for runner in runners:  # the local runner knows its own settings, none of the hub's
            environ = runner.environ()
            assert environ["EXEKRA_MACHINE_SECRET"] and environ["EXEKRA_HUB_URL"]
            assert not {"EXEKRA_ADMIN_PASSWORD", "EXEKRA_SECRET_KEY", "DATABASE_URL", "REDIS_URL"} & set(environ)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            token = api.post("/api/auth/login", json={"email": "admin@exekra.local", "password": PASSWORD}).json()[
                "token"
            ]
            api.headers["Authorization"] = f"Bearer {token}"
            workflows = api.get("/api/workflows", params={"q": "example-hello"}).json()["workflows"]
            assert workflows and workflows[0]["name"] == "example-hello"
            execution = run_and_wait(api, workflows[0]["id"], {"name": "smoke"}, timeout=90)
            assert execution["status"] == "COMPLETED", (execution, output.read_text()[-3000:])
            assert execution["outputs"]["python"].count(".") == 2
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, output.read_text()[-3000:]
        assert wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in descendants), 15, 0.2)

        # A second start reuses the data: same admin, same workflow, earlier executions still there.
        second_output = home / "up2.log"
        up = _start_up(home, port, second_output)
        text = _wait_started(up, second_output)
        assert "password as set on first start" in text
        assert password_file.read_text().strip() == database_password and database_password not in text
        descendants = _descendants(up.pid)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            token = api.post("/api/auth/login", json={"email": "admin@exekra.local", "password": PASSWORD}).json()[
                "token"
            ]
            api.headers["Authorization"] = f"Bearer {token}"
            assert api.get(f"/api/executions/{execution['id']}").json()["execution"]["status"] == "COMPLETED"
            again = run_and_wait(api, workflows[0]["id"], timeout=90)
            assert again["status"] == "COMPLETED"
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        assert wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in descendants), 15, 0.2)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        for p in descendants:
            if p.is_running():
                p.kill()
