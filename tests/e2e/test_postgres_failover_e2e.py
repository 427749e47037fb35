"""A PostgreSQL promotion under a running hub (docs/deployment.md, "PostgreSQL high availability").

A primary with a synchronous streaming standby, a real `exekra hub` whose `DATABASE_URL` names both
(libpq multi-host form, `target_session_attrs=read-write`) and a real `exekra runner`, executions created all
along. The primary is stopped in immediate mode and the standby promoted: the same hub process finds the new
primary by itself, the executions created after the promotion complete, and none acknowledged before is lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from exekra.db.migrate import upgrade
from exekra.embedded import EmbeddedPostgres

from .conftest import (
    HubProcess,
    completed,
    executions_flowing,
    expect_each_completed_once,
    fetch,
    health,
    wait_until,
)
from .replication import both_hosts, primary_and_standby, stop_immediately

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

HUB_ENV = {"EXEKRA_MAINTENANCE_INTERVAL_SECONDS": "1", "EXEKRA_LOG_LEVEL": "WARNING"}
BEFORE, AFTER = 5, 5  # executions completed before the failover, and created after the promotion


def test_the_hub_follows_a_promoted_standby_by_itself_and_loses_no_acknowledged_execution(
    server_tmp_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with primary_and_standby(server_tmp_path) as (primary, standby):
        database = primary.create_database("exekra_failover")
        upgrade(database)
        hub = HubProcess(
            f"{both_hosts(database, primary, standby)}&connection_limit=10",
            tmp_path / "hub",
            extra_env=dict(HUB_ENV),
        )
        hub.home.mkdir()
        with executions_flowing(hub, tmp_path) as creator:
            on_primary = single_host(database, primary)
            wait_until(lambda: completed(on_primary) >= BEFORE, 60, 0.1, f"{BEFORE} executions to complete")
            hub_pid = hub.process.pid if hub.process else None

            failed_at = time.monotonic()
            stop_immediately(primary)
            standby.promote()
            promoted_at = time.monotonic()
            first_after = creator.next_index()
            on_new_primary = single_host(database, standby)
            first = wait_until(lambda: creator.acknowledged().get(first_after), 60, 0.1, "a create after the promotion")
            wait_until(lambda: status(on_new_primary, first) == "COMPLETED", 60, 0.05, "it to complete")
            recovered_at = time.monotonic()
            wait_until(lambda: creator.acknowledged_from(first_after) >= AFTER, 60, 0.1, "creates after the promotion")
            acknowledged = creator.stop_creating()
            expect_each_completed_once(on_new_primary, acknowledged)
            assert hub.process is not None and hub.process.pid == hub_pid, "the hub process was restarted"
            assert health(hub)["leader"] is True  # the lease, lost with the old primary, is held on the new one
        with capsys.disabled():
            print(
                f"\n  PostgreSQL promotion: {len(acknowledged)} executions ({first_after} before the failover),"
                f" all COMPLETED once; promotion took {promoted_at - failed_at:.1f} s, the first execution created"
                f" after it completed {recovered_at - failed_at:.1f} s after the primary stopped;"
                f" {creator.failed_creates} create answers lost and retried"
            )


def single_host(database: str, server: EmbeddedPostgres) -> str:
    return urlsplit(database)._replace(netloc=urlsplit(server.url).netloc).geturl()


def status(url: str, execution_id: str) -> str | None:
    rows = fetch(url, f"SELECT status FROM executions WHERE id = '{execution_id}'")
    return str(rows[0]["status"]) if rows else None
