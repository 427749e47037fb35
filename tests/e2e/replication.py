"""Replicated servers for failover tests: a PostgreSQL primary with a streaming standby (made by
`pg_basebackup -R`) that a test promotes, from the same binaries as `exekra.embedded`.

On one host (the default) the standby replicates over the primary's unix socket. Given a `Host` each, every server
runs on its own host (a network namespace, `tests/cluster/network.py`), listens on its address, and the standby
replicates over the network."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from exekra.embedded import EmbeddedPostgres, EmbeddedServerError

from .conftest import fetch, sql, wait_until

REPLICATION_HBA = "local   replication   all   trust\n"
STOP_IMMEDIATE = ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0))  # `pg_ctl stop -m immediate`: no checkpoint


@dataclass(frozen=True)
class Host:
    """Where a server runs: its address, and the command prefix (run as root) that starts a process there."""

    address: str
    prefix: tuple[str, ...] = ()


class ReplicatedPostgres(EmbeddedPostgres):
    """An embedded PostgreSQL that lets standbys replicate over its unix socket and, given `host`, runs there and
    also listens on its address (with the password) for clients and standbys on the `address`/24 network."""

    def __init__(self, data_dir: Path, host: Host | None = None) -> None:
        super().__init__(data_dir)
        self.host = host

    @property
    def url(self) -> str:
        url = super().url
        return url if self.host is None else url.replace("@127.0.0.1:", f"@{self.host.address}:")

    def _command(self, port: int) -> list[str]:
        command = super()._command(port)
        if self.host is None:
            return command
        listen = f"listen_addresses=127.0.0.1,{self.host.address}"
        command = [part.replace("listen_addresses=127.0.0.1", listen) for part in command]
        if not self.host.prefix:
            return command
        # The prefix needs root, so the server's user is taken on after it (setpriv execs: the pid stays the server's).
        run_as = self._run_as
        user = [] if run_as is None else ["setpriv", f"--reuid={run_as.pw_uid}", f"--regid={run_as.pw_gid}"]
        return [*self.host.prefix, *user, *(["--clear-groups"] if user else []), *command]

    def _launch(self, port: int) -> None:
        if self.host is None or not self.host.prefix:
            return super()._launch(port)
        options = {**self._child_options(), "user": None, "group": None, "extra_groups": None}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # type: ignore[call-overload]
                self._command(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **options
            )

    def _write_pg_hba(self) -> None:
        super()._write_pg_hba()
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(REPLICATION_HBA)
            if self.host is not None:
                hba.write(f"host    all   all   {self.host.address}/24   scram-sha-256\n")
                hba.write(f"host    replication   all   {self.host.address}/24   scram-sha-256\n")


class StandbyPostgres(ReplicatedPostgres):
    """A hot standby of `primary`, cloned from it at the first start: over its unix socket, or over the network
    when the primary runs on a host of its own.

    It shares the primary's superuser password (the clone carries the role), so `url` works as the primary's.
    """

    def __init__(self, data_dir: Path, primary: ReplicatedPostgres, host: Host | None = None) -> None:
        super().__init__(data_dir, host or primary.host)
        self.primary = primary

    def _prepare(self) -> None:
        if not self.password_file.exists():
            shutil.copyfile(self.primary.password_file, self.password_file)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._clone()
        super()._prepare()

    def _clone(self) -> None:
        self._run_as = self.primary._run_as
        if self._run_as is not None:
            shutil.chown(self.data_dir, self._run_as.pw_uid, self._run_as.pw_gid)
        self.data_dir.chmod(0o700)
        command = [
            str(self._bin_dir / "pg_basebackup"),
            f"--pgdata={self.data_dir}",
            f"--host={self.primary.socket_dir if self.primary.host is None else self.primary.host.address}",
            f"--port={self.primary.port}",
            "--username=postgres",
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        ]
        options = self._child_options()
        # The password goes into the standby's primary_conninfo (-R) with the rest of the connection.
        options["env"] = {**options["env"], "PGPASSWORD": unquote(urlsplit(self.primary.url).password or "")}
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, **options)
        if result.returncode != 0:
            raise EmbeddedServerError(f"pg_basebackup failed:\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        # Not the primary's start: a standby is read-only, and its role (with the password) came with the clone.
        super(EmbeddedPostgres, self).start()

    def _is_ready(self, port: int) -> bool:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        # A hot standby says "standby" where a primary says "ready" (line 8 of postmaster.pid).
        return len(lines) >= 8 and lines[7].strip() in ("ready", "standby")

    def promote(self) -> None:
        """`pg_ctl promote`, waiting until the server accepts writes."""
        command = [str(self._bin_dir / "pg_ctl"), "promote", "--wait", "--timeout=30", f"--pgdata={self.data_dir}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, **self._child_options())
        if result.returncode != 0:
            raise EmbeddedServerError(f"pg_ctl promote failed:\n{result.stdout}{result.stderr}")


def stop_immediately(server: EmbeddedPostgres) -> None:
    """Stop `server` as `pg_ctl stop -m immediate` does: every session cut, no shutdown checkpoint."""
    server._terminate(STOP_IMMEDIATE)


@contextlib.contextmanager
def primary_and_standby(
    root: Path, hosts: tuple[Host, Host] | None = None
) -> Iterator[tuple[ReplicatedPostgres, StandbyPostgres]]:
    """A durable primary whose commits wait for a synchronous streaming standby, and that standby (each on its host,
    if given); both stopped at the end. A commit the primary acknowledged is on the standby, so a promotion loses
    none."""
    primary_host, standby_host = hosts if hosts is not None else (None, None)
    with (
        ReplicatedPostgres(root / "primary", primary_host) as primary,
        StandbyPostgres(root / "standby", primary, standby_host) as standby,
    ):
        sql(primary.url, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        sql(primary.url, "SELECT pg_reload_conf()")
        wait_until(lambda: synchronous(primary), 30, 0.1, "the standby to replicate synchronously")
        yield primary, standby


def synchronous(primary: EmbeddedPostgres) -> bool:
    rows = fetch(primary.url, "SELECT sync_state, state FROM pg_stat_replication")
    return bool(rows) and [(r["sync_state"], r["state"]) for r in rows] == [("sync", "streaming")]


def both_hosts(database: str, primary: ReplicatedPostgres, standby: ReplicatedPostgres) -> str:
    """`database`'s URL naming the primary and the standby, each where it listens, the writable one wanted."""
    parts = urlsplit(database)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = ",".join(f"{urlsplit(server.url).hostname}:{server.port}" for server in (primary, standby))
    netloc = f"{credentials}@{netloc}"
    return parts._replace(netloc=netloc, query="target_session_attrs=read-write").geturl()
