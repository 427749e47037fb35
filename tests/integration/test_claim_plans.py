"""The claims' plans stay right when the statistics are stale (bench/RESULTS.md, 2026-12-06 07:58).

The hub runs its statements prepared, so PostgreSQL soon keeps one generic plan per statement and connection,
made with the statistics of that moment. Here the plan is made while no execution is QUEUED, then a backlog
arrives that neither the plan nor the statistics know of. A claim must still read one execution and one runner:
not the whole backlog, nor every idle runner.

The statistics here are those of a hub that has run for a while (3,000 ended executions). A plan made while the
tables were nearly empty, in a hub's first minute, may still read whole tables (it did with 20 or 100 ended
executions), until autovacuum's first analysis of the grown tables makes PostgreSQL plan again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import TextClause, text

from exekra.hub import lifecycle
from exekra.hub.context import Hub
from tests.integration.conftest import SIMPLE_DEFINITION
from tests.integration.protocol import publish_workflow

ENDED = 3000
BACKLOG = 1500
IDLE_RUNNERS = 5000

_INSERT_EXECUTIONS = text(
    "INSERT INTO executions (id, workflow_id, version_id, status, priority, trigger_type)"
    " SELECT gen_random_uuid(), w.id, v.id, :status, 5, 'API'"
    " FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.published,"
    " generate_series(1, :count) WHERE w.id = :workflow"
)
_INSERT_RUNNERS = text(
    "INSERT INTO runners (id, name, machine_key, secret_hash, status, last_heartbeat_at)"
    " SELECT gen_random_uuid(), 'idle-' || n, 'key-' || n, 'x', 'ONLINE', now() - n * interval '1 s'"
    " FROM generate_series(1, :count) AS n"
)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@pytest.fixture
async def workflow_id(hub: Hub, admin: httpx.AsyncClient) -> uuid.UUID:
    """A workflow with `ENDED` ended executions and `IDLE_RUNNERS` idle runners, all in the statistics."""
    workflow = uuid.UUID(await publish_workflow(admin, "backlog", SIMPLE_DEFINITION))
    async with hub.db.transaction() as session:
        await session.execute(_INSERT_EXECUTIONS, {"status": "COMPLETED", "count": ENDED, "workflow": workflow})
        await session.execute(_INSERT_RUNNERS, {"count": IDLE_RUNNERS})
    async with hub.db.session() as session:
        await (await session.connection()).exec_driver_sql("ANALYZE executions, runners")
    return workflow


async def _rows_read(hub: Hub, workflow_id: uuid.UUID, claim: TextClause, target: str) -> dict[str, float]:
    """Rows of `executions` and `runners` that `claim` read for `target` ("execution": a queued one;
    "runner": an idle runner), by the generic plan it made before a backlog of `BACKLOG` arrived. The claim runs
    (EXPLAIN ANALYZE) and is rolled back."""
    sql = hub.db.statement_cache.get(claim).sql
    name = f"claim_{uuid.uuid4().hex}"  # prepared on a pooled connection: a name of its own, deallocated after
    async with hub.db.session() as session:  # never committed
        claims = await session.connection()
        await claims.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await claims.exec_driver_sql(f"PREPARE {name} AS {sql}")
        await claims.exec_driver_sql(f"EXECUTE {name}('{uuid.uuid4()}')")  # made now, as a hub's connection does
        async with hub.db.transaction() as other:
            await other.execute(_INSERT_EXECUTIONS, {"status": "QUEUED", "count": BACKLOG, "workflow": workflow_id})
            table = "executions WHERE status = 'QUEUED'" if target == "execution" else "runners"
            ident = (await other.execute(text(f"SELECT id FROM {table} LIMIT 1"))).scalar()
        explained = await claims.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}('{ident}')")
        found = explained.scalar()
        await claims.exec_driver_sql(f"DEALLOCATE {name}")  # the connection goes back to the pool as it came
        await claims.exec_driver_sql("RESET plan_cache_mode")
    plan = json.loads(found) if isinstance(found, str) else found
    assert plan[0]["Plan"]["Actual Rows"] == 1, "the claim assigned an execution"
    read = {"executions": 0.0, "runners": 0.0}
    for node in _nodes(plan[0]["Plan"]):
        if node.get("Relation Name") in read and "Scan" in node["Node Type"]:
            rows = (
                node["Actual Rows"]
                + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)
            )
            read[node["Relation Name"]] += rows * node["Actual Loops"]
    return read


async def test_a_claim_for_a_new_execution_reads_that_execution_and_the_first_idle_runner(
    hub: Hub, workflow_id: uuid.UUID
) -> None:
    read = await _rows_read(hub, workflow_id, lifecycle._ASSIGN_TO_BEST_RUNNER, "execution")
    # The execution: its look and its update, by key. The runner: the first in the index's order, and its update.
    assert read == {"executions": 2, "runners": 2}


async def test_a_claim_for_an_idle_runner_reads_that_runner_and_the_head_of_the_queue(
    hub: Hub, workflow_id: uuid.UUID
) -> None:
    read = await _rows_read(hub, workflow_id, lifecycle._CLAIM_FOR_RUNNER, "runner")
    assert read == {"executions": 2, "runners": 2}
