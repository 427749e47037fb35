"""Chaos (SPEC §2, §4): 3,000 executions through 20 runners while runners, the hub, Redis and PostgreSQL fail.

Real processes throughout: a hub (`exekra hub`) on its own embedded PostgreSQL and Redis, and 20
protocol-level runners (`chaos_runner.py`), each journaling every offer, start and completion. During the
run: two runners are killed with SIGKILL while they hold ASSIGNED work and two while RUNNING, the hub is
killed with SIGKILL twice and restarted, Redis is stopped for 10 s, and PostgreSQL is restarted under the
hub (which must reconnect by itself). Then every invariant is checked against the database and the journals,
and a summary table is printed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from exekra.db.migrate import upgrade
from exekra.embedded import EmbeddedPostgres, EmbeddedRedis

from .conftest import (
    FAST_STALE_CHECKS,
    PASSWORD,
    TERMINAL,
    Background,
    HubProcess,
    Runner,
    create_through_outages,
    fetch,
    stop_process,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(900)]

EXECUTIONS = 3000
RUNNERS = 20
CREATORS = 6  # concurrent API clients creating executions
ASSIGNED_VICTIMS = {"chaos-01": 3, "chaos-02": 6}  # runner → the offer it freezes on (holding ASSIGNED)
RUNNING_VICTIMS = {"chaos-03": 40, "chaos-04": 60}  # runner → the start it freezes after (holding RUNNING)
HUB_ENV = {**FAST_STALE_CHECKS, "EXEKRA_PICKUP_TIMEOUT_SECONDS": "6", "EXEKRA_RUNNING_GRACE_SECONDS": "2"}

# One snapshot: a runner holding two live executions, or runner and execution rows disagreeing on who holds what.
_DOUBLE_HOLDS = """
SELECT
  (SELECT count(*) FROM (SELECT runner_id FROM executions WHERE status IN ('ASSIGNED','RUNNING')
                          GROUP BY runner_id HAVING count(*) > 1) d),
  (SELECT count(*) FROM runners r JOIN executions e ON e.id = r.current_execution_id
    WHERE e.runner_id IS DISTINCT FROM r.id OR e.status NOT IN ('ASSIGNED','RUNNING')),
  (SELECT count(*) FROM executions e LEFT JOIN runners r ON r.current_execution_id = e.id
    WHERE e.status IN ('ASSIGNED','RUNNING') AND r.id IS DISTINCT FROM e.runner_id)
"""


@dataclass
class Chaos:
    """What happened, for the summary."""

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.events.append((time.monotonic() - self.started, what))

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        begin = time.monotonic()
        yield
        self.note(f"{what} ({time.monotonic() - begin:.1f} s)")


@pytest.fixture
def postgres(server_tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(server_tmp_path / "pg", throwaway=True) as server:
        yield server


def test_invariants_hold_through_runner_hub_redis_and_postgres_failures(
    postgres: EmbeddedPostgres,
    embedded_redis: Callable[..., EmbeddedRedis],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chaos = Chaos()
    db_url = postgres.create_database("exekra_chaos")
    upgrade(db_url)
    redis = embedded_redis()
    hub = HubProcess(
        f"{db_url}?connection_limit=20",
        tmp_path / "hub",
        extra_env={**HUB_ENV, "EXEKRA_REDIS_URL": redis.url},
    )
    hub.home.mkdir()
    runners: list[Runner] = []
    stop = threading.Event()
    api = httpx.Client(base_url=hub.url, timeout=10)
    try:
        with chaos.step("hub started"):
            hub.start()
        workflow_id = _set_up(api)
        runners = _start_runners(api, hub.url, tmp_path)
        by_name = {r.name: r for r in runners}

        created: dict[int, str] = {}
        creators = [
            Background(
                f"creator-{k}", functools.partial(_create_all, hub.url, api.headers, workflow_id, k, created, stop)
            )
            for k in range(CREATORS)
        ]
        killed: dict[str, dict[str, Any]] = {}
        killer = Background("killer", lambda: _kill_on_hang(by_name, killed, chaos, stop))
        samples = {"samples": 0, "violations": []}
        sampler = Background("sampler", lambda: asyncio.run(_sample(db_url, samples, stop)))
        for thread in (*creators, killer, sampler):
            thread.start()

        def completed_at_least(n: int) -> bool:
            rows = fetch(db_url, "SELECT count(*) FROM executions WHERE status = 'COMPLETED'")
            return rows is not None and rows[0][0] >= n

        wait_until(lambda: completed_at_least(400), 300, 0.2, "400 completed executions")
        with chaos.step("hub killed with SIGKILL and restarted"):
            hub.stop(signal.SIGKILL)
            hub.start()
        wait_until(lambda: completed_at_least(900), 300, 0.2, "900 completed executions")
        with chaos.step("Redis stopped for 10 s and started"):
            redis.stop()
            time.sleep(10)  # the outage itself
            redis.start()
        wait_until(lambda: completed_at_least(1500), 300, 0.2, "1500 completed executions")
        with chaos.step("PostgreSQL restarted"):
            postgres.restart()
        wait_until(lambda: completed_at_least(2100), 300, 0.2, "2100 completed executions")
        with chaos.step("hub killed with SIGKILL and restarted (2nd)"):
            hub.stop(signal.SIGKILL)
            hub.start()
        for creator in creators:
            creator.finish(300)
        chaos.note(f"all {EXECUTIONS} executions created")
        wait_until(lambda: len(killed) == len(ASSIGNED_VICTIMS) + len(RUNNING_VICTIMS), 60, 0.2, "the victims")

        def all_terminal() -> bool:
            rows = fetch(db_url, "SELECT count(*) FROM executions WHERE status NOT IN ('COMPLETED','FAILED','STOPPED')")
            return rows is not None and rows[0][0] == 0

        wait_until(all_terminal, 300, 0.2, "every execution to end")
        chaos.note("every execution terminal")
        stop.set()
        killer.finish(10)
        sampler.finish(10)

        executions = fetch(
            db_url, "SELECT id::text, status, attempt, requeue_count, runner_id::text, error FROM executions"
        )
        audit = fetch(
            db_url,
            "SELECT action || coalesce(': ' || (details->>'reason'), ''), count(*) FROM audit_log"
            " WHERE actor_type = 'SYSTEM' GROUP BY 1",
        )
        holders = fetch(db_url, "SELECT count(*) FROM runners WHERE current_execution_id IS NOT NULL")
        assert executions is not None and audit is not None and holders is not None
        journals = {r.runner_id: r.events() for r in runners}
        with capsys.disabled():
            print(_table(chaos, executions, journals, samples, dict(audit)))
        _check(executions, journals, created, killed, samples, holders[0][0], dict(audit))
        with capsys.disabled():
            print("  invariants: every execution terminal, none completed by two runners, no runner held two,")
            print("  attempt <= 2, every FAILED one carries a reason, no successful execution overwritten: OK")
    finally:
        stop.set()
        for runner in runners:
            if runner.process is not None:
                stop_process(runner.process, signal.SIGKILL)
        hub.stop()
        api.close()


def _set_up(api: httpx.Client) -> str:
    """Sign in as the first admin and publish a no-op workflow; returns its id."""
    token = api.post("/api/auth/bootstrap", json={"email": "chaos@e2e.test", "password": PASSWORD}).json()["token"]
    api.headers["Authorization"] = f"Bearer {token}"
    definition = {"nodes": [{"id": "noop", "activity": "log.message", "params": {"message": "hi"}}], "edges": []}
    workflow_id: str = api.post("/api/workflows", json={"name": "chaos", "definition": definition}).json()["workflow"][
        "id"
    ]
    assert api.post(f"/api/workflows/{workflow_id}/publish").status_code == 200
    return workflow_id


def _start_runners(api: httpx.Client, hub_url: str, directory: Path) -> list[Runner]:
    runners = []
    for i in range(1, RUNNERS + 1):
        name = f"chaos-{i:02d}"
        body = api.post("/api/runners", json={"name": name}).json()
        runner = Runner(name, body["runner"]["id"], directory / f"{name}.jsonl", directory / f"{name}.log")
        extra = ["--work-min", "0.005", "--work-max", "0.03"]
        if name in ASSIGNED_VICTIMS:
            extra += ["--hang-on-offer", str(ASSIGNED_VICTIMS[name])]
        if name in RUNNING_VICTIMS:
            extra += ["--hang-on-start", str(RUNNING_VICTIMS[name])]
        runner.start(hub_url, body["machineKey"], body["machineSecret"], *extra)
        runners.append(runner)
    return runners


def _create_all(
    hub_url: str, headers: httpx.Headers, workflow_id: str, k: int, created: dict[int, str], stop: threading.Event
) -> None:
    """Create every CREATORS-th execution from k on, retrying through outages (the idempotency key makes a
    retry whose first answer was lost harmless)."""
    with httpx.Client(base_url=hub_url, headers=headers, timeout=10) as client:
        for i in range(k, EXECUTIONS, CREATORS):
            execution_id = create_through_outages(client, workflow_id, f"chaos-{i}", stop)
            if execution_id is None:
                return
            created[i] = execution_id


def _kill_on_hang(
    by_name: dict[str, Runner], killed: dict[str, dict[str, Any]], chaos: Chaos, stop: threading.Event
) -> None:
    """SIGKILL each victim the moment it freezes holding work, and remember what it held."""
    victims = set(ASSIGNED_VICTIMS) | set(RUNNING_VICTIMS)
    while victims - set(killed) and not stop.is_set():
        for name in victims - set(killed):
            hang = [e for e in by_name[name].events() if e["event"] == "hang"]
            if hang:
                by_name[name].kill()
                killed[name] = hang[0]
                chaos.note(f"runner {name} killed with SIGKILL holding {hang[0]['status']} {hang[0]['id'][:8]}")
        time.sleep(0.05)


async def _sample(db_url: str, samples: dict[str, Any], stop: threading.Event) -> None:
    """Check, several times a second, that no runner holds two executions and runner rows agree."""
    connection: asyncpg.Connection | None = None
    while not stop.is_set():
        try:
            connection = connection or await asyncpg.connect(db_url, timeout=2)
            row = await connection.fetchrow(_DOUBLE_HOLDS)
            samples["samples"] += 1
            if row is not None and any(row):
                samples["violations"].append(tuple(row))
        except Exception:  # PostgreSQL restarting: any failure means a new connection
            if connection is not None:
                connection.terminate()
            connection = None
        await asyncio.sleep(0.2)
    if connection is not None:
        await connection.close()


def _check(
    executions: list[asyncpg.Record],
    journals: dict[str, list[dict[str, Any]]],
    created: dict[int, str],
    killed: dict[str, dict[str, Any]],
    samples: dict[str, Any],
    holders: int,
    audit: dict[str, int],
) -> None:
    rows = {row["id"]: row for row in executions}
    assert len(rows) == EXECUTIONS and set(created.values()) == set(rows), "executions lost or created twice"
    assert all(row["status"] in TERMINAL for row in rows.values()), "an execution is not terminal"
    assert holders == 0, "a runner still holds an execution"
    assert samples["samples"] > 50 and samples["violations"] == [], samples["violations"][:5]

    offered: dict[tuple[str, int], set[str]] = collections.defaultdict(set)
    completed_ok: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    completion_tries: set[tuple[str, str, int]] = set()
    for runner_id, events in journals.items():
        for event in events:
            if event["event"] == "offer":
                offered[(event["id"], event["attempt"])].add(runner_id)
            if event["event"] == "complete" and event["status"] == "COMPLETED":
                completion_tries.add((runner_id, event["id"], event["attempt"]))
                if event["code"] == 200:
                    completed_ok[event["id"]].append((runner_id, event["attempt"]))
    assert all(len(holders) == 1 for holders in offered.values()), "one attempt offered to two runners"
    assert all(len(done) == 1 for done in completed_ok.values()), "an execution completed by two runners"
    for execution_id, [(runner_id, attempt)] in completed_ok.items():
        row = rows[execution_id]
        assert (row["status"], row["runner_id"], row["attempt"]) == ("COMPLETED", runner_id, attempt), "overwritten"
    for row in rows.values():
        assert row["attempt"] <= 2 and row["requeue_count"] <= 1, f"attempt {row['attempt']} of {row['id']}"
        if row["status"] == "FAILED":
            assert row["error"], f"FAILED without a reason: {row['id']}"
        if row["status"] == "COMPLETED":
            assert (row["runner_id"], row["id"], row["attempt"]) in completion_tries, "completed by nobody"

    for name in ASSIGNED_VICTIMS:
        held = rows[killed[name]["id"]]
        assert killed[name]["status"] == "ASSIGNED" and held["requeue_count"] == 1, dict(held)
        assert held["attempt"] == 2 or held["status"] == "FAILED", dict(held)
    for name in RUNNING_VICTIMS:
        held = rows[killed[name]["id"]]
        assert (held["status"], held["error"]) == ("FAILED", "runner lost"), dict(held)
    assert sum(n for action, n in audit.items() if action.startswith("execution.requeue")) >= len(ASSIGNED_VICTIMS)
    assert audit.get("execution.runner_lost: runner lost", 0) >= len(RUNNING_VICTIMS)


def _table(
    chaos: Chaos,
    executions: list[asyncpg.Record],
    journals: dict[str, list[dict[str, Any]]],
    samples: dict[str, Any],
    audit: dict[str, int],
) -> str:
    statuses = collections.Counter(row["status"] for row in executions)
    attempts = collections.Counter(row["attempt"] for row in executions)
    reasons = collections.Counter(row["error"] for row in executions if row["status"] == "FAILED")
    requeued = sum(1 for row in executions if row["requeue_count"])
    steps = collections.Counter(
        (e["event"], e.get("code")) for events in journals.values() for e in events if e["event"] != "ready"
    )
    lines = [
        "",
        f"Chaos run: {EXECUTIONS} executions, {RUNNERS} runners, {time.monotonic() - chaos.started:.1f} s",
        "  when      event",
        *(f"  {at:7.1f}s  {what}" for at, what in chaos.events),
        "  status      count",
        *(f"  {status:<10} {count:6d}" for status, count in sorted(statuses.items())),
        *(f"    FAILED: {reason!r}: {count}" for reason, count in reasons.most_common()),
        f"  attempts    {dict(sorted(attempts.items()))}; re-queued {requeued}",
        "  SYSTEM actions (with reasons)",
        *(f"    {action}: {count}" for action, count in sorted(audit.items())),
        "  runner journal (step, answer): "
        + ", ".join(f"{event} {code or ''}".strip() + f" {n}" for (event, code), n in sorted(steps.items(), key=str)),
        f"  double-hold samples {samples['samples']}, violations {len(samples['violations'])}",
    ]
    return "\n".join(lines)
