"""Redis down mid-load (SPEC §13): switch to direct mode <= 1 s, nothing lost or doubled, switch back.

20 runners work while a producer creates executions at a steady pace. A third of the way in, Redis is
killed (SIGKILL); `GET /api/health` is read every 20 ms until it says `"queue": "direct"`. Two thirds in,
Redis is started again (empty, on the same port) and the health is read until it says `"redis"`. Then every
execution must end COMPLETED, on one attempt, completed once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

from bench.client import Api, Pickup, RunnerFleet, RunnerStats, SimRunner
from bench.scenarios.base import Context, Result, exekra_hub
from bench.scenarios.throughput import database_outcome

RUNNERS = 20
RATE_PER_SECOND = 40


async def _until_mode(api: Api, mode: str, limit: float) -> float | None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        try:
            if (await api.health()).get("queue") == mode:
                return time.perf_counter() - t0
        except Exception:  # the hub may answer slowly while it switches
            pass
        await asyncio.sleep(0.02)
    return None


async def run(ctx: Context) -> Result:
    result = Result("redis-down")
    duration = ctx.size(24, 45)
    async with exekra_hub(ctx, "redisdown") as (hub, api, http):
        if (await api.health()).get("queue") != "redis":
            result.status = "pending"
            result.note = "the hub reports queue=direct with Redis up: no Redis dispatcher in this hub's code yet"
            return result
        workflow_id = await api.published_workflow("bench-noop")
        creds = await api.register_runners("rd", RUNNERS)
        stats = RunnerStats()
        completed: list[str] = []
        all_done = asyncio.Event()
        producing = True

        def on_complete(p: Pickup) -> None:
            completed.append(p.execution_id)
            if not producing and len(set(completed)) >= len(created):
                all_done.set()

        fleet = RunnerFleet([SimRunner(http, hub.url, c, stats, on_complete=on_complete) for c in creds])
        await fleet.start()
        created: list[str] = []
        create_errors: dict[str, int] = collections.Counter()

        async def produce() -> None:
            t0 = time.perf_counter()
            i = 0
            while time.perf_counter() - t0 < duration:
                i += 1
                try:
                    execution = await api.create_execution(workflow_id, idempotencyKey=f"rd-{i}")
                    created.append(execution["id"])
                except Exception as exc:  # counted: a create must not fail while Redis is down
                    create_errors[type(exc).__name__ + str(getattr(exc, "status", ""))] += 1
                await asyncio.sleep(max(0.0, t0 + i / RATE_PER_SECOND - time.perf_counter()))

        producer = asyncio.create_task(produce())
        await asyncio.sleep(duration / 3)
        await asyncio.to_thread(ctx.servers.redis.kill)
        to_direct = await _until_mode(api, "direct", 30)
        await asyncio.sleep(max(0.0, duration / 3 - (to_direct or 0)))
        await asyncio.to_thread(ctx.servers.redis.start)
        to_redis = await _until_mode(api, "redis", 60)
        await producer
        producing = False
        if len(set(completed)) < len(created):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_done.wait(), 90)
        await fleet.stop()
        outcome = await database_outcome(hub.database_url)
    doubled = sum(1 for n in collections.Counter(completed).values() if n > 1)
    lost = len(set(created) - set(completed))
    result.details = {
        "executions": len(created),
        "switchToDirectSeconds": to_direct,
        "switchBackSeconds": to_redis,
        "createErrors": dict(create_errors),
        "database": outcome,
        "doubled": doubled,
        "lost": lost,
        "runnerErrors": stats.errors,
    }
    result.row("switch to direct", to_direct, "s", "<= 1", to_direct is not None and to_direct <= 1)
    result.row("switch back to redis", to_redis, "s")
    result.row("executions lost", float(lost), "count", "0", lost == 0)
    result.row(
        "executions doubled / retried", float(doubled + outcome.get("attemptAbove1", 0)), "count", "0", doubled == 0
    )
    result.row("create errors during the outage", float(sum(create_errors.values())), "count", "0", not create_errors)
    return result
