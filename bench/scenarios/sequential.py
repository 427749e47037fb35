"""Sequential overhead (SPEC §13): create → a 10 ms job → COMPLETED visible through the API, in a row.

The producer sends the create, then waits for COMPLETED through `GET /api/executions/{id}`: first with
`?wait=` (the hub answers when the execution ends: one request), then, for comparison, by reading it every
2 ms (each read costs the hub as much CPU as a runner call). Overhead = that whole time minus the job's 10 ms. The breakdown splits it into create, pick-up, the runner's
calls (start, logs, complete) and the lag until the API shows it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.client import Pickup, RunnerFleet, RunnerStats, SimRunner
from bench.scenarios.base import Context, Result, attach_peer, exekra_hub
from bench.stats import summarize_ms

JOB_SECONDS = 0.010
READ_GAP_SECONDS = 0.002
WARMUP = 10


async def _series(
    api: Any, workflow_id: str, picked: dict[str, Pickup], count: int, *, long_poll: bool
) -> dict[str, Any]:
    """`count` executions in a row (after a warm-up); the end observed by long poll or by reads 2 ms apart."""
    overhead, create_s, pickup_s, runner_s, visible_s, stuck = [], [], [], [], [], 0
    for i in range(WARMUP + count):
        t0 = time.perf_counter()
        execution = await api.create_execution(workflow_id)
        t_resp = time.perf_counter()
        deadline = t0 + 15
        while True:
            if long_poll:
                status = (await api.execution(execution["id"], wait=max(0.1, deadline - time.perf_counter())))["status"]
            else:
                status = (await api.execution(execution["id"]))["status"]
            if status == "COMPLETED" or time.perf_counter() > deadline:
                break
            if not long_poll:
                await asyncio.sleep(READ_GAP_SECONDS)
        t1 = time.perf_counter()
        if status != "COMPLETED":
            stuck += 1
            continue
        p = picked.get(execution["id"])
        if i < WARMUP or p is None or p.reported_at is None:
            continue
        overhead.append(t1 - t0 - JOB_SECONDS)
        create_s.append(t_resp - t0)
        pickup_s.append(max(0.0, p.picked_at - t_resp))
        runner_s.append(p.reported_at - p.picked_at - JOB_SECONDS)
        visible_s.append(t1 - p.reported_at)
    return {
        "overheadMs": summarize_ms(overhead),
        "breakdownMs": {
            "create": summarize_ms(create_s),
            "pickup": summarize_ms(pickup_s),
            "runnerCallsUntilReport": summarize_ms(runner_s),  # start (and logs) until the report is sent
            "visibleAfterReport": summarize_ms(visible_s),  # the report's round trip until the end is seen
        },
        "stuck": stuck,
        "samples": overhead,
    }


async def run(ctx: Context) -> Result:
    result = Result("sequential")
    count = ctx.size(100, 200)
    async with exekra_hub(ctx, "sequential") as (hub, api, http):
        workflow_id = await api.published_workflow("bench-10ms")
        creds = await api.register_runners("seq", 1)
        stats = RunnerStats()
        picked: dict[str, Pickup] = {}
        fleet = RunnerFleet(
            [
                SimRunner(
                    http,
                    hub.url,
                    c,
                    stats,
                    job_seconds=JOB_SECONDS,
                    on_pickup=lambda p: picked.__setitem__(p.execution_id, p),
                )
                for c in creds
            ]
        )
        await fleet.start()
        await asyncio.sleep(0.5)
        try:
            waited = await _series(api, workflow_id, picked, count, long_poll=True)
            polled = await _series(api, workflow_id, picked, count, long_poll=False)
        finally:
            await fleet.stop()
    s, sp = waited["overheadMs"], polled["overheadMs"]
    stuck = waited["stuck"] + polled["stuck"]
    result.details = {
        **waited,
        "readEvery2ms": polled,
        "runnerCallsMs": {k: summarize_ms(v) for k, v in stats.call_s.items()},
        "errors": stats.errors,
    }
    result.row("sequential overhead p50 (GET ?wait=)", s["p50"], "ms", "<= 20", s["p50"] <= 20)
    result.row("sequential overhead mean (GET ?wait=)", s["mean"], "ms", "<= 20", s["mean"] <= 20)
    result.row("sequential overhead p99 (GET ?wait=)", s["p99"], "ms")
    result.row("sequential overhead p50 (GET every 2 ms)", sp["p50"], "ms")
    result.row("sequential overhead mean (GET every 2 ms)", sp["mean"], "ms")
    if stuck:
        result.note = f"{stuck} executions not COMPLETED within 15 s"
    await attach_peer(ctx, result, "sequential")
    return result
