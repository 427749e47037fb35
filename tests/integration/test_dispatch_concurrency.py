"""No double assignment under concurrency (SPEC §2.2): many runners, many executions, all at once."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import httpx
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION, OnlineRunner
from .protocol import ProtocolRunner, create_execution, eventually, publish_workflow

RUNNERS = 30
EXECUTIONS = 1000


async def test_thousand_concurrent_executions_on_thirty_runners_each_assigned_once(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "noop", SIMPLE_DEFINITION)
    runners = [await ProtocolRunner.register(admin, client, f"r{i}") for i in range(RUNNERS)]
    for runner in runners:
        assert (await runner.auth()).status_code == 200

    completions: Counter[str] = Counter()
    held_by: dict[str, str] = {}
    done = asyncio.Event()

    async def work(runner: ProtocolRunner) -> None:
        while not done.is_set():
            polled = await runner.poll(wait=1)
            if polled.status_code == 204:
                continue
            execution = polled.json()["execution"]
            eid, attempt = execution["id"], execution["attempt"]
            assert held_by.setdefault(eid, str(runner.runner_id)) == runner.runner_id, "assigned to two runners"
            assert (await runner.start(eid, attempt)).status_code == 200
            assert (await runner.complete(eid, attempt)).status_code == 200
            completions[eid] += 1
            if sum(completions.values()) >= EXECUTIONS:
                done.set()

    async def create(i: int) -> str:
        r = await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {}})
        assert r.status_code == 201, r.text
        return str(r.json()["execution"]["id"])

    workers = [asyncio.create_task(work(r)) for r in runners]
    created = await asyncio.gather(*(create(i) for i in range(EXECUTIONS)))
    await asyncio.wait_for(done.wait(), 120)
    await asyncio.gather(*workers)

    assert len(set(created)) == EXECUTIONS
    assert set(completions) == set(created)
    assert all(n == 1 for n in completions.values()), "an execution was completed twice"
    async with hub.db.session() as session:
        rows = (await session.execute(text("SELECT status, attempt, count(*) FROM executions GROUP BY 1, 2"))).all()
        busy = (
            await session.execute(text("SELECT count(*) FROM runners WHERE current_execution_id IS NOT NULL"))
        ).scalar_one()
    assert rows == [("COMPLETED", 1, EXECUTIONS)]
    assert busy == 0
    # Work was spread over the runners rather than funnelled to one.
    assert len(set(held_by.values())) > RUNNERS // 2


_LOCK_BEST_RUNNER = """
SELECT id FROM runners WHERE status = 'ONLINE' AND enabled AND current_execution_id IS NULL
 ORDER BY last_heartbeat_at DESC NULLS LAST LIMIT 1 FOR UPDATE"""
# The create's match (its runner is the idle one with the freshest sign of life), waiting for a row lock.
_MATCH_WAITING = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND query LIKE '%ORDER BY rn.last_heartbeat_at DESC%'"
)


async def _assigned_runner(hub: Hub, execution_id: str) -> str | None:
    async with hub.db.session() as session:
        row = (
            await session.execute(text("SELECT runner_id FROM executions WHERE id = :id"), {"id": execution_id})
        ).first()
    return None if row is None or row.runner_id is None else str(row.runner_id)


async def test_a_match_takes_another_idle_runner_while_the_best_ones_row_is_locked(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    """Concurrent matches all prefer the runner with the freshest sign of life: while another claim holds its
    row, a match takes the next idle runner at once instead of waiting for that claim's commit."""
    workflow_id = await publish_workflow(admin, "spread", SIMPLE_DEFINITION)
    runners = {r.runner_id: r for r in [await online_runner("a"), await online_runner("b")]}
    await hub.executions.liveness.flush()  # a flush beside the match would hold the other runner's row a moment
    claim = await asyncpg.connect(hub.settings.asyncpg_dsn)
    try:
        async with claim.transaction():  # another claim, holding the best runner's row
            best = str(await claim.fetchval(_LOCK_BEST_RUNNER))
            (other,) = set(runners) - {best}
            execution = await create_execution(admin, workflow_id)

            async def assigned_to_other() -> bool:
                return await _assigned_runner(hub, execution["id"]) == other

            # By the create's match, while the best runner's row stays locked (no poll asks before).
            await eventually(assigned_to_other, 5, "the match to take the other runner")
            await runners[other].take(execution["id"], attempt=1)
    finally:
        await claim.close()


async def test_a_match_waits_for_the_only_idle_runner_whose_row_a_claim_holds(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    """When every eligible runner's row is locked (a poll's claim, which skips the execution this match holds),
    the match waits for the lock and then assigns, rather than both claims missing."""
    workflow_id = await publish_workflow(admin, "wait", SIMPLE_DEFINITION)
    runner = await online_runner("only")
    await hub.executions.liveness.flush()
    claim = await asyncpg.connect(hub.settings.asyncpg_dsn)
    # Sessions are watched from outside the claim's transaction: within one, pg_stat_activity's query texts are
    # those of its first read (only the wait events are live), and a match that began later would show the text
    # of what its connection ran before (the create: the failures of 2026-12-05).
    watcher = await asyncpg.connect(hub.settings.asyncpg_dsn)
    try:
        async with claim.transaction():
            assert str(await claim.fetchval(_LOCK_BEST_RUNNER)) == runner.runner_id
            execution = await create_execution(admin, workflow_id)

            async def match_waits() -> bool:
                return bool(await watcher.fetchval(_MATCH_WAITING))

            await eventually(match_waits, 5, "the create's match to wait for the runner's row")
            assert await _assigned_runner(hub, execution["id"]) is None
        await eventually(
            lambda: _assigned_runner(hub, execution["id"]), 5, "the match to assign once the lock is released"
        )
        assert await _assigned_runner(hub, execution["id"]) == runner.runner_id
        await runner.take(execution["id"], attempt=1)
    finally:
        await claim.close()
        await watcher.close()
