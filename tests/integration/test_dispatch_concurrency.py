"""No double assignment under concurrency (SPEC §2.2): many runners, many executions, all at once."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION
from .protocol import ProtocolRunner, publish_workflow

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
