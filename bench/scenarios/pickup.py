"""Pick-up latency (SPEC §13): idle long-polling runners, executions created one at a time.

Measured from the moment the create response arrives to the moment a runner's poll answer with that
execution arrives (both in this process, one clock). The runner then starts and completes it, and the next
execution is created only once it is idle and long-polling again, so every sample sees idle runners.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.client import Api, Pickup, RunnerFleet, RunnerStats, SimRunner
from bench.scenarios.base import Context, Result, attach_peer, exekra_hub
from bench.stats import summarize_ms

RUNNERS = 5
WARMUP = 10
PACE_SECONDS = 0.02  # after a report is sent, before the next create: the runner is back in its long poll


async def measure_pickups(
    api: Api,
    http: aiohttp.ClientSession,
    hub_url: str,
    workflow_id: str,
    count: int,
    runners: int = RUNNERS,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Create `count` executions one at a time against idle long-polling runners (fewer if `stop` is set first);
    raw samples in seconds."""
    creds = await api.register_runners(f"pickup-{time.monotonic_ns()}", runners)
    stats = RunnerStats()
    picked: dict[str, Pickup] = {}
    done: dict[str, asyncio.Future[Pickup]] = {}
    loop = asyncio.get_running_loop()

    def on_pickup(p: Pickup) -> None:
        picked[p.execution_id] = p

    def on_report(p: Pickup) -> None:  # the runner is idle again: its report waits as a long poll, or it polls
        future = done.get(p.execution_id)
        if future is not None and not future.done():
            future.set_result(p)

    fleet = RunnerFleet([SimRunner(http, hub_url, c, stats, on_pickup=on_pickup, on_report=on_report) for c in creds])
    await fleet.start()
    await asyncio.sleep(0.5)
    from_response, from_send, before_response, timeouts = [], [], 0, 0
    try:
        for i in range(WARMUP + count):
            if stop is not None and stop.is_set():
                break
            t_send = time.perf_counter()
            execution = await api.create_execution(workflow_id)
            t_resp = time.perf_counter()
            ident = execution["id"]
            future = done.setdefault(ident, loop.create_future())
            if ident in picked and picked[ident].reported_at is not None and not future.done():
                future.set_result(picked[ident])
            try:
                await asyncio.wait_for(asyncio.shield(future), 15)
            except TimeoutError:
                timeouts += 1
                continue
            pickup = picked[ident]
            if i >= WARMUP:
                from_response.append(max(0.0, pickup.picked_at - t_resp))
                from_send.append(pickup.picked_at - t_send)
                before_response += pickup.picked_at < t_resp
            await asyncio.sleep(PACE_SECONDS)
    finally:
        await fleet.stop()
    return {
        "fromResponse": from_response,
        "fromSend": from_send,
        "beforeResponse": before_response,
        "timeouts": timeouts,
        "errors": stats.errors,
    }


async def run(ctx: Context) -> Result:
    result = Result("pickup")
    count = ctx.size(100, 500)
    async with exekra_hub(ctx, "pickup") as (hub, api, http):
        workflow_id = await api.published_workflow("bench-noop")
        raw = await measure_pickups(api, http, hub.url, workflow_id, count)
    s = summarize_ms(raw["fromResponse"])
    result.details = {
        "fromResponseMs": s,
        "fromSendMs": summarize_ms(raw["fromSend"]),
        "beforeResponse": raw["beforeResponse"],
        "timeouts": raw["timeouts"],
        "errors": raw["errors"],
        "runners": RUNNERS,
        "samples": raw["fromResponse"],
    }
    result.row("pick-up p50", s["p50"], "ms", "<= 10", s["p50"] <= 10)
    result.row("pick-up p99", s["p99"], "ms", "<= 50", s["p99"] <= 50)
    if raw["timeouts"]:
        result.note = f"{raw['timeouts']} executions not picked up within 15 s"
    await attach_peer(ctx, result, "pickup")
    return result
