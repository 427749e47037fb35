"""Chaos on a cluster of hosts made on one machine (`make chaos-cluster`; root; minutes long).

Hosts are network namespaces on one bridge (`tests/cluster/network.py`): three hub hosts (each also runs a Redis
Sentinel), a load balancer host (Debian's HAProxy, configured from `deploy/haproxy.cfg`), two Redis hosts (master
and replica), two runner hosts (protocol-level runners that journal every step), two PostgreSQL hosts (a primary, and
a synchronous standby streaming from it over the network). Executions are created through
the load balancer at a steady rate while these faults are injected one after the other:

1. the leader hub is killed with SIGKILL in the middle of firing due schedules (and its host brought back);
2. the link of a second hub (neither the killed one nor the new leader) goes down for 20 s;
3. Sentinel fails the Redis master over;
4. the PostgreSQL primary is stopped in immediate mode and the standby promoted (more schedules made due).

Asserted: every execution terminal and COMPLETED, each started and completed once by one runner (the journals
and the database agree), each schedule fired once, every runner online with a heartbeat after the last fault (they
reconnected by themselves), and the pick-up p99 outside the fault windows. A table of the figures is printed.
"""

from __future__ import annotations

import collections
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from exekra.db.migrate import upgrade

from ..e2e.conftest import (
    NOOP,
    PASSWORD,
    TERMINAL,
    Background,
    HubProcess,
    LoadBalancer,
    Runner,
    create_through_outages,
    fetch,
    health,
    schedule_runs,
    schedules_settled,
    sql,
    stop_process,
    wait_until,
    yearly_schedule,
)
from ..e2e.replication import (
    Host,
    ReplicatedPostgres,
    StandbyPostgres,
    both_hosts,
    primary_and_standby,
    stop_immediately,
)
from ..redis_servers import SERVICE, Servers
from .network import Network, network

pytestmark = [pytest.mark.chaos_cluster, pytest.mark.timeout(1800)]

EXECUTIONS = int(os.environ.get("EXEKRA_CHAOS_CLUSTER_EXECUTIONS", "3000"))
RATE = float(os.environ.get("EXEKRA_CHAOS_CLUSTER_RATE", "20"))  # executions created per second
CREATORS = 4
RUNNERS_PER_HOST = 6
SCHEDULES = 20  # per batch; two batches
SETTLE = 10.0  # seconds after a fault that still count as its window
PICKUP_P99_MS = 50.0
HUBS = ("hub1", "hub2", "hub3")
HOSTS = {
    "lb": 2,
    "hub1": 11,
    "hub2": 12,
    "hub3": 13,
    "redis1": 21,
    "redis2": 22,
    "run1": 31,
    "run2": 32,
    "pg1": 41,
    "pg2": 42,
}
RUNNER_HOSTS = ("run1", "run2")
HUB_PORT, LB_PORT, REDIS_PORT, SENTINEL_PORT = 4545, 4545, 6379, 26379
HUB_ENV = {
    "EXEKRA_MAINTENANCE_INTERVAL_SECONDS": "2",
    "EXEKRA_SCHEDULER_INTERVAL_SECONDS": "0.2",
    "EXEKRA_HEARTBEAT_INTERVAL_SECONDS": "5",
    "EXEKRA_LOG_LEVEL": "WARNING",
}


@pytest.fixture
def cluster_network() -> Iterator[Network]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is missing")
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is missing (`make deploy-tools` installs it)")
    with network(HOSTS) as made:
        yield made


@dataclass
class Faults:
    """When each fault began and ended (wall clock, as the database's timestamps are)."""

    started: float = field(default_factory=time.time)
    windows: list[tuple[str, float, float]] = field(default_factory=list)

    def record(self, what: str, begin: float) -> None:
        self.windows.append((what, begin, time.time()))

    def inside(self, moment: float) -> bool:
        return any(begin - 1 <= moment <= end + SETTLE for _, begin, end in self.windows)


class Cluster:
    """Every process of the run, stopped (hard) at the end whatever happened."""

    def __init__(self, net: Network, directory: Path) -> None:
        self.net = net
        self.directory = directory
        self.redis = Servers(directory)
        self.hubs: dict[str, HubProcess] = {}
        self.runners: list[Runner] = []
        hubs = [f"{net.address(host)}:{HUB_PORT}" for host in HUBS]
        self.haproxy = LoadBalancer(hubs, directory, net.address("lb"), LB_PORT, net.prefix("lb"))

    @property
    def lb_url(self) -> str:
        return self.haproxy.url

    def start_redis(self) -> str:
        """Master, replica, and a Sentinel on each hub host; the hubs' REDIS_URL."""
        master = self.net.address("redis1")
        common = ("--port", str(REDIS_PORT), "--protected-mode", "no")
        self.redis.start("redis1", "--bind", master, *common, prefix=self.net.prefix("redis1"))
        replica = ("--bind", self.net.address("redis2"), *common, "--replicaof", master, str(REDIS_PORT))
        self.redis.start("redis2", *replica, prefix=self.net.prefix("redis2"))
        for host in HUBS:
            config = (
                f"port {SENTINEL_PORT}\nbind {self.net.address(host)}\nprotected-mode no\n"
                f"sentinel monitor {SERVICE} {master} {REDIS_PORT} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 2000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
            self.redis.start(f"sentinel-{host}", "--sentinel", config=config, prefix=self.net.prefix(host))
        sentinels = ",".join(f"{self.net.address(h)}:{SENTINEL_PORT}" for h in HUBS)
        return f"redis+sentinel://{sentinels}/{SERVICE}/0"

    def sentinel(self, host: str) -> redis.Redis:
        return redis.Redis(host=self.net.address(host), port=SENTINEL_PORT, socket_timeout=2, decode_responses=True)

    def redis_master(self) -> str:
        with self.sentinel("hub1") as sentinel:
            address, _ = sentinel.sentinel_get_master_addr_by_name(SERVICE)
            return str(address)

    def replica_in_sync(self) -> bool:
        for host in HUBS:
            with self.sentinel(host) as sentinel:
                try:
                    replicas = sentinel.sentinel_slaves(SERVICE)
                except redis.RedisError:
                    return False
                if not any(r.get("master-link-status") == "ok" and "s_down" not in r["flags"] for r in replicas):
                    return False
        return True

    def start_hubs(self, database_url: str, redis_url: str) -> None:
        for host in HUBS:
            env = {**HUB_ENV, "EXEKRA_REDIS_URL": redis_url}
            hub = HubProcess(
                database_url,
                self.directory / host,
                HUB_PORT,
                extra_env=env,
                address=self.net.address(host),
                prefix=self.net.prefix(host),
            )
            hub.home.mkdir()
            hub.start()
            self.hubs[host] = hub

    def start_runners(self, api: httpx.Client, label: str) -> None:
        for host in RUNNER_HOSTS:
            for i in range(RUNNERS_PER_HOST):
                name = f"{host}-{i}"
                body = api.post("/api/runners", json={"name": name, "labels": [label]}).json()
                runner = Runner(
                    name,
                    body["runner"]["id"],
                    self.directory / f"{name}.jsonl",
                    self.directory / f"{name}.log",
                    prefix=self.net.prefix(host),
                )
                runner.start(self.lb_url, body["machineKey"], body["machineSecret"], "--work-min", "0.002")
                self.runners.append(runner)

    def runners_ready(self) -> bool:
        return all(any(e["event"] == "ready" for e in runner.events()) for runner in self.runners)

    def leader(self) -> str:
        leading = [host for host, hub in self.hubs.items() if hub.process is not None and health(hub)["leader"]]
        assert len(leading) == 1, leading
        return leading[0]

    def stop(self) -> None:
        for runner in self.runners:
            if runner.process is not None:
                stop_process(runner.process, signal.SIGKILL)
        self.haproxy.stop(signal.SIGKILL)
        for hub in self.hubs.values():
            hub.stop(signal.SIGKILL)
        self.redis.stop()


def test_a_cluster_loses_and_doubles_nothing_through_hub_network_redis_and_postgres_failures(
    cluster_network: Network, server_tmp_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = cluster_network
    cluster = Cluster(net, tmp_path)
    faults = Faults()
    created: dict[int, str] = {}
    stop = threading.Event()
    hosts = (Host(net.address("pg1"), net.prefix("pg1")), Host(net.address("pg2"), net.prefix("pg2")))
    with primary_and_standby(server_tmp_path, hosts) as (primary, standby):
        database = primary.create_database("exekra_cluster")
        upgrade(database)
        local = hub_database = both_hosts(database, primary, standby)
        try:
            redis_url = cluster.start_redis()
            wait_until(cluster.replica_in_sync, 60, 0.2, "the Sentinels to see the replica")
            cluster.start_hubs(f"{hub_database}&connection_limit=10", redis_url)
            cluster.haproxy.start()
            api = httpx.Client(base_url=cluster.lb_url, timeout=10)
            r = api.post("/api/auth/bootstrap", json={"email": "chaos@cluster.test", "password": PASSWORD})
            api.headers["Authorization"] = f"Bearer {r.json()['token']}"
            label = "cluster"
            workflow = api.post("/api/workflows", json={"name": "cluster", "definition": NOOP, "labels": [label]})
            workflow_id = workflow.json()["workflow"]["id"]
            assert api.post(f"/api/workflows/{workflow_id}/publish").status_code == 200
            batches = [[yearly_schedule(api, workflow_id, f"cluster-{b}-{i}") for i in range(SCHEDULES)] for b in "ab"]
            cluster.start_runners(api, label)
            wait_until(cluster.runners_ready, 60, 0.1, "every runner to sign in")

            creators = [
                Background(
                    f"creator-{k}", lambda k=k: create_paced(cluster.lb_url, api.headers, workflow_id, k, created, stop)
                )
                for k in range(CREATORS)
            ]
            began = time.time()
            for creator in creators:
                creator.start()
            inject_faults(cluster, net, faults, local, primary, standby, batches, created)
            for creator in creators:
                creator.finish(EXECUTIONS / RATE * 3 + 300)
            wait_until(lambda: all(schedules_settled(local, b) for b in batches), 120, 0.2, "every schedule to fire")
            wait_until(lambda: all_terminal(local), 600, 0.5, "every execution to end")
            ended = time.time()
            figures = check(cluster, local, created, batches, faults, began, ended)
            with capsys.disabled():
                print(table(figures, faults))
            assert figures["pickup p99 ms (outside faults)"] <= PICKUP_P99_MS, figures
        finally:
            stop.set()
            cluster.stop()


def create_paced(
    url: str, headers: httpx.Headers, workflow_id: str, k: int, created: dict[int, str], stop: threading.Event
) -> None:
    """Create every CREATORS-th execution from k on, at RATE / CREATORS a second (never in bursts: a creator that fell
    behind during an outage goes on at the same pace), retrying each through outages under its idempotency key."""
    step = CREATORS / RATE
    due = time.monotonic() + k / RATE
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for i in range(k, EXECUTIONS, CREATORS):
            stop.wait(max(0.0, due - time.monotonic()))
            execution_id = create_through_outages(client, workflow_id, f"c-{i}", stop)
            if execution_id is None:
                return
            created[i] = execution_id
            due = max(due + step, time.monotonic())


def inject_faults(
    cluster: Cluster,
    net: Network,
    faults: Faults,
    db: str,
    primary: ReplicatedPostgres,
    standby: StandbyPostgres,
    batches: list[list[str]],
    created: dict[int, str],
) -> None:
    def reached(share: float) -> None:
        wait_until(lambda: len(created) >= EXECUTIONS * share, EXECUTIONS / RATE * 3 + 120, 0.2, f"{share:.0%} created")

    reached(0.12)
    leader = cluster.leader()
    begin = time.time()
    make_due(db, batches[0])
    wait_until(lambda: fires(db, batches[0]) > 0, 30, 0.005, "the leader to start firing")
    cluster.hubs[leader].stop(signal.SIGKILL)
    others = [hub for host, hub in cluster.hubs.items() if host != leader]
    wait_until(lambda: any(health(hub)["leader"] for hub in others), 30, 0.05, "another hub to lead")
    cluster.hubs[leader].start()  # the host comes back
    faults.record(f"leader {leader} killed (SIGKILL) while firing, restarted", begin)

    reached(0.35)
    victim = next(h for h in HUBS if h not in (leader, cluster.leader()))  # neither the killed hub nor the leader
    begin = time.time()
    net.cut(victim)
    time.sleep(20)  # the outage itself
    net.restore(victim)
    faults.record(f"{victim}'s link down for 20 s", begin)

    reached(0.55)
    wait_until(cluster.replica_in_sync, 60, 0.2, "every Sentinel to see the replica again")
    old_master = cluster.redis_master()
    begin = time.time()
    with cluster.sentinel("hub1") as sentinel:
        assert sentinel.sentinel_failover(SERVICE)
    wait_until(lambda: cluster.redis_master() != old_master, 60, 0.1, "Sentinel to promote the replica")
    faults.record(f"Redis master failed over ({old_master} -> {cluster.redis_master()})", begin)

    reached(0.75)
    begin = time.time()
    stop_immediately(primary)
    standby.promote()
    make_due(db, batches[1])
    faults.record("PostgreSQL primary stopped (immediate), standby promoted", begin)


def make_due(db: str, trigger_ids: list[str]) -> None:
    sql(
        db,
        "UPDATE triggers SET next_fire_at = date_trunc('second', now()) - interval '1 second'"
        " WHERE id = ANY($1::uuid[])",
        trigger_ids,
    )


def fires(db: str, trigger_ids: list[str]) -> int:
    rows = sql(db, "SELECT count(*) AS n FROM trigger_fires WHERE trigger_id = ANY($1::uuid[])", trigger_ids)
    return int(rows[0]["n"])


def all_terminal(db: str) -> bool:
    rows = fetch(db, "SELECT count(*) FROM executions WHERE status NOT IN ('COMPLETED','FAILED','STOPPED')")
    return rows is not None and rows[0][0] == 0


def check(
    cluster: Cluster,
    db: str,
    created: dict[int, str],
    batches: list[list[str]],
    faults: Faults,
    began: float,
    ended: float,
) -> dict[str, Any]:
    rows = fetch(
        db,
        "SELECT id::text, status, attempt, triggered_by, extract(epoch FROM queued_at)::float8 AS queued,"
        " (extract(epoch FROM assigned_at - queued_at) * 1000)::float8 AS pickup_ms FROM executions",
    )
    assert rows is not None
    fired = {t: n for batch in batches for t, n in schedule_runs(db, batch).items()}
    by_id = {row["id"]: row for row in rows}
    scheduled = [row for row in rows if row["triggered_by"] in fired]
    starts: collections.Counter[str] = collections.Counter()
    completions: collections.Counter[str] = collections.Counter()
    tried: set[str] = set()  # a completion sent (its answer may have been lost in a fault, its retry refused)
    offered: dict[tuple[str, int], set[str]] = collections.defaultdict(set)
    last_fault_end = max(end for _, _, end in faults.windows)
    runners = len(cluster.runners)
    wait_until(lambda: runners_back(db, last_fault_end) == runners, 60, 0.5, "every runner to come back")
    for runner in cluster.runners:
        for event in runner.events():
            if event["event"] == "offer":
                offered[(event["id"], event["attempt"])].add(runner.name)
            if event["event"] == "start" and event["code"] == 200:
                starts[event["id"]] += 1
            if event["event"] == "complete" and event["status"] == "COMPLETED":
                tried.add(event["id"])
                if event["code"] == 200:
                    completions[event["id"]] += 1
    pickups = sorted(
        float(row["pickup_ms"]) for row in rows if row["pickup_ms"] is not None and not faults.inside(row["queued"])
    )
    slow = collections.Counter(
        int((row["queued"] - faults.started) // 10) * 10
        for row in rows
        if row["pickup_ms"] is not None and row["pickup_ms"] > PICKUP_P99_MS and not faults.inside(row["queued"])
    )
    statuses = collections.Counter(row["status"] for row in rows)
    figures: dict[str, Any] = {
        "executions created (API)": len(created),
        "executions by schedules": len(scheduled),
        "rows in the database": len(rows),
        "terminal": sum(statuses[s] for s in TERMINAL),
        "statuses": dict(statuses),
        "started twice (journals)": sum(1 for n in starts.values() if n > 1),
        "completed twice (journals)": sum(1 for n in completions.values() if n > 1),
        "start or completion answer lost, retry refused": sum(1 for i in by_id if not starts[i] or not completions[i]),
        "attempt offered to two runners": sum(1 for holders in offered.values() if len(holders) > 1),
        "attempts > 1": sum(1 for row in rows if row["attempt"] > 1),
        "schedule fires (expected 1 each)": collections.Counter(fired.values()),
        "runners online after the last fault": f"{runners_back(db, last_fault_end)}/{runners}",
        "pickup samples (outside faults)": len(pickups),
        "pickup p50 ms (outside faults)": percentile(pickups, 0.50),
        "pickup p99 ms (outside faults)": percentile(pickups, 0.99),
        f"pickups over {PICKUP_P99_MS:g} ms outside faults, by 10 s": dict(sorted(slow.items())),
        "run seconds": round(ended - began, 1),
    }
    assert len(created) == EXECUTIONS and set(created.values()) <= set(by_id), "an acknowledged execution was lost"
    assert len(rows) == EXECUTIONS + len(scheduled), "an execution was created twice"
    assert statuses == {"COMPLETED": len(rows)}, figures
    assert set(fired.values()) == {1}, "a schedule fired twice or never"
    assert figures["started twice (journals)"] == figures["completed twice (journals)"] == 0, figures
    assert set(by_id) <= tried, "an execution completed that no runner finished"
    assert figures["attempt offered to two runners"] == 0, figures
    return figures


def runners_back(db: str, since: float) -> int:
    """Runners online that have sent a heartbeat since `since` (wall clock)."""
    query = "SELECT count(*) AS n FROM runners WHERE status <> 'OFFLINE' AND last_heartbeat_at > to_timestamp($1)"
    return int(sql(db, query, since)[0]["n"])


def percentile(values: list[float], share: float) -> float:
    if not values:
        return math.nan
    return round(values[min(len(values) - 1, math.ceil(share * len(values)) - 1)], 1)


def table(figures: dict[str, Any], faults: Faults) -> str:
    lines = [
        "",
        f"Chaos cluster: {EXECUTIONS} executions at {RATE:g}/s, 3 hubs, {len(RUNNER_HOSTS) * RUNNERS_PER_HOST} runners",
    ]
    lines += [f"  {begin - faults.started:7.1f}s  {end - begin:5.1f}s  {what}" for what, begin, end in faults.windows]
    lines += [f"  {name:<40} {value}" for name, value in figures.items()]
    return "\n".join(lines)
