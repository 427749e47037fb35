"""The claims' plans stay right when the statistics are stale (bench/RESULTS.md, 2026-12-06 07:58).

The hub runs its statements prepared, so PostgreSQL soon keeps one generic plan per statement and connection,
made with the statistics of that moment. Here the plan is made while no execution is QUEUED, then a backlog
arrives that neither the plan nor the statistics know of. A claim must still read one execution and one runner:
not the whole backlog, nor every idle runner.

The statistics are those of a hub that has run for a while (3,000 ended executions), or of a new one (20 ended
executions, 100 runners). A plan made while the tables were nearly empty reads whole tables once they have grown,
until an analysis of the grown tables makes PostgreSQL plan again: the hub makes one within seconds
(`exekra.db.planner`), without waiting for autovacuum's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import TextClause, text

from exekra.db.planner import analyse_young_tables
from exekra.hub import lifecycle
from exekra.hub.context import Hub
from tests.integration.conftest import SIMPLE_DEFINITION
from tests.integration.protocol import eventually, publish_workflow

ENDED = 3000
BACKLOG = 1500
IDLE_RUNNERS = 5000
NEW_HUB_ENDED = 20
NEW_HUB_RUNNERS = 100

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


async def _analysed(hub: Hub, admin: httpx.AsyncClient, ended: int, runners: int) -> uuid.UUID:
    """A workflow with `ended` ended executions and `runners` idle runners, all in the statistics."""
    workflow = uuid.UUID(await publish_workflow(admin, "backlog", SIMPLE_DEFINITION))
    async with hub.db.transaction() as session:
        await session.execute(_INSERT_EXECUTIONS, {"status": "COMPLETED", "count": ended, "workflow": workflow})
        await session.execute(_INSERT_RUNNERS, {"count": runners})
    async with hub.db.session() as session:
        await (await session.connection()).exec_driver_sql("ANALYZE executions, runners")
    return workflow


@pytest.fixture
async def workflow_id(hub: Hub, admin: httpx.AsyncClient) -> uuid.UUID:
    return await _analysed(hub, admin, ENDED, IDLE_RUNNERS)


@pytest.fixture
async def new_hub_workflow_id(hub: Hub, admin: httpx.AsyncClient) -> uuid.UUID:
    return await _analysed(hub, admin, NEW_HUB_ENDED, NEW_HUB_RUNNERS)


async def _rows_read(
    hub: Hub,
    workflow_id: uuid.UUID,
    claim: TextClause,
    target: str,
    then: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, float]:
    """Rows of `executions` and `runners` that `claim` read for `target` ("execution": a queued one;
    "runner": an idle runner), by the generic plan it made before a backlog of `BACKLOG` arrived (and `then` ran).
    The claim runs (EXPLAIN ANALYZE) and is rolled back."""
    sql = hub.db.statement_cache.get(claim).sql
    name = f"claim_{uuid.uuid4().hex}"  # prepared on a pooled connection: a name of its own, deallocated after
    async with hub.db.engine.connect() as pooled:
        # On the driver, each statement in a transaction of its own, as the hub runs its claims: at its start the
        # connection takes in what changed meanwhile (an analysis), which its next statement may plan again for.
        claims = (await pooled.get_raw_connection()).driver_connection
        await claims.execute("SET plan_cache_mode = force_generic_plan")
        await claims.execute(f"PREPARE {name} AS {sql}")
        await claims.execute(f"EXECUTE {name}('{uuid.uuid4()}')")  # made now, as a hub's connection does
        async with hub.db.transaction() as other:
            await other.execute(_INSERT_EXECUTIONS, {"status": "QUEUED", "count": BACKLOG, "workflow": workflow_id})
            table = "executions WHERE status = 'QUEUED'" if target == "execution" else "runners"
            ident = (await other.execute(text(f"SELECT id FROM {table} LIMIT 1"))).scalar()
        if then is not None:
            await then()
        claiming = claims.transaction()
        await claiming.start()
        try:
            found = await claims.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}('{ident}')")
        finally:
            await claiming.rollback()  # never committed
            await claims.execute(f"DEALLOCATE {name}")  # the connection goes back to the pool as it came
            await claims.execute("RESET plan_cache_mode")
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


async def _analysis_of_the_grown_executions(hub: Hub) -> None:
    """What the leader does every few seconds (`exekra.db.planner`), once PostgreSQL's statistics collector has
    counted the backlog's rows (each backend reports them within about a second of its commit)."""

    async def executions_analysed() -> bool:
        return "executions" in await analyse_young_tables(hub.db)

    await eventually(executions_analysed, 30, "the statistics of the grown executions table")


@pytest.mark.parametrize(
    ("claim", "target"),
    [(lifecycle._CLAIM_FOR_RUNNER, "runner"), (lifecycle._ASSIGN_TO_BEST_RUNNER, "execution")],
    ids=["for-an-idle-runner", "for-a-new-execution"],
)
async def test_a_new_hubs_claims_read_one_execution_once_the_grown_tables_are_analysed(
    hub: Hub, new_hub_workflow_id: uuid.UUID, claim: TextClause, target: str
) -> None:
    read = await _rows_read(hub, new_hub_workflow_id, claim, target, lambda: _analysis_of_the_grown_executions(hub))
    # The runners, 100 rows on one page, are read whole by plans that rightly prefer it to an index.
    assert read["executions"] == 2


async def test_a_plan_made_on_a_new_hubs_tables_reads_the_whole_backlog_until_they_are_analysed(
    hub: Hub, new_hub_workflow_id: uuid.UUID
) -> None:
    """Why `exekra.db.planner` is needed: the same claim without the analysis."""
    read = await _rows_read(hub, new_hub_workflow_id, lifecycle._CLAIM_FOR_RUNNER, "runner")
    assert read["executions"] > BACKLOG
