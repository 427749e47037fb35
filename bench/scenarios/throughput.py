"""End-to-end throughput (SPEC §13): 100 simulated runners, no-op jobs, thousands of executions.

Producers create the executions as fast as the hub takes them (a bounded number of creates in flight);
runners long-poll, start, upload one log batch and complete. Throughput = executions / (last completion -
first create), the last completion as PostgreSQL recorded it (`completed_at`): a runner's report may wait for its
next execution before it is answered (`takeNext`, `wait`), so its answer is not when the execution ended. Hub and PostgreSQL CPU come from psutil over their process trees; afterwards the database
is checked: every execution COMPLETED, each on its first attempt, none completed twice.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time

import asyncpg

from bench import statements
from bench.client import Api, Pickup, RunnerFleet, RunnerStats, SimRunner
from bench.infra import (
    TreeSampler,
    context_switches_between,
    cpu_seconds_between,
    tree_context_switches,
    tree_cpu_seconds,
)
from bench.scenarios.base import Context, Result, attach_peer, exekra_hub, py_spy
from bench.stats import per_second, summarize_ms

RUNNERS = 100
PRODUCERS = 16


async def database_outcome(database_url: str) -> dict[str, float]:
    """Executions by status, how many needed more than one attempt, and when the last one ended (`lastCompletedAt`,
    seconds since the epoch, 0 for none)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM executions GROUP BY status")
        retried = await conn.fetchval("SELECT count(*) FROM executions WHERE attempt > 1")
        last = await conn.fetchval("SELECT coalesce(extract(epoch FROM max(completed_at)), 0) FROM executions")
    finally:
        await conn.close()
    return {**{r[0]: int(r[1]) for r in rows}, "attemptAbove1": int(retried), "lastCompletedAt": float(last)}


_DB_COUNTERS = """
SELECT xact_commit + xact_rollback AS transactions, xact_commit AS commits, xact_rollback AS rollbacks, deadlocks,
       tup_inserted, tup_updated, tup_deleted, tup_fetched,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal_bytes
  FROM pg_stat_database WHERE datname = current_database()"""


async def database_counters(database_url: str) -> dict[str, int]:
    """Cumulative work counters of the database (diff two calls; pg_stat lags by up to a second)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(_DB_COUNTERS)
    finally:
        await conn.close()
    return {k: int(v) for k, v in dict(row).items()}


async def produce(api: Api, workflow_id: str, count: int, producers: int, created_at: list[float]) -> list[str]:
    """Create `count` executions with `producers` requests in flight; returns their ids."""
    ids: list[str] = []
    remaining = iter(range(count))

    async def producer() -> None:
        for _ in remaining:
            execution = await api.create_execution(workflow_id)
            created_at.append(time.perf_counter())
            ids.append(execution["id"])

    await asyncio.gather(*(producer() for _ in range(producers)))
    return ids


async def run(ctx: Context) -> Result:
    result = Result("throughput")
    count = ctx.size(3000, 10000)
    async with exekra_hub(ctx, "throughput") as (hub, api, http):
        workflow_id = await api.published_workflow("bench-noop")
        creds = await api.register_runners("tp", RUNNERS)
        stats = RunnerStats()
        completed: list[float] = []
        all_done = asyncio.Event()

        def on_complete(p: Pickup) -> None:
            completed.append(time.perf_counter())
            if len(completed) >= count:
                all_done.set()

        fleet = RunnerFleet([SimRunner(http, hub.url, c, stats, on_complete=on_complete) for c in creds])
        await fleet.start()
        await asyncio.sleep(1.0)
        sampler = TreeSampler({"hub": hub.pid, "postgres": hub.postgres_pid, "bench": os.getpid()})
        sampler.start()
        created: list[float] = []
        timed_out = False
        if ctx.statements:
            await statements.prepare(hub.database_url)
            await statements.redis_reset(ctx.servers.redis.url)
        db_before = await database_counters(hub.database_url)
        cpu_before = {name: tree_cpu_seconds(pid, name == "bench") for name, pid in sampler.roots.items()}
        switches_before = tree_context_switches(hub.pid)
        with py_spy(ctx, hub.pid, "throughput", result):
            t0, t0_wall = time.perf_counter(), time.time()
            t_load = t0 - sampler.t0
            await produce(api, workflow_id, count, PRODUCERS, created)
            t_created = time.perf_counter()
            try:
                await asyncio.wait_for(all_done.wait(), timeout=max(120.0, count / 20))
            except TimeoutError:
                timed_out = True
            t1 = time.perf_counter()
        cpu_spent = {
            name: cpu_seconds_between(cpu_before[name], tree_cpu_seconds(pid, name == "bench"))
            for name, pid in sampler.roots.items()
        }
        hub_switches = context_switches_between(switches_before, tree_context_switches(hub.pid))
        await sampler.stop()
        await fleet.stop()
        # pg_stat counters are flushed about once a second; with --statements, until each hub process's LISTEN
        # connection has run its next keep-alive (every 10 s): before it, its backend's transactions (one per
        # notification it reads) are not in pg_stat_database yet (`bench.statements`).
        await asyncio.sleep(statements.FLUSH_SECONDS if ctx.statements else 1.0)
        db_after = await database_counters(hub.database_url)
        counted = await statements.snapshot(hub.database_url) if ctx.statements else None
        redis_counted = await statements.redis_commands(ctx.servers.redis.url) if ctx.statements else {}
        outcome = await database_outcome(hub.database_url)
    elapsed = (outcome["lastCompletedAt"] - t0_wall) if completed else t1 - t0
    rate = len(completed) / elapsed if elapsed > 0 else 0.0
    doubled = sum(
        1 for n in collections.Counter(p.execution_id for p in stats.pickups if p.completed_at).values() if n > 1
    )
    hub_cpu = sampler.summary("hub", t_load, t1 - sampler.t0)
    pg_cpu = sampler.summary("postgres", t_load, t1 - sampler.t0)
    bench_cpu = sampler.summary("bench", t_load, t1 - sampler.t0)
    lost = count - outcome.get("COMPLETED", 0)
    result.details |= {
        "executions": count,
        "completed": len(completed),
        "elapsedSeconds": elapsed,
        "createSeconds": t_created - t0,
        "createRate": count / (t_created - t0),
        "cpuMsPerExecution": {name: 1000 * spent / max(1, len(completed)) for name, spent in cpu_spent.items()},
        "hubContextSwitchesPerExecution": {
            kind: n / max(1, len(completed)) for kind, n in zip(("voluntary", "involuntary"), hub_switches, strict=True)
        },
        "databasePerExecution": {k: (db_after[k] - db_before[k]) / max(1, len(completed)) for k in db_after},
        "hub": hub_cpu,
        "postgres": pg_cpu,
        "benchProcess": bench_cpu,
        "database": outcome,
        "doubledRunnerSide": doubled,
        "conflicts": stats.conflicts,
        "errors": stats.errors,
        "runnerCallsMs": {k: summarize_ms(v) for k, v in stats.call_s.items()},
        "completionsPerSecond": per_second(completed, t0),
        "createsPerSecond": per_second(created, t0),
        "cpuSeries": {
            name: [(round(t - t_load, 2), c) for t, c, _ in rows if t >= t_load]
            for name, rows in sampler.samples.items()
        },
        "timedOut": timed_out,
    }
    result.row("throughput", rate, "exec/s", ">= 300", rate >= 300)
    result.row("hub CPU avg (100% = 1 core)", hub_cpu["cpuAvgPercent"], "%")
    result.row("PostgreSQL CPU avg", pg_cpu["cpuAvgPercent"], "%")
    per_exec = result.details["cpuMsPerExecution"]
    result.row("hub CPU per execution", per_exec["hub"], "ms")
    result.row("PostgreSQL CPU per execution", per_exec["postgres"], "ms")
    result.row("load generator CPU per execution", per_exec["bench"], "ms")
    switches = result.details["hubContextSwitchesPerExecution"]
    result.row("hub wake-ups per execution (voluntary context switches)", switches["voluntary"], "count")
    result.row("hub preemptions per execution (involuntary context switches)", switches["involuntary"], "count")
    per_db = result.details["databasePerExecution"]
    result.row("PostgreSQL transactions per execution", per_db["transactions"], "count")
    result.row("WAL per execution", per_db["wal_bytes"] / 1024, "KiB")
    result.row(
        "lost / doubled / retried", float(lost + doubled + outcome["attemptAbove1"]), "count", "0", lost + doubled == 0
    )
    result.details["polls204"] = len(stats.poll_overrun_s)  # long polls that ended without work
    if counted is not None:
        summary = statements.per_execution(counted, len(completed))
        summary["transactionsWithoutStatement"] = per_db["transactions"] - summary["statementsPerExecution"]
        summary["polls204PerExecution"] = len(stats.poll_overrun_s) / max(1, len(completed))
        summary["redisCommandsPerExecution"] = {k: n / max(1, len(completed)) for k, n in redis_counted.items()}
        result.details["statements"] = summary
        result.row("PostgreSQL statements per execution", summary["statementsPerExecution"], "count")
        result.row("transactions without a statement (LISTEN reads…)", summary["transactionsWithoutStatement"], "count")
        print("\n".join(statements.lines(summary)), flush=True)
        print(f"Redis commands per execution: {summary['redisCommandsPerExecution']}")
    if timed_out:
        result.note = f"only {len(completed)}/{count} completed before the time limit"
    await attach_peer(ctx, result, "throughput")
    return result
