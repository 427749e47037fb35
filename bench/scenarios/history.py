"""History (SPEC §13): a million executions; list/filter pages p95; purge without hurting dispatch.

The history is seeded straight into PostgreSQL (`INSERT … SELECT generate_series`): 10 workflows and 20
runners made through the API, executions finished 31+ days ago (2 s apart), 5 % FAILED, 1 % STOPPED, one log
line for a fifth of them. Then each list/filter query is timed through the API. Then `exekra purge`
(EXEKRA_RETENTION_DAYS=30, so all of the seeded history goes) runs as a separate process while pick-ups are
measured as in the pick-up scenario; the p99 during the purge is compared with the p99 before it.
The hub itself runs with EXEKRA_RETENTION_DAYS=3650 so that its own retention job does not purge mid-timing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from typing import Any

import asyncpg

from bench.scenarios.base import Context, Result, exekra_hub
from bench.scenarios.pickup import measure_pickups
from bench.stats import summarize_ms

WORKFLOWS = 10
RUNNERS = 20

_SEED = """
WITH w AS (
    SELECT array_agg(w.id ORDER BY w.name) AS ids, array_agg(v.id ORDER BY w.name) AS vids
      FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.published
), r AS (SELECT array_agg(id ORDER BY name) AS ids FROM runners)
INSERT INTO executions (id, workflow_id, version_id, runner_id, status, priority, attempt, trigger_type,
                        triggered_by, inputs, outputs, error, queued_at, assigned_at, started_at, completed_at,
                        created_at)
SELECT gen_random_uuid(), w.ids[1 + g % cardinality(w.ids)], w.vids[1 + g % cardinality(w.ids)],
       r.ids[1 + g % cardinality(r.ids)],
       CASE WHEN g % 20 = 0 THEN 'FAILED' WHEN g % 100 = 1 THEN 'STOPPED' ELSE 'COMPLETED' END,
       5, 1, 'API', 'bench', '{}'::jsonb, '{}'::jsonb, CASE WHEN g % 20 = 0 THEN 'bench failure' END,
       t.ts, t.ts, t.ts + interval '50 milliseconds', t.ts + interval '1 second', t.ts
  FROM generate_series($1::int, $2::int) g, w, r,
       LATERAL (SELECT now() - interval '31 days' - g * interval '2 seconds' AS ts) t
"""

_SEED_LOGS = """
INSERT INTO execution_logs (execution_id, seq, ts, level, message)
SELECT id, 1, created_at, 'INFO', 'bench history line' FROM executions WHERE triggered_by = 'bench' AND random() < 0.2
"""


async def seed(database_url: str, count: int) -> float:
    t0 = time.perf_counter()
    conn = await asyncpg.connect(database_url, command_timeout=3600)
    try:
        step = 100_000
        for lo in range(1, count + 1, step):
            await conn.execute(_SEED, lo, min(count, lo + step - 1))
        await conn.execute(_SEED_LOGS)
        await conn.execute("VACUUM ANALYZE executions")
        await conn.execute("VACUUM ANALYZE execution_logs")
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def _count_seeded(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM executions WHERE triggered_by = 'bench'"))
    finally:
        await conn.close()


def _queries(workflows: list[str], runners: list[str]) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    day_from = (now - dt.timedelta(days=40)).isoformat()
    day_to = (now - dt.timedelta(days=39)).isoformat()
    return {
        "list page 1": lambda i: {"limit": 50},
        "list page 100 (offset)": lambda i: {"limit": 50, "page": 100},
        "filter workflowId": lambda i: {"workflowId": workflows[i % len(workflows)]},
        "filter runnerId": lambda i: {"runnerId": runners[i % len(runners)]},
        "filter status=FAILED": lambda i: {"status": "FAILED"},
        "filter from/to (1 day)": lambda i: {"from": day_from, "to": day_to},
        "filter workflowId+status": lambda i: {"workflowId": workflows[i % len(workflows)], "status": "FAILED,STOPPED"},
    }


async def time_queries(api: Any, workflows: list[str], runners: list[str], repeat: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for name, params in _queries(workflows, runners).items():
        await api.call("GET", "/api/executions", params=params(0))  # warm the plan cache
        for i in range(repeat):
            t0 = time.perf_counter()
            await api.call("GET", "/api/executions", params=params(i))
            samples.setdefault(name, []).append(time.perf_counter() - t0)
    page = await api.call("GET", "/api/executions", params={"limit": 50})
    for _ in range(repeat):
        cursor = page.get("nextCursor")
        if not cursor:
            break
        t0 = time.perf_counter()
        page = await api.call("GET", "/api/executions", params={"limit": 50, "cursor": cursor})
        samples.setdefault("cursor paging (keyset)", []).append(time.perf_counter() - t0)
    return samples


_EXPLAINED = {
    "count(*) all": "SELECT count(*) FROM executions",
    "count(*) workflowId": "SELECT count(*) FROM executions WHERE workflow_id = $1",
    "count(*) workflowId+status": "SELECT count(*) FROM executions WHERE workflow_id = $1 AND status IN ('FAILED','STOPPED')",
    "page workflowId+status": (
        "SELECT id FROM executions WHERE workflow_id = $1 AND status IN ('FAILED','STOPPED') "
        "ORDER BY created_at DESC, id DESC LIMIT 51"
    ),
    "page 100 (offset 4950)": "SELECT id FROM executions ORDER BY created_at DESC, id DESC OFFSET 4950 LIMIT 51",
}


async def explain(database_url: str, workflow_id: str) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE of the statements behind the list endpoints: where the time goes at this size."""
    import uuid

    conn = await asyncpg.connect(database_url)
    plans: dict[str, list[str]] = {}
    try:
        for name, sql in _EXPLAINED.items():
            args = (uuid.UUID(workflow_id),) if "$1" in sql else ()
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
            plans[name] = [r[0] for r in rows]
    finally:
        await conn.close()
    return plans


def purge_available(hub: Any) -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "exekra.cli", "purge", "--help"], env=hub.env(), capture_output=True, timeout=60
    )
    return probe.returncode == 0


async def run(ctx: Context) -> Result:
    result = Result("history")
    count = ctx.size(100_000, 1_000_000)
    repeat = ctx.size(20, 50)
    async with exekra_hub(ctx, "history", extra_env={"EXEKRA_RETENTION_DAYS": "3650"}) as (hub, api, http):
        workflows = [await api.published_workflow(f"hist-{i:02d}") for i in range(WORKFLOWS)]
        runners = [r["id"] for r in await api.register_runners("hist", RUNNERS)]
        seed_seconds = await seed(hub.database_url, count)
        samples = await time_queries(api, workflows, runners, repeat)
        plans = await explain(hub.database_url, workflows[0])
        result.details = {
            "executions": count,
            "seedSeconds": seed_seconds,
            "samples": samples,
            "queriesMs": {k: summarize_ms(v) for k, v in samples.items()},
            "explain": plans,
        }
        for name, values in samples.items():
            s = summarize_ms(values)
            result.row(f"{name} p95", s["p95"], "ms", "<= 50", s["p95"] <= 50)
        if not purge_available(hub):
            result.status = "pending"
            result.note = "`exekra purge` is not in the hub's code yet: purge part pending"
            return result
        wf = workflows[0]
        base = await measure_pickups(api, http, hub.url, wf, ctx.size(60, 200))
        done = asyncio.Event()
        env = hub.env() | {"EXEKRA_RETENTION_DAYS": "30"}
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exekra.cli",
            "purge",
            env=env,
            cwd=hub.home,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

        async def wait_purge() -> bytes:
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout=ctx.size(600, 1800))
                return out
            finally:
                done.set()

        purge_task = asyncio.create_task(wait_purge())
        during = await measure_pickups(api, http, hub.url, wf, 100_000, stop=done)
        try:
            output = await purge_task
        except TimeoutError:
            proc.kill()
            await proc.wait()
            output = b"(killed: time limit)"
        purge_seconds = time.perf_counter() - t0
        remaining = await _count_seeded(hub.database_url)
    b, d = summarize_ms(base["fromResponse"]), summarize_ms(during["fromResponse"])
    ratio = d["p99"] / b["p99"] if b["p99"] else float("nan")
    result.details |= {
        "purge": {
            "seconds": purge_seconds,
            "exitCode": proc.returncode,
            "output": output.decode(errors="replace")[-2000:],
            "seededRemaining": remaining,
            "rowsPerSecond": (count - remaining) / purge_seconds,
        },
        "dispatchBeforeMs": b,
        "dispatchDuringMs": d,
    }
    result.row("purge time", purge_seconds, "s")
    result.row("seeded rows left after purge", float(remaining), "count", "0", remaining == 0)
    result.row("dispatch p99 before purge", b["p99"], "ms")
    result.row("dispatch p99 during purge", d["p99"], "ms")
    result.row("dispatch p99 during / before", ratio, "x", "<= 2", ratio <= 2)
    return result
