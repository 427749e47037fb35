"""A Redis master failover under a running hub (docs/deployment.md, "Redis: Sentinel"; docs/queue.md).

A master, its replica and three real Sentinels; a real `exekra hub` on `REDIS_URL=redis+sentinel://…/mymaster/0`
and a real `exekra runner`, executions created all along. Sentinel fails the master over: the hub goes through
direct mode, reconciles the queue from PostgreSQL and queues on the new master, and no execution is lost or
started twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from ..redis_servers import READY_SECONDS, SERVICE, SentinelCluster, Servers
from .conftest import (
    HubProcess,
    completed,
    executions_flowing,
    expect_each_completed_once,
    health,
    own_database,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

BEFORE, AFTER = 5, 5  # executions completed before the failover, and created after it


@pytest.fixture
def sentinel_database_url(pg_server_url: str) -> Iterator[str]:
    with own_database(pg_server_url, "sentinel") as url:
        yield url


def test_a_sentinel_failover_moves_the_hubs_queue_to_the_new_master_without_losing_or_doubling_an_execution(
    servers: Servers, sentinel_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = SentinelCluster(servers)
    wait_until(cluster.ready_to_fail_over, READY_SECONDS, 0.1, "the sentinels to see the replica")
    env = {"EXEKRA_REDIS_URL": cluster.url, "EXEKRA_LOG_LEVEL": "WARNING"}
    hub = HubProcess(sentinel_database_url, tmp_path / "hub", extra_env=env)
    hub.home.mkdir()
    with executions_flowing(hub, tmp_path) as creator:
        assert health(hub)["queue"] == "redis"
        wait_until(lambda: completed(sentinel_database_url) >= BEFORE, 60, 0.1, f"{BEFORE} executions to complete")
        assert scripts_run(cluster.replica) == 0  # a replica runs no queue script: the hub's go to the master

        failed_over_at = time.monotonic()
        with cluster.sentinel() as sentinel:
            assert sentinel.sentinel_failover(SERVICE)
        wait_until(lambda: cluster.master_port() == cluster.replica, 30, 0.05, "Sentinel to promote the replica")
        promoted_at = time.monotonic()
        first_after = creator.next_index()
        wait_until(lambda: creator.acknowledged_from(first_after) >= AFTER, 60, 0.1, "creates after the failover")
        wait_until(lambda: health(hub)["queue"] == "redis", 30, 0.1, "the hub to queue in Redis again")
        # Creates go on until one is queued through the new master: those after the failover may all have been
        # dispatched in direct mode, before the hub reconciled and went back to Redis.
        wait_until(lambda: scripts_run(cluster.replica) > 0, 30, 0.1, "the hub's queue to move to the new master")
        acknowledged = creator.stop_creating()
        expect_each_completed_once(sentinel_database_url, acknowledged)
        changes = queue_mode_changes(hub)
        assert changes >= 2, "the hub did not reconcile through direct mode"
    with capsys.disabled():
        print(
            f"\n  Redis Sentinel failover: {len(acknowledged)} executions ({first_after} before the failover),"
            f" all COMPLETED once; Sentinel promoted the replica in {promoted_at - failed_over_at:.1f} s;"
            f" queue mode changes {changes:g}; {creator.failed_creates} create answers lost"
        )


def scripts_run(port: int) -> int:
    """Lua scripts clients ran on the server at `port` (replication carries their effects, not the scripts)."""
    with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
        stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def queue_mode_changes(hub: HubProcess) -> float:
    for line in httpx.get(f"{hub.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(("exekra_queue_mode_changes_total", "exekra_queue_mode_changes ")):
            return float(line.split()[-1])
    raise AssertionError("no exekra_queue_mode_changes in /metrics")
