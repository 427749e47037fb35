"""The concurrency limit holds across hub processes (docs/queue.md, "Concurrency limits").

Two real hub processes share one PostgreSQL: one dispatches through Redis, the other straight from PostgreSQL.
Protocol-level runners (`chaos_runner.py`) poll both. Executions of a workflow limited to 3 are created through
both hubs at once, while random ones are stopped (queued, assigned or running) and runners die holding work (an
ASSIGNED one, re-queued by the pick-up check; a RUNNING one, failed as "runner lost"). Every few milliseconds a
sampler reads, in one snapshot, how many of the workflow's executions are ASSIGNED or RUNNING and which executions
hold its slots. Then: the count never exceeded 3 (and reached it), the slot holders were always exactly the live
executions, every execution is terminal, none lost, none created twice, no attempt offered to two runners and none
completed twice.

The default suite runs 200 executions; `make chaos` runs 1,000.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
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
from exekra.embedded import EmbeddedRedis, create_database, drop_database

from .conftest import (
    FAST_STALE_CHECKS,
    PASSWORD,
    TERMINAL,
    Background,
    HubProcess,
    Runner,
    fetch_rows,
    stop_process,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LIMIT = 3
RUNNERS = 10  # half poll each hub
CREATORS = 4  # concurrent API clients, alternating between the hubs
STOP_EVERY = 12  # about one execution in this many is stopped, at a random moment of its life
# The runner that first reaches its HANG_ON_OFFER-th offer freezes holding it ASSIGNED, the one that first reaches its
# HANG_ON_START-th start freezes holding it RUNNING; each is then killed. Any runner may be the one: with a limit of 3,
# a few runners do most of the work (a runner that completes is polling again when its slot frees), so a runner
# chosen beforehand may get no offer at all.
HANG_ON_OFFER, HANG_ON_START = 2, 3
HUB_ENV = {**FAST_STALE_CHECKS, "EXEKRA_PICKUP_TIMEOUT_SECONDS": "4", "EXEKRA_RUNNING_GRACE_SECONDS": "1"}

# One snapshot: the workflow's live executions, and the executions its slots say are live.
_SAMPLE = """
SELECT ARRAY(SELECT id FROM executions WHERE workflow_id = $1 AND status IN ('ASSIGNED','RUNNING')) AS live,
       coalesce((SELECT holders FROM concurrency_slots WHERE workflow_id = $1 AND key = ''), '{}') AS holders,
       EXISTS (SELECT 1 FROM executions WHERE workflow_id = $1 AND status = 'QUEUED') AS waiting
"""


@dataclass
class Samples:
    count: int = 0
    highest: int = 0
    over_limit: list[int] = field(default_factory=list)
    mismatches: list[tuple[int, int]] = field(default_factory=list)  # (live, holders) when they differ
    slot_free_while_waiting: int = 0  # samples with a free slot while executions waited (a slot between holders)


@pytest.fixture
def limit_database_url(pg_server_url: str) -> Iterator[str]:
    name = "exekra_limits_property"
    url = create_database(pg_server_url, name)
    upgrade(url)
    yield url
    drop_database(pg_server_url, name)


@pytest.mark.parametrize("executions", [200, pytest.param(1000, marks=pytest.mark.chaos)])
def test_the_limit_is_never_exceeded_across_two_hub_processes(
    executions: int,
    limit_database_url: str,
    embedded_redis: Callable[..., EmbeddedRedis],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    redis = embedded_redis()
    hubs = [
        HubProcess(limit_database_url, tmp_path / "hub-redis", extra_env={**HUB_ENV, "EXEKRA_REDIS_URL": redis.url}),
        HubProcess(limit_database_url, tmp_path / "hub-direct", extra_env=HUB_ENV),
    ]
    runners: list[Runner] = []
    stop = threading.Event()
    try:
        for hub in hubs:
            hub.home.mkdir()
            hub.start()
        headers, workflow_id = _set_up(hubs[0].url)
        runners = _start_runners(hubs, headers, tmp_path)
        created: dict[int, str] = {}
        samples = Samples()
        began = time.monotonic()
        killed: dict[str, dict[str, Any]] = {}
        threads = [
            *(
                Background(f"creator-{k}", lambda k=k: _create(hubs, headers, workflow_id, executions, k, created))
                for k in range(CREATORS)
            ),
            Background("stopper", lambda: _stop_some(hubs, headers, created, executions, stop)),
            Background("killer", lambda: _kill_on_hang(runners, killed, stop)),
            Background("sampler", lambda: asyncio.run(_sample(limit_database_url, workflow_id, samples, stop))),
        ]
        for thread in threads:
            thread.start()
        for creator in threads[:CREATORS]:
            creator.finish(300)

        def all_terminal() -> bool:
            return _count(limit_database_url, "status NOT IN ('COMPLETED','FAILED','STOPPED')") == 0

        wait_until(all_terminal, 300, 0.2, "every execution to end")
        stop.set()
        for thread in threads[CREATORS:]:
            thread.finish(30)
        elapsed = time.monotonic() - began

        rows = asyncio.run(fetch_rows(limit_database_url, "SELECT id::text, status, attempt, error FROM executions"))
        slots = asyncio.run(
            fetch_rows(limit_database_url, "SELECT cardinality(holders) AS held FROM concurrency_slots")
        )
        journals = {r.runner_id: r.events() for r in runners}
        statuses = collections.Counter(row["status"] for row in rows)
        with capsys.disabled():
            print(
                f"\nconcurrency limit {LIMIT}, {executions} executions, 2 hub processes (Redis + direct), "
                f"{RUNNERS} runners: {elapsed:.1f} s from the first create to the last end; {samples.count} samples, "
                f"highest running {samples.highest}, a slot free while executions waited in "
                f"{samples.slot_free_while_waiting / max(samples.count, 1):.1%} of them; "
                f"{dict(sorted(statuses.items()))}; runners killed holding {[k['status'] for k in killed.values()]}"
            )

        assert samples.count > 100 and samples.over_limit == [], samples.over_limit[:5]
        assert samples.highest == LIMIT, "the limit was never reached: the test proves nothing"
        assert samples.mismatches == [], samples.mismatches[:5]
        assert len(rows) == executions and {row["id"] for row in rows} == set(created.values()), "lost or doubled"
        assert all(row["status"] in TERMINAL for row in rows)
        assert all(slot["held"] == 0 for slot in slots), "a slot is still held"
        assert statuses["STOPPED"] > 0 and statuses["COMPLETED"] > executions / 2
        assert {k["status"] for k in killed.values()} == {"ASSIGNED", "RUNNING"}
        _check_journals(journals)
    finally:
        stop.set()
        for runner in runners:
            if runner.process is not None:
                stop_process(runner.process)
        for hub in hubs:
            hub.stop()


def _set_up(hub_url: str) -> tuple[dict[str, str], str]:
    with httpx.Client(base_url=hub_url, timeout=10) as api:
        token = api.post("/api/auth/bootstrap", json={"email": "limits@e2e.test", "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        definition = {"nodes": [{"id": "noop", "activity": "log.message", "params": {"message": "hi"}}], "edges": []}
        body = {"name": "limited", "definition": definition, "maxConcurrent": LIMIT}
        workflow_id: str = api.post("/api/workflows", json=body, headers=headers).json()["workflow"]["id"]
        assert api.post(f"/api/workflows/{workflow_id}/publish", headers=headers).status_code == 200
    return headers, workflow_id


def _start_runners(hubs: list[HubProcess], headers: dict[str, str], directory: Path) -> list[Runner]:
    runners = []
    with httpx.Client(base_url=hubs[0].url, headers=headers, timeout=10) as api:
        for i in range(1, RUNNERS + 1):
            name = f"limit-{i:02d}"
            body = api.post("/api/runners", json={"name": name}).json()
            runner = Runner(name, body["runner"]["id"], directory / f"{name}.jsonl", directory / f"{name}.log")
            extra = ["--work-min", "0.005", "--work-max", "0.03", "--hang-claims", str(directory)]
            extra += ["--hang-on-offer", str(HANG_ON_OFFER), "--hang-on-start", str(HANG_ON_START)]
            runner.start(hubs[i % 2].url, body["machineKey"], body["machineSecret"], *extra)
            runners.append(runner)
    return runners


def _create(
    hubs: list[HubProcess], headers: dict[str, str], workflow_id: str, total: int, k: int, created: dict[int, str]
) -> None:
    """Create every CREATORS-th execution from k on, alternating between the hubs."""
    clients = [httpx.Client(base_url=hub.url, headers=headers, timeout=10) for hub in hubs]
    try:
        for i in range(k, total, CREATORS):
            r = clients[i % 2].post("/api/executions", json={"workflowId": workflow_id, "idempotencyKey": f"l-{i}"})
            assert r.status_code == 201, r.text
            created[i] = r.json()["execution"]["id"]
    finally:
        for client in clients:
            client.close()


def _stop_some(
    hubs: list[HubProcess], headers: dict[str, str], created: dict[int, str], total: int, stop: threading.Event
) -> None:
    """Stop about one execution in STOP_EVERY, chosen at random among those created so far, whatever its state."""
    clients = itertools.cycle([httpx.Client(base_url=hub.url, headers=headers, timeout=10) for hub in hubs])
    pick = random.Random(18)
    stopped = 0
    while stopped < total // STOP_EVERY and not stop.is_set():
        if created:
            execution_id = created[pick.choice(list(created))]
            assert next(clients).post(f"/api/executions/{execution_id}/stop").status_code in (200, 409)
            stopped += 1
        time.sleep(0.02)


def _kill_on_hang(runners: list[Runner], killed: dict[str, dict[str, Any]], stop: threading.Event) -> None:
    """SIGKILL each of the two victims the moment it freezes holding work."""
    while len(killed) < 2 and not stop.is_set():
        for runner in runners:
            hang = [e for e in runner.events() if e["event"] == "hang"]
            if hang and runner.name not in killed:
                runner.kill()
                killed[runner.name] = hang[0]
        time.sleep(0.05)


async def _sample(db_url: str, workflow_id: str, samples: Samples, stop: threading.Event) -> None:
    connection = await asyncpg.connect(db_url)
    try:
        while not stop.is_set():
            row = await connection.fetchrow(_SAMPLE, workflow_id)
            assert row is not None
            live, holders = set(row["live"]), set(row["holders"])
            samples.count += 1
            samples.highest = max(samples.highest, len(live))
            if len(live) > LIMIT:
                samples.over_limit.append(len(live))
            if live != holders:
                samples.mismatches.append((len(live), len(holders)))
            if row["waiting"] and len(live) < LIMIT:
                samples.slot_free_while_waiting += 1
            await asyncio.sleep(0.002)
    finally:
        await connection.close()


def _count(db_url: str, where: str) -> int:
    return int(asyncio.run(fetch_rows(db_url, f"SELECT count(*) AS n FROM executions WHERE {where}"))[0]["n"])


def _check_journals(journals: dict[str, list[dict[str, Any]]]) -> None:
    offered: dict[tuple[str, int], set[str]] = collections.defaultdict(set)
    completed: collections.Counter[str] = collections.Counter()
    for runner_id, events in journals.items():
        for event in events:
            if event["event"] == "offer":
                offered[(event["id"], event["attempt"])].add(runner_id)
            if event["event"] == "complete" and event["code"] == 200:
                completed[event["id"]] += 1
    assert all(len(holders) == 1 for holders in offered.values()), "one attempt offered to two runners"
    assert all(n == 1 for n in completed.values()), "an execution completed twice"
