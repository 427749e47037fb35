"""Connected runners (SPEC §13): ramp to 10,000 heartbeating, long-polling runners on one hub.

Runners are registered through the API, then brought up by several client processes (each one event loop,
thousands of runners): `auth`, a heartbeat every `heartbeatIntervalSeconds` (30 s, phases spread evenly),
and a long poll (`wait=30`) always open. Each runner holds its own long-poll connection; heartbeats of a
client process share a pool of 64 connections (a real runner opens one per heartbeat, as keep-alive lapses
between 30 s heartbeats). During the steady phase a producer creates executions at a steady pace; all of
them must be picked up and completed (none lost). Reported: heartbeat and pick-up p50/p99, how late 204
long polls come back, hub CPU and RSS (and RSS per connected runner), and from the hub's `/metrics` the
heartbeat's server time and the garbage collector's pauses during the steady phase.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import math
import multiprocessing
import time
from typing import Any

from bench.client import RunnerFleet, RunnerStats, SimRunner, session
from bench.hub_metrics import between, bound_of, hub_histograms
from bench.infra import TreeSampler, raise_nofile
from bench.scenarios.base import Context, Result, exekra_hub, py_spy
from bench.scenarios.throughput import database_outcome
from bench.stats import summarize_ms

WAIT_SECONDS = 30.0


def _worker(base_url: str, creds: list[dict[str, str]], ramp_seconds: float, end_wall: float) -> dict[str, Any]:
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_worker_main(base_url, creds, ramp_seconds, end_wall))


async def _worker_main(
    base_url: str, creds: list[dict[str, str]], ramp_seconds: float, end_wall: float
) -> dict[str, Any]:
    stats = RunnerStats()
    auth_errors = 0
    # Thousands of open polls here too: this process's own full collections (as long as the hub's were) would be
    # counted in the latencies it measures. It runs for minutes, so it does without them.
    gc.disable()
    async with session(limit=0, timeout=WAIT_SECONDS + 60) as poll_http, session(limit=64) as hb_http:
        runners = [
            SimRunner(poll_http, base_url, c, stats, wait=WAIT_SECONDS, log_lines=0, heartbeat_http=hb_http)
            for c in creds
        ]
        fleet = RunnerFleet(runners)
        try:
            await fleet.start(heartbeats=True, ramp_seconds=ramp_seconds, concurrency=8)
        except Exception as exc:  # reported, not raised: the other runners go on
            auth_errors += 1
            stats.error(f"bring-up {type(exc).__name__}: {exc}"[:120])
        up_at = time.time()
        await asyncio.sleep(max(0.0, end_wall - time.time()))
        await fleet.stop()
    gc.enable()
    return {
        "heartbeat": stats.heartbeat_s,
        "heartbeatWall": stats.heartbeat_wall,
        "pollOverrun": stats.poll_overrun_s,
        "pickups": [(p.execution_id, p.picked_wall, p.completed_at is not None) for p in stats.pickups],
        "errors": stats.errors,
        "conflicts": stats.conflicts,
        "upAt": up_at,
        "runners": len(creds),
    }


async def run(ctx: Context) -> Result:
    result = Result("connected")
    total = ctx.connected_runners or ctx.size(1000, 10000)
    processes = 2 if total <= 2000 else 4
    ramp = ctx.size(20, 120) if ctx.connected_runners is None else max(20, total // 80)
    steady = ctx.size(90, 120)
    executions = ctx.size(100, 500)
    async with exekra_hub(ctx, "connected") as (hub, api, _http):
        workflow_id = await api.published_workflow("bench-noop")
        t_reg = time.perf_counter()
        creds = await api.register_runners("conn", total, concurrency=16)
        register_seconds = time.perf_counter() - t_reg
        sampler = TreeSampler({"hub": hub.pid, "postgres": ctx.servers.pg.pid})
        sampler.start()
        rss_before = sampler.samples["hub"][-1][2]
        start_wall = time.time() + 3.0  # the client processes need a moment to import
        end_wall = start_wall + ramp + steady
        slices = [creds[i::processes] for i in range(processes)]
        loop = asyncio.get_running_loop()
        created: dict[str, float] = {}
        with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [loop.run_in_executor(pool, _worker, hub.url, part, ramp, end_wall) for part in slices]
            await asyncio.sleep(max(0.0, start_wall + ramp + 5 - time.time()))
            steady_metrics = await hub_histograms(_http, hub.url)
            with py_spy(ctx, hub.pid, "connected", result):
                produce_until = end_wall - 35
                gap = max(0.05, (produce_until - time.time()) / executions)

                async def create_one() -> None:
                    execution = await api.create_execution(workflow_id)
                    created[execution["id"]] = time.time()

                creates = []
                for _ in range(executions):  # at a steady pace, whatever each create's latency
                    if time.time() > produce_until:
                        break
                    creates.append(asyncio.create_task(create_one()))
                    await asyncio.sleep(gap)
                await asyncio.gather(*creates, return_exceptions=True)
                runner_status = await _runner_counts(hub.database_url)
                rss_steady = sampler.samples["hub"][-1][2]
                end_metrics = await hub_histograms(_http, hub.url)
                parts = await asyncio.gather(*futures)
        await sampler.stop()
        outcome = await database_outcome(hub.database_url)
    heartbeat = [s for p in parts for s in p["heartbeat"]]
    steady_from = start_wall + ramp + 5
    heartbeat_steady = [
        s for p in parts for s, w in zip(p["heartbeat"], p["heartbeatWall"], strict=True) if w >= steady_from
    ]
    overrun = [s for p in parts for s in p["pollOverrun"]]
    pickups = [x for p in parts for x in p["pickups"]]
    picked_ids = {i for i, _, _ in pickups}
    pickup_latency = [max(0.0, wall - created[i]) for i, wall, _ in pickups if i in created]
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    hb = summarize_ms(heartbeat)
    hb_steady = summarize_ms(heartbeat_steady)
    at_hub = between(steady_metrics, end_metrics, "heartbeat")
    full_pauses = between(steady_metrics, end_metrics, "gc2")
    young_pauses = between(steady_metrics, end_metrics, "gc0")
    middle_pauses = between(steady_metrics, end_metrics, "gc1")
    dispatch_stage = between(steady_metrics, end_metrics, "dispatch")
    start_stage = between(steady_metrics, end_metrics, "start")
    pk = summarize_ms(pickup_latency)
    hub_usage = sampler.summary("hub", ramp + 5)
    result.details = {
        "runners": total,
        "clientProcesses": processes,
        "rampSeconds": ramp,
        "steadySeconds": steady,
        "registerSeconds": register_seconds,
        "runnerStatusAtSteady": runner_status,
        "heartbeatMs": hb,
        "heartbeatSteadyMs": hb_steady,
        "hubView": {
            "heartbeatBucketsSeconds": at_hub,
            "fullCollectionPauseBucketsSeconds": full_pauses,
            "youngCollectionPauseBucketsSeconds": young_pauses,
            "middleCollectionPauseBucketsSeconds": middle_pauses,
            "dispatchBucketsSeconds": dispatch_stage,
            "assignedToRunningBucketsSeconds": start_stage,
        },
        "pickupMs": pk,
        "pollOverrunMs": summarize_ms(overrun),
        "hubRssMb": {"beforeRunners": rss_before, "steady": rss_steady, "peak": sampler.summary("hub")["rssPeakMb"]},
        "hub": hub_usage,
        "postgres": sampler.summary("postgres", ramp + 5),
        "executionsCreated": len(created),
        "executionsPicked": len(picked_ids & set(created)),
        "database": outcome,
        "errors": errors,
        "heartbeatSamples": heartbeat,
        "pickupSamples": pickup_latency,
        "profile": result.details.get("profile"),
    }
    online = runner_status.get("ONLINE", 0) + runner_status.get("BUSY", 0)
    result.row("runners connected (ONLINE+BUSY)", float(online), "count", f"{total:,}", online >= total)
    result.row("heartbeat p50 (steady)", hb_steady["p50"], "ms")
    result.row("heartbeat p99 (steady)", hb_steady["p99"], "ms", "<= 100", hb_steady["p99"] <= 100)
    result.row("heartbeat p99 (the ramp included: every runner signing in)", hb["p99"], "ms")
    result.row("heartbeat p99 at the hub (server time, histogram bucket bound)", bound_of(at_hub, 0.99), "ms")
    result.row("full collections in the steady phase", full_pauses.get(math.inf), "count")
    result.row("longest full collection (histogram bucket bound)", bound_of(full_pauses, 1.0), "ms")
    result.row("longest collection of generation 1 (histogram bucket bound)", bound_of(middle_pauses, 1.0), "ms")
    result.row("pick-up p50 under load", pk["p50"], "ms")
    result.row("pick-up p99 under load", pk["p99"], "ms")
    result.row("of it at the hub: QUEUED → ASSIGNED p99 (histogram bucket bound)", bound_of(dispatch_stage, 0.99), "ms")
    result.row("ASSIGNED → RUNNING p99 (histogram bucket bound)", bound_of(start_stage, 0.99), "ms")
    result.row("hub RSS at steady state", rss_steady, "MiB")
    result.row("hub RSS per runner", (rss_steady - rss_before) * 1024 / max(1, online), "KiB")
    result.row("hub CPU avg (steady)", hub_usage["cpuAvgPercent"], "%")
    unfinished = len(created) - outcome.get("COMPLETED", 0)
    result.row("executions not COMPLETED when the run ended", float(unfinished), "count", "0", unfinished == 0)
    result.row("executions re-queued by the stale check", float(outcome.get("attemptAbove1", 0)), "count", "0")
    if errors:
        result.note = "errors: " + ", ".join(f"{k}x{v}" for k, v in sorted(errors.items(), key=lambda kv: -kv[1])[:5])
    return result


async def _runner_counts(database_url: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM runners GROUP BY status")
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}
