"""Replicated servers for failover tests: a PostgreSQL primary with a streaming standby (made by
`pg_basebackup -R`) that a test promotes, from the same binaries as `exekra.embedded`."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from exekra.embedded import EmbeddedPostgres, EmbeddedServerError

from .conftest import fetch, sql, wait_until

REPLICATION_HBA = "local   replication   all   trust\n"
STOP_IMMEDIATE = ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0))  # `pg_ctl stop -m immediate`: no checkpoint


class ReplicatedPostgres(EmbeddedPostgres):
    """An embedded PostgreSQL that lets standbys replicate over its unix socket and, given `address`, also listens
    there (with the password) for clients on the `address`/24 network (hosts in network namespaces)."""

    def __init__(self, data_dir: Path, address: str | None = None) -> None:
        super().__init__(data_dir)
        self.address = address

    def _command(self, port: int) -> list[str]:
        command = super()._command(port)
        if self.address is None:
            return command
        return [
            part.replace("listen_addresses=127.0.0.1", f"listen_addresses=127.0.0.1,{self.address}") for part in command
        ]

    def _write_pg_hba(self) -> None:
        super()._write_pg_hba()
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(REPLICATION_HBA)
            if self.address is not None:
                hba.write(f"host    all   all   {self.address}/24   scram-sha-256\n")


class StandbyPostgres(ReplicatedPostgres):
    """A hot standby of `primary`, cloned from it over its unix socket at the first start.

    It shares the primary's superuser password (the clone carries the role), so `url` works as the primary's.
    """

    def __init__(self, data_dir: Path, primary: ReplicatedPostgres) -> None:
        super().__init__(data_dir, primary.address)
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
            f"--host={self.primary.socket_dir}",
            f"--port={self.primary.port}",
            "--username=postgres",
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, **self._child_options())
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
def primary_and_standby(root: Path, address: str | None = None) -> Iterator[tuple[ReplicatedPostgres, StandbyPostgres]]:
    """A durable primary whose commits wait for a synchronous streaming standby, and that standby (both also on
    `address`, if given); both stopped at the end. A commit the primary acknowledged is on the standby, so a
    promotion loses none."""
    with (
        ReplicatedPostgres(root / "primary", address) as primary,
        StandbyPostgres(root / "standby", primary) as standby,
    ):
        sql(primary.url, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        sql(primary.url, "SELECT pg_reload_conf()")
        wait_until(lambda: synchronous(primary), 30, 0.1, "the standby to replicate synchronously")
        yield primary, standby


def synchronous(primary: EmbeddedPostgres) -> bool:
    rows = fetch(primary.url, "SELECT sync_state, state FROM pg_stat_replication")
    return bool(rows) and [(r["sync_state"], r["state"]) for r in rows] == [("sync", "streaming")]


def both_hosts(database: str, address: str, primary: int, standby: int) -> str:
    """`database`'s URL naming the primary and the standby at `address`, the writable one wanted."""
    parts = urlsplit(database)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{address}:{primary},{address}:{standby}"
    return parts._replace(netloc=netloc, query="target_session_attrs=read-write").geturl()
