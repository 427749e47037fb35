"""What a scenario runs against: embedded PostgreSQL and Redis, the hub as an operator starts it, samplers.

The hub is a separate `python -m exekra.cli hub` process whose code comes from `--hub-src` (a git worktree of
the committed code by default), so benchmarks measure what is committed, not work in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

BENCH_DIR = Path(__file__).resolve().parent
NOFILE = 65536
ADMIN_EMAIL = "bench@exekra.local"
ADMIN_PASSWORD = "bench-password-123"


def raise_nofile(limit: int = NOFILE) -> int:
    """Raise this process's open-file limit (root may raise the hard limit too); returns the soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in ((limit, max(limit, hard)), (min(limit, hard), hard)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, wanted)
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None, *, grace: float = 10.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL this one process (by its pid), waiting between the steps."""
    if process is None or process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_process_group(process: subprocess.Popen[bytes] | None, *, grace: float = 10.0) -> None:
    """Like `stop_process` for a child started with `start_new_session=True`: signals its own group."""
    if process is None:
        return
    pgid = process.pid  # a session leader's group id is its pid
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, 0)  # anything left in the group (grandchildren)?
            continue
        return


def _limit_files() -> None:
    raise_nofile()


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last `lines` lines of a process's log."""
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for_workers(
    port: int,
    process: subprocess.Popen[bytes],
    hub_pid: int,
    workers: int,
    timeout: float,
    tail: Callable[[], str],
) -> None:
    """Until each of the hub's `workers` processes has answered `/api/health` on `port` (with several, the supervisor
    listens before they have started); RuntimeError if `process` (the hub, or `exekra up`) exits or `timeout`
    passes."""
    deadline = time.monotonic() + timeout
    answered: set[int] = set()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before every worker answered:\n{tail()}")
        with contextlib.suppress(OSError, psutil.Error):
            answered.add(_health_answered_by(port, hub_pid))
        if len(answered) >= workers:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{len(answered)} of {workers} hub worker(s) answered within {timeout}s:\n{tail()}")


def _health_answered_by(port: int, hub_pid: int) -> int:
    """GET /api/health on a new connection; the pid of the hub process that holds its other end."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/api/health")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise OSError(f"/api/health answered {response.status}")
        assert connection.sock is not None
        client = connection.sock.getsockname()[:2]
        for proc in [psutil.Process(hub_pid), *psutil.Process(hub_pid).children()]:
            if any(c.raddr and tuple(c.raddr) == client for c in proc.net_connections("tcp")):
                return proc.pid
        raise OSError("no hub process holds the connection")
    finally:
        connection.close()


def exekra_environment(hub_src: Path, settings: dict[str, str]) -> dict[str, str]:
    """The environment of an `exekra` command run from `hub_src`: this one without any Exekra, PostgreSQL or Redis
    setting, then `settings`, then any `BENCH_EXEKRA_*` variable as `EXEKRA_*` (an operator's setting tried)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXEKRA_", "PG"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env |= {
        "PYTHONPATH": str(hub_src),
        # One producer user creates thousands of executions a minute: the user-facing limiter (100/min by
        # default) would answer 429 by design. It still runs (and counts in Redis); only its limit is high.
        "EXEKRA_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    env |= settings
    return env | {k.removeprefix("BENCH_"): v for k, v in os.environ.items() if k.startswith("BENCH_EXEKRA_")}


@dataclass
class Servers:
    """Embedded PostgreSQL (durable: fsync on, as in production) and Redis, in one temporary directory."""

    workdir: Path
    pg: Any = None
    redis: Any = None

    @classmethod
    def start(cls, *, statements: bool = False) -> Servers:
        """`statements`: PostgreSQL loads pg_stat_statements (`bench.statements`), for `--statements`."""
        from exekra.embedded import EmbeddedPostgres, EmbeddedRedis

        postgres: type[Any] = EmbeddedPostgres
        if statements:
            from bench.statements import SERVER_SETTINGS

            class CountingPostgres(EmbeddedPostgres):
                def _command(self, port: int) -> list[str]:
                    command: list[str] = super()._command(port)
                    for key, value in SERVER_SETTINGS.items():
                        command += ["-c", f"{key}={value}"]
                    return command

            postgres = CountingPostgres
        workdir = Path(tempfile.mkdtemp(prefix="exekra-bench-"))
        servers = cls(workdir)
        try:
            servers.pg = postgres(workdir / "pg", throwaway=False)
            servers.pg.start()
            servers.redis = EmbeddedRedis()
            servers.redis.start()
        except BaseException:
            servers.stop()
            raise
        return servers

    def new_database(self, prefix: str) -> str:
        """A fresh database; returns its postgresql:// URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        return str(self.pg.create_database(name))

    def flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis.url, socket_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        for server in (self.redis, self.pg):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class HubProcess:
    """`python -m exekra.cli hub` with production-like settings, on its own fresh database."""

    hub_src: Path
    database_url: str
    redis_url: str | None
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    postgres_pid: int = 0  # the PostgreSQL server's, for its CPU
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def env(self) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "EXEKRA_HOME": str(self.home),
            "EXEKRA_SECRET_KEY": "bench-secret-key",
            "EXEKRA_LOG_LEVEL": "WARNING",
            "EXEKRA_HUB_WORKERS": str(self.workers),
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return exekra_environment(self.hub_src, env) | self.extra_env  # a scenario's own settings win

    def migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "exekra.cli", "db", "upgrade"],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"exekra db upgrade failed:\n{result.stdout}{result.stderr}")

    def start(self, timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.home / "hub.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "exekra.cli", "hub", "--port", str(self.port)],
                env=self.env(),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_limit_files,
            )
        wait_for_workers(self.port, self.process, self.pid, self.workers, timeout, self.log_tail)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        stop_process(self.process)


class UpProcess:
    """`exekra up --runners 0` as an operator starts it, its own embedded PostgreSQL (durable) and Redis under a
    fresh `EXEKRA_HOME`, every setting at its default but the user-facing rate limit (`exekra_environment`). The
    benchmark sees it from outside: the URL and the ports it prints, and the admin password it is given. The same
    attributes as a `HubProcess`."""

    def __init__(self, hub_src: Path, home: Path, workers: int = 1) -> None:
        self.hub_src = hub_src
        self.home = home
        self.workers = workers
        self.url = ""
        self.database_url = ""
        self.pid = 0  # the hub's (a child of `up`)
        self.postgres_pid = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "up.log"

    def start(self, timeout: float = 120.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        settings = {"EXEKRA_ADMIN_PASSWORD": ADMIN_PASSWORD}
        if self.workers != 1:
            settings["EXEKRA_HUB_WORKERS"] = str(self.workers)
        command = ["up", "--runners", "0", "--port", "0", "--home", str(self.home)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "exekra.cli", *command],
                env=exekra_environment(self.hub_src, settings),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_limit_files,
            )
        deadline = time.monotonic() + timeout
        said: dict[str, str] = {}
        while "url" not in said:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"exekra up printed no URL:\n{self.log_tail()}")
            time.sleep(0.1)
            said = _said_by_up(self.log_path.read_text(errors="replace"))
        if "postgres_port" not in said:
            raise RuntimeError(f"exekra up started no embedded PostgreSQL (is a database URL set?):\n{self.log_tail()}")
        self.url = said["url"]
        from exekra.up import DATABASE_NAME, home_postgres  # the hub's source, on sys.path (bench.cli)

        password = quote(home_postgres(self.home).password_file.read_text().strip(), safe="")
        self.database_url = f"postgresql://postgres:{password}@127.0.0.1:{said['postgres_port']}/{DATABASE_NAME}"
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children():
                command_line = child.cmdline()
                if command_line[-1:] == ["hub"]:  # python -m exekra.cli hub
                    self.pid = child.pid
                elif f"port={said['postgres_port']}" in command_line:  # postgres -c port=N
                    self.postgres_pid = child.pid
        if not self.pid or not self.postgres_pid:
            raise RuntimeError(f"exekra up: no hub or PostgreSQL process among its children:\n{self.log_tail()}")
        port = int(self.url.rsplit(":", 1)[1])
        wait_for_workers(port, self.process, self.pid, self.workers, deadline - time.monotonic(), self.log_tail)

    def env(self) -> dict[str, str]:
        """The environment of an `exekra` command on this hub's database."""
        return exekra_environment(self.hub_src, {"DATABASE_URL": self.database_url, "EXEKRA_HOME": str(self.home)})

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        stop_process(self.process, grace=60.0)  # `up` stops the hub, then Redis and PostgreSQL


_UP_SAYS = {"postgres_port": "exekra up: embedded PostgreSQL on port ", "url": "exekra up: dashboard and API: "}


def _said_by_up(log: str) -> dict[str, str]:
    """What `exekra up` printed so far, from its complete lines: `url`, `postgres_port`."""
    said = {}
    for line in log.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        for key, prefix in _UP_SAYS.items():
            if line.startswith(prefix):
                said[key] = line.removeprefix(prefix).split()[0]
    return said


@contextlib.contextmanager
def running_up(hub_src: Path, workdir: Path, name: str, workers: int = 1) -> Iterator[UpProcess]:
    """`exekra up` in a fresh home; stopped, with everything it started, when the block ends."""
    up = UpProcess(hub_src, workdir / f"up-{name}-{uuid.uuid4().hex[:6]}", workers)
    try:
        up.start()
        yield up
    finally:
        up.stop()


@contextlib.contextmanager
def running_hub(
    servers: Servers,
    hub_src: Path,
    name: str,
    *,
    redis: bool = True,
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[HubProcess]:
    """A migrated fresh database and a hub on it; the hub is stopped when the block ends."""
    servers.flush_redis()
    hub = HubProcess(
        hub_src=hub_src,
        database_url=servers.new_database(f"bench_{name}"),
        redis_url=servers.redis.url if redis else None,
        home=servers.workdir / f"home-{name}-{uuid.uuid4().hex[:6]}",
        extra_env=extra_env or {},
        workers=workers,
        postgres_pid=servers.pg.pid,
    )
    hub.home.mkdir(parents=True)
    hub.migrate()
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


class TreeSampler:
    """Samples CPU % (100 = one core) and RSS of process trees every `interval` seconds, in a thread-free task."""

    def __init__(
        self, roots: dict[str, int], interval: float = 0.5, solo: frozenset[str] = frozenset({"bench"})
    ) -> None:
        self.roots = roots
        self.solo = solo  # sampled without their children (the harness is the parent of the servers)
        self.interval = interval
        self.samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in roots}
        self._procs: dict[int, psutil.Process] = {}
        self._task: asyncio.Task[None] | None = None
        self.t0 = time.perf_counter()

    def _tree(self, pid: int, solo: bool = False) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            members = [root] if solo else [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        found = []
        for proc in members:
            known = self._procs.get(proc.pid)
            if known is None:
                known = self._procs[proc.pid] = proc
                with contextlib.suppress(psutil.Error):
                    known.cpu_percent(None)  # first call primes the counter
            found.append(known)
        return found

    def sample(self) -> None:
        now = time.perf_counter() - self.t0
        for name, pid in self.roots.items():
            cpu = rss = 0.0
            for proc in self._tree(pid, name in self.solo):
                with contextlib.suppress(psutil.Error):
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
            self.samples[name].append((now, cpu, rss / 2**20))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.sample()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self, name: str, since: float = 0.0, until: float | None = None) -> dict[str, float]:
        rows = [s for s in self.samples[name][1:] if s[0] >= since and (until is None or s[0] <= until)]
        if not rows:
            return {"cpuAvgPercent": float("nan"), "cpuPeakPercent": float("nan"), "rssPeakMb": float("nan")}
        return {
            "cpuAvgPercent": sum(r[1] for r in rows) / len(rows),
            "cpuPeakPercent": max(r[1] for r in rows),
            "rssPeakMb": max(r[2] for r in rows),
        }


def tree_cpu_seconds(pid: int, solo: bool = False) -> dict[int, float]:
    """User + system CPU seconds of each live process in the tree under `pid` (diff two calls for a period)."""
    out: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        procs = [root] if solo else [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
    return out


def tree_context_switches(pid: int) -> dict[int, tuple[int, int]]:
    """(voluntary, involuntary) context switches of each live process in the tree under `pid`: a voluntary one is a
    process that went to sleep with nothing to do (each wake-up of an event loop costs one), an involuntary one a
    process that the kernel took the core from (the machine was busier than its cores)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            switches = proc.num_ctx_switches()
            out[proc.pid] = (switches.voluntary, switches.involuntary)
    return out


def context_switches_between(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(voluntary, involuntary) context switches between two `tree_context_switches` snapshots."""
    voluntary = sum(v - before.get(pid, (0, 0))[0] for pid, (v, _) in after.items())
    involuntary = sum(i - before.get(pid, (0, 0))[1] for pid, (_, i) in after.items())
    return voluntary, involuntary


def cpu_seconds_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `tree_cpu_seconds` snapshots (processes born in between count whole)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "ramGb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpuModel": cpu_model,
        "loadAvg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


def git_revision(src: Path) -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    return "unknown"
