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

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import TextClause, text

from exekra.db.planner import analyse_grown_tables
from exekra.hub import lifecycle
from exekra.hub.context import Hub
from exekra.hub.maintenance import Maintenance
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


@pytest.fixture(scope="module", autouse=True)
async def only_these_analyses(hub_app: FastAPI) -> AsyncIterator[None]:
    """The tests' own: the hub's leader work (its analyses among it) and autovacuum analyse nothing meanwhile."""
    hub: Hub = hub_app.state.hub
    assert hub.leader is not None
    await hub.leader.stop()  # until it starts again: no lease renewal can make it lead meanwhile
    async with hub.db.transaction() as session:
        await session.execute(text("ALTER TABLE executions SET (autovacuum_enabled = off)"))
        await session.execute(text("ALTER TABLE runners SET (autovacuum_enabled = off)"))
    yield
    async with hub.db.transaction() as session:
        await session.execute(text("ALTER TABLE executions RESET (autovacuum_enabled)"))
        await session.execute(text("ALTER TABLE runners RESET (autovacuum_enabled)"))
    await hub.leader.start()


async def _analysed(hub: Hub, admin: httpx.AsyncClient, ended: int, runners: int) -> uuid.UUID:
    """A workflow with `ended` ended executions and `runners` idle runners, all in the statistics."""
    workflow = uuid.UUID(await publish_workflow(admin, "backlog", SIMPLE_DEFINITION))
    inserted = {table: await _stat(hub, table, "n_tup_ins") for table in ("executions", "runners")}
    async with hub.db.transaction() as session:
        await session.execute(_INSERT_EXECUTIONS, {"status": "COMPLETED", "count": ended, "workflow": workflow})
        await session.execute(_INSERT_RUNNERS, {"count": runners})
    # Counted before the analysis: counted after it, the rows would be counted twice, and the table taken as grown.
    await _counted(hub, "executions", "n_tup_ins", inserted["executions"] + ended)
    await _counted(hub, "runners", "n_tup_ins", inserted["runners"] + runners)
    async with hub.db.transaction() as session:  # committed: a rolled-back analysis leaves no statistics
        await session.execute(text("ANALYZE executions, runners"))
    return workflow


async def _stat(hub: Hub, table: str, column: str) -> float:
    """A figure of the table's row in `pg_stat_user_tables`."""
    async with hub.db.session() as session:  # a transaction of its own: the statistics as they are now
        query = text(f"SELECT {column} FROM pg_stat_user_tables WHERE relname = :table")
        return float((await session.execute(query, {"table": table})).scalar_one())


async def _counted(hub: Hub, table: str, column: str, at_least: float) -> None:
    """Until PostgreSQL's statistics count what a commit did (a backend reports within a second, or up to 10 s when
    it has just reported)."""

    async def counted() -> bool:
        return await _stat(hub, table, column) >= at_least

    await eventually(counted, 30, f"{column} of {table} to reach {at_least}")


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
    # A connection of its own, on the driver, each statement in a transaction of its own as the hub runs its claims:
    # at its start the connection takes in what changed meanwhile (an analysis), which its next statement may plan
    # again for.
    claims = await asyncpg.connect(hub.settings.asyncpg_dsn)
    try:
        await claims.execute("SET plan_cache_mode = force_generic_plan")
        await claims.execute(f"PREPARE claim AS {sql}")
        await claims.execute(f"EXECUTE claim('{uuid.uuid4()}')")  # made now, as a hub's connection does
        async with hub.db.transaction() as other:
            await other.execute(_INSERT_EXECUTIONS, {"status": "QUEUED", "count": BACKLOG, "workflow": workflow_id})
            table = "executions WHERE status = 'QUEUED'" if target == "execution" else "runners"
            ident = (await other.execute(text(f"SELECT id FROM {table} LIMIT 1"))).scalar()
        if then is not None:
            await then()
        claiming = claims.transaction()
        await claiming.start()
        try:
            found = await claims.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim('{ident}')")
        finally:
            await claiming.rollback()  # the claim is never committed
    finally:
        await claims.close()
    plan = json.loads(found)
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
    """What the leader does every few seconds (`exekra.db.planner`), once the backlog's rows are counted."""

    async def analysed() -> bool:  # nothing else analyses it here (`only_these_analyses`)
        return "executions" in await analyse_grown_tables(hub.db)

    await eventually(analysed, 30, "the analysis of the grown executions table")


@pytest.mark.parametrize(
    ("claim", "target"),
    [(lifecycle._CLAIM_FOR_RUNNER, "runner"), (lifecycle._ASSIGN_TO_BEST_RUNNER, "execution")],
    ids=["for-an-idle-runner", "for-a-new-execution"],
)
async def test_a_new_hubs_claims_read_one_execution_once_the_grown_table_is_analysed(
    hub: Hub, new_hub_workflow_id: uuid.UUID, claim: TextClause, target: str
) -> None:
    read = await _rows_read(hub, new_hub_workflow_id, claim, target, lambda: _analysis_of_the_grown_executions(hub))
    # The runners, 100 rows on one page, are read whole by plans that rightly prefer it to an index.
    assert read["executions"] == 2


async def test_a_plan_made_on_a_new_hubs_tables_reads_the_whole_backlog_until_they_are_analysed(
    hub: Hub, new_hub_workflow_id: uuid.UUID
) -> None:
    """Why `exekra.db.planner` is needed: the runner's claim without the analysis."""
    read = await _rows_read(hub, new_hub_workflow_id, lifecycle._CLAIM_FOR_RUNNER, "runner")
    assert read["executions"] > BACKLOG


async def test_only_tables_that_grew_while_young_are_analysed(hub: Hub, new_hub_workflow_id: uuid.UUID) -> None:
    """Growth, not churn: the runners' rows rewritten (as every sign of life does) leave them unanalysed; a table
    whose last analysis counted `young` rows or more is left to autovacuum."""
    updated = await _stat(hub, "runners", "n_tup_upd")
    inserted = await _stat(hub, "executions", "n_tup_ins")
    async with hub.db.transaction() as session:  # one commit: its counts are reported together
        for _ in range(5):
            await session.execute(text("UPDATE runners SET last_heartbeat_at = now()"))
        await session.execute(_INSERT_EXECUTIONS, {"status": "QUEUED", "count": 100, "workflow": new_hub_workflow_id})
    await _counted(hub, "runners", "n_tup_upd", updated + 5 * NEW_HUB_RUNNERS)
    await _counted(hub, "executions", "n_tup_ins", inserted + 100)
    assert await analyse_grown_tables(hub.db, young=NEW_HUB_ENDED) == []
    assert await _statuses_known(hub) == ["COMPLETED"]
    assert await analyse_grown_tables(hub.db) == ["executions"]
    assert await _statuses_known(hub) == ["COMPLETED", "QUEUED"]  # the analysis committed
    assert await analyse_grown_tables(hub.db) == []  # analysed: no longer grown


async def _statuses_known(hub: Hub) -> list[str]:
    """The statuses PostgreSQL's column statistics know of (`pg_stats` is transactional: a rolled-back analysis
    leaves it as it was, where the row counts are written in place)."""
    query = "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'executions' AND attname = 'status'"
    async with hub.db.session() as session:
        known = (await session.execute(text(query))).scalar_one()
    return sorted(known.strip("{}").split(","))


async def test_a_locked_table_is_left_for_the_next_look(hub: Hub, new_hub_workflow_id: uuid.UUID) -> None:
    inserted = await _stat(hub, "executions", "n_tup_ins")
    async with hub.db.transaction() as session:
        await session.execute(_INSERT_EXECUTIONS, {"status": "QUEUED", "count": 100, "workflow": new_hub_workflow_id})
    await _counted(hub, "executions", "n_tup_ins", inserted + 100)
    analyses = await _stat(hub, "executions", "analyze_count")
    async with hub.db.transaction() as holder:
        await holder.execute(text("LOCK TABLE executions IN SHARE UPDATE EXCLUSIVE MODE"))  # as a VACUUM holds it
        async with asyncio.timeout(10):  # not waited for
            assert await analyse_grown_tables(hub.db) == ["executions"]
    assert await _stat(hub, "executions", "analyze_count") == analyses
    assert await analyse_grown_tables(hub.db) == ["executions"]  # the next look
    await _counted(hub, "executions", "analyze_count", analyses + 1)


async def test_the_leader_analyses_the_grown_executions_table(hub: Hub, new_hub_workflow_id: uuid.UUID) -> None:
    analyses = await _stat(hub, "executions", "analyze_count")
    async with hub.db.transaction() as session:
        await session.execute(_INSERT_EXECUTIONS, {"status": "QUEUED", "count": 100, "workflow": new_hub_workflow_id})
    maintenance = Maintenance(hub)
    await maintenance.start()
    try:
        await _counted(hub, "executions", "analyze_count", analyses + 1)
    finally:
        await maintenance.stop()
