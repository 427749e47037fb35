"""`exekra up`: the whole system on one machine with one command.

Embedded PostgreSQL (persistent under EXEKRA_HOME) unless DATABASE_URL is set, embedded Redis unless
REDIS_URL is set (without one the hub runs in direct-assignment mode), migrations, a first admin, local
runners and an example workflow; then it waits for Ctrl-C and stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from exekra.cli_errors import UsageError
from exekra.config import Settings, get_settings
from exekra.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError, die_with_parent, free_port
from exekra.runner.config import RUNNER_VARIABLES

ADMIN_EMAIL = "admin@exekra.local"
DATABASE_NAME = "exekra"
EXAMPLE_WORKFLOW = "example-hello"
EXAMPLE_DEFINITION: dict[str, Any] = {
    "inputs": {"name": {"type": "string", "default": "world"}},
    "nodes": [
        {"id": "greet", "activity": "log.message", "params": {"message": "Hello, {{ inputs.name }}!"}},
        {
            "id": "python",
            "activity": "python.run",
            "params": {"script": "import platform\nresult = {'python': platform.python_version()}"},
        },
    ],
    "edges": [{"from": "greet", "to": "python"}],
    "outputs": {"python": "{{ nodes.python.result.python }}"},
}


def _say(message: str) -> None:
    print(f"exekra up: {message}", flush=True)


class Stack:
    """Everything `up` started, stopped in reverse order."""

    def __init__(self) -> None:
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.processes: list[subprocess.Popen[bytes]] = []

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def home_postgres(home: Path) -> EmbeddedPostgres:
    """The embedded PostgreSQL that `up` runs for EXEKRA_HOME `home` (its data, its password file)."""
    return EmbeddedPostgres(home / "postgres")


def _database_url(settings: Settings, home: Path, stack: Stack) -> str:
    if settings.database_url:
        return settings.database_url
    stack.postgres = home_postgres(home)
    stack.postgres.start()
    from exekra.embedded import create_database

    try:
        url = create_database(stack.postgres.url, DATABASE_NAME)
    except Exception:
        url = stack.postgres.url.rsplit("/", 1)[0] + f"/{DATABASE_NAME}"  # it exists from an earlier run
    _say(f"embedded PostgreSQL on port {stack.postgres.port} (data in {home / 'postgres'})")
    return url


def _redis_url(settings: Settings, home: Path, stack: Stack) -> str | None:
    if settings.redis_url:
        return settings.redis_url
    try:
        stack.redis = EmbeddedRedis(home / "redis")
        stack.redis.start()
    except (EmbeddedServerError, OSError) as exc:
        _say(f"no embedded Redis ({exc}); the hub runs in direct-assignment mode")
        stack.redis = None
        return None
    _say(f"embedded Redis on port {stack.redis.port}")
    return stack.redis.url


async def _prepare(
    database_url: str, settings: Settings, home: Path, runners: int
) -> tuple[str | None, list[dict[str, str]]]:
    """Migrate, create the first admin and the example workflow, and the local runners' credentials."""
    from exekra.db.migrate import upgrade_async
    from exekra.db.session import Database
    from exekra.hub.audit.service import SYSTEM
    from exekra.hub.auth.service import ensure_admin
    from exekra.hub.effects import EffectApplier
    from exekra.hub.license.service import Licensing

    settings = settings.model_copy(update={"database_url": database_url, "home": home})
    await upgrade_async(database_url, settings)
    db = Database(settings, EffectApplier())
    try:
        licensing = Licensing.from_settings(db, settings, settings.resolve_secret_key())
        password = os.environ.get("EXEKRA_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        created = await ensure_admin(db, ADMIN_EMAIL, password)
        await _ensure_example_workflow(db)
        credentials = await _local_runners(db, home, runners, SYSTEM, licensing)
    finally:
        await db.dispose()
    return (password if created else None), credentials


async def _ensure_example_workflow(db: Any) -> None:
    from sqlalchemy import select

    from exekra.hub.audit.service import SYSTEM
    from exekra.hub.workflows import service as workflows
    from exekra.hub.workflows.models import Workflow
    from exekra.hub.workflows.schemas import NewWorkflow

    async with db.session() as session:
        if (await session.execute(select(Workflow.id).where(Workflow.name == EXAMPLE_WORKFLOW))).first():
            return
    data = NewWorkflow(
        name=EXAMPLE_WORKFLOW,
        description="Says hello and reports the runner's Python version.",
        definition=EXAMPLE_DEFINITION,
    )
    summary, _ = await workflows.create_workflow(db, data, SYSTEM, max_definition_bytes=1024 * 1024)
    await workflows.publish(db, str(summary.workflow.id), SYSTEM)


async def _local_runners(db: Any, home: Path, count: int, actor: Any, licensing: Any) -> list[dict[str, str]]:
    """Credentials for runners local-1..N, kept in EXEKRA_HOME (mode 0600) so a restart reuses them; an installed
    licence's runner cap counts them too."""
    from sqlalchemy import select

    from exekra.cli_errors import CommandError
    from exekra.hub.errors import LicenseLimit
    from exekra.hub.runners import service as runners
    from exekra.hub.runners.models import Runner
    from exekra.hub.runners.schemas import NewRunner

    path = home / "local-runners.json"
    saved: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    result = []
    for i in range(1, count + 1):
        name = f"local-{i}"
        async with db.session() as session:
            row = (await session.execute(select(Runner).where(Runner.name == name))).scalar_one_or_none()
        if row is not None and name in saved and saved[name]["machineKey"] == row.machine_key:
            result.append(saved[name])
            continue
        if row is None:
            data = NewRunner(name=name, type="local", labels=["local"])
            try:
                registered = await runners.register_runner(db, data, actor, licensing)
            except LicenseLimit as exc:
                raise CommandError(f"cannot register the local runner {name}: {exc.message}") from None
        else:
            registered = await runners.regenerate_secret(db, str(row.id), actor)
        saved[name] = {"name": name, "machineKey": registered.machine_key, "machineSecret": registered.machine_secret}
        result.append(saved[name])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(saved, handle)
    return result


class HubDidNotStart(RuntimeError):
    """The hub `up` started did not answer as itself."""


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything is started."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"port {port} on {host} is taken ({exc.strerror}; another hub?): choose another with --port N, "
                "or --port 0 for a free one"
            ) from None


def wait_for_own_hub(url: str, process: subprocess.Popen[bytes], prefix: str, timeout: float = 60.0) -> None:
    """Wait until `GET /api/health` answers with the instance id of the hub `up` started (`prefix-…`).

    Another server answering on the port (it took the port after the check) is not taken for ours.
    """
    deadline = time.monotonic() + timeout
    stranger = ""
    while True:
        if process.poll() is not None:
            also = f"; another server answers on {url}" if stranger else ""
            raise HubDidNotStart(f"the hub exited with code {process.returncode}{also}")
        try:
            answer = httpx.get(f"{url}/api/health", timeout=1.0)
            instance = str(answer.json().get("instance", "")) if answer.status_code == 200 else ""
        except (httpx.HTTPError, ValueError, AttributeError):
            instance = ""
        if instance.startswith(f"{prefix}-"):
            return
        stranger = stranger or instance
        if time.monotonic() >= deadline:
            if stranger:
                raise HubDidNotStart(f"another server answers on {url} (instance {stranger}), not the hub started here")
            raise HubDidNotStart(f"the hub did not answer on {url} within {timeout:.0f} s")
        time.sleep(0.2)


def runner_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What a local runner inherits: the environment without the hub's settings (the admin password, the
    secret key, the database and Redis URLs): only the runner's own `EXEKRA_*` variables pass. A runner, and
    the workflows it runs, cannot read what it needs not know."""
    hub_only = {"DATABASE_URL", "REDIS_URL"}
    return {
        name: value
        for name, value in environ.items()
        if name not in hub_only and (not name.startswith("EXEKRA_") or name in RUNNER_VARIABLES)
    }


def _start_child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """An `exekra` command as a child that only `up` stops: in its own session, so a Ctrl-C in the terminal
    reaches `up` alone (which then stops each child once, in order), and killed with `up` if `up` dies."""
    return subprocess.Popen(
        [sys.executable, "-m", "exekra.cli", *command],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )


def run_up(args: argparse.Namespace) -> int:
    """Start everything, print the URL and login, wait for Ctrl-C, stop everything."""
    settings = get_settings()
    home = Path(args.home).expanduser() if args.home else settings.home
    home.mkdir(parents=True, exist_ok=True)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if port == 0:
        port = free_port()
    check_port_free(host, port)
    settings = settings.model_copy(update={"home": home})
    settings.resolve_secret_key()  # made on first start (the key file); one that cannot be used stops `up` here
    instance_prefix = f"up-{secrets.token_hex(4)}"
    stack = Stack()
    stopping = threading.Event()

    def _on_signal(signum: int, _: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        database_url = _database_url(settings, home, stack)
        redis_url = _redis_url(settings, home, stack)
        password, runner_credentials = asyncio.run(_prepare(database_url, settings, home, args.runners))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "EXEKRA_HOME": str(home),
            "EXEKRA_HOST": host,
            "EXEKRA_PORT": str(port),
            "EXEKRA_INSTANCE_PREFIX": instance_prefix,
        }
        env.setdefault("EXEKRA_LOG_JSON", "false")  # a person reads these lines, in a terminal
        if redis_url:
            env["REDIS_URL"] = redis_url
        if args.workers:
            env["EXEKRA_HUB_WORKERS"] = str(args.workers)
        hub = _start_child(["hub"], env)
        stack.processes.append(hub)
        url = f"http://{host}:{port}"
        wait_for_own_hub(url, hub, instance_prefix)
        for cred in runner_credentials:
            runner_env = {
                **runner_environment(os.environ),
                "EXEKRA_HUB_URL": url,
                "EXEKRA_MACHINE_KEY": cred["machineKey"],
                "EXEKRA_MACHINE_SECRET": cred["machineSecret"],
                "EXEKRA_RUNNER_NAME": cred["name"],
            }
            workdir = home / "runners" / cred["name"]
            stack.processes.append(_start_child(["runner", "--workdir", str(workdir)], runner_env))
        _say(f"dashboard and API: {url}   (API docs: {url}/api/docs)")
        if password:
            _say(
                f"admin login: {ADMIN_EMAIL} / {password}   (shown once; change it with `exekra login` then `exekra users passwd`)"
            )
        else:
            _say(f"admin login: {ADMIN_EMAIL} (password as set on first start)")
        _say(f"{len(runner_credentials)} local runner(s) started; press Ctrl-C to stop everything")
        while not stopping.is_set():
            if hub.poll() is not None:
                _say(f"the hub exited with code {hub.returncode}")
                return 1
            stopping.wait(0.5)
        _say("stopping")
        return 0
    except Exception as exc:
        print(f"exekra up: failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()
        _say("stopped")
