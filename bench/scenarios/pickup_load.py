"""Pick-up under load (issue 17): the throughput scenario's 100 runners, executions created at a steady pace.

The `pickup` scenario measures idle runners and one execution at a time; `throughput` measures a hub saturated by
its producers, where the time from create to pick-up is the queue's wait, not the hub's. This scenario sits between
them: an open-loop load (each create is sent on its schedule, whether or not the earlier ones have been answered)
at several rates below the hub's capacity, and every execution's pick-up measured as `pickup` does: from the create
response to the runner's poll answer, one clock in this process. Each rate also reports the hub's own split of the
pick-up (QUEUED → ASSIGNED from its histogram) and its CPU, so a slow pick-up shows whether the hub or the load
generator (the runners share this process) was late.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from typing import Any

import aiohttp
import asyncpg

from bench.client import Api, ApiError, Pickup, RunnerFleet, RunnerStats, SimRunner
from bench.hub_metrics import between, bound_of, hub_histograms
from bench.infra import cpu_seconds_between, tree_cpu_seconds
from bench.scenarios.base import Context, Result, exekra_hub, py_spy
from bench.scenarios.throughput import RUNNERS, database_outcome
from bench.stats import summarize_ms

RATES_QUICK = (50, 100, 150)
RATES_FULL = (50, 100, 150, 200)
DRAIN_SECONDS = 30.0  # after the last create of a rate, for its executions to complete


async def paced_creates(
    api: Api, workflow_id: str, rate: float, seconds: float, created: dict[str, tuple[float, float]]
) -> int:
    """Create `rate` executions a second for `seconds`, each on its schedule; records {id: (sent, answered)} and
    returns how many creates failed (no answer, or not 2xx)."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    async def one() -> None:
        t_send = time.perf_counter()
        execution = await api.create_execution(workflow_id)
        created[execution["id"]] = (t_send, time.perf_counter())

    t0 = loop.time()
    for i in range(int(rate * seconds)):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    unexpected = [o for o in failed if not isinstance(o, (ApiError, aiohttp.ClientError, OSError, TimeoutError))]
    if unexpected:
        raise unexpected[0]
    return len(failed)


async def completed_of(database_url: str, ids: list[str]) -> int:
    """How many of these executions the database holds COMPLETED."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM executions WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED'", ids
            )
        )
    finally:
        await conn.close()


async def run(ctx: Context) -> Result:
    result = Result("pickup-load")
    rates = RATES_QUICK if ctx.quick else RATES_FULL
    seconds = ctx.size(10, 30)
    phases: list[dict[str, Any]] = []
    async with exekra_hub(ctx, "pickup_load") as (hub, api, http):
        workflow_id = await api.published_workflow("bench-noop")
        creds = await api.register_runners("load", RUNNERS)
        stats = RunnerStats()
        picked: dict[str, Pickup] = {}
        completed: set[str] = set()
        pending: set[str] = set()  # this rate's executions not completed yet
        drained = asyncio.Event()
        all_ids: list[str] = []

        def on_pickup(p: Pickup) -> None:
            picked.setdefault(p.execution_id, p)

        def on_complete(p: Pickup) -> None:
            completed.add(p.execution_id)
            pending.discard(p.execution_id)
            if not pending:
                drained.set()

        fleet = RunnerFleet(
            [SimRunner(http, hub.url, c, stats, on_pickup=on_pickup, on_complete=on_complete) for c in creds]
        )
        await fleet.start()
        await asyncio.sleep(1.0)
        with py_spy(ctx, hub.pid, "pickup-load", result):
            for rate in rates:
                created: dict[str, tuple[float, float]] = {}
                before = await hub_histograms(http, hub.url)
                cpu_before = tree_cpu_seconds(hub.pid)
                t0 = time.perf_counter()
                failed = await paced_creates(api, workflow_id, rate, seconds, created)
                t_created = time.perf_counter()
                all_ids.extend(created)
                pending.clear()
                pending.update(ident for ident in created if ident not in completed)
                drained.clear()
                if not pending:
                    drained.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(drained.wait(), DRAIN_SECONDS)
                hub_cpu = cpu_seconds_between(cpu_before, tree_cpu_seconds(hub.pid))
                after = await hub_histograms(http, hub.url)
                from_response, from_send, before_response = [], [], 0
                for ident, (t_send, t_resp) in created.items():
                    pickup = picked.get(ident)
                    if pickup is None:
                        continue
                    from_response.append(max(0.0, pickup.picked_at - t_resp))
                    from_send.append(pickup.picked_at - t_send)
                    before_response += pickup.picked_at < t_resp
                phases.append(
                    {
                        "rate": rate,
                        "created": len(created),
                        "createFailures": failed,
                        "pickedUp": len(from_response),
                        "achievedRate": len(created) / (t_created - t0),
                        "fromResponseMs": summarize_ms(from_response),
                        "fromSendMs": summarize_ms(from_send),
                        "beforeResponse": before_response,
                        "queuedToAssignedP99Ms": bound_of(between(before, after, "dispatch"), 0.99),
                        "hubCpuPercent": 100 * hub_cpu / (time.perf_counter() - t0),
                    }
                )
                await asyncio.sleep(1.0)  # the runners are back in their long polls
        await fleet.stop()
        outcome = await database_outcome(hub.database_url)
        lost = len(all_ids) - await completed_of(hub.database_url, all_ids)  # answered creates not COMPLETED
    doubled = sum(1 for n in collections.Counter(p.execution_id for p in stats.pickups).values() if n > 1)
    result.details = {
        "runners": RUNNERS,
        "secondsPerRate": seconds,
        "phases": phases,
        "database": outcome,
        "errors": stats.errors,
        "conflicts": stats.conflicts,
        "cpuCount": os.cpu_count(),
    }
    for p in phases:
        s = p["fromResponseMs"]
        rate = p["rate"]
        result.row(f"{rate}/s: pick-up p50", s["p50"], "ms", "<= 5", s["p50"] <= 5)
        result.row(f"{rate}/s: pick-up p99", s["p99"], "ms", "<= 20", s["p99"] <= 20)
        result.row(
            f"{rate}/s: of it at the hub, QUEUED → ASSIGNED p99 (bucket bound)", p["queuedToAssignedP99Ms"], "ms"
        )
        result.row(f"{rate}/s: hub CPU (100% = 1 core)", p["hubCpuPercent"], "%")
    result.row(
        "lost / doubled / retried", float(lost + doubled + outcome["attemptAbove1"]), "count", "0", lost + doubled == 0
    )
    short = [f"{p['rate']}/s: {p['pickedUp']}/{p['created']} picked up" for p in phases if p["pickedUp"] < p["created"]]
    failed = sum(p["createFailures"] for p in phases)
    result.note = "; ".join(short + ([f"{failed} creates failed"] if failed else []))
    return result
