"""Per-request cost: hub CPU milliseconds and latency of single endpoints under a steady closed-loop load.

Not a SPEC §13 row: it splits the execution cost of the throughput scenario into its requests, so that an
optimisation can be judged by the CPU one request costs (a figure that stays put on a busy machine, unlike
latencies). Each endpoint is called by 8 concurrent clients for a few seconds; CPU comes from the hub process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench import statements
from bench.client import HEARTBEAT, SimRunner, request
from bench.infra import HubProcess, UpProcess, cpu_seconds_between, free_port, stop_process, tree_cpu_seconds
from bench.scenarios.base import Context, Result, exekra_hub, py_spy
from bench.stats import summarize_ms

CLIENTS = 8

# The floor of any Python HTTP service here: uvicorn with uvloop + httptools (as `exekra hub` runs) serving a
# bare ASGI app that answers a small JSON body, with no framework, no database, no Redis. On `/wait` it answers 10 ms
# later: the floor of a request held that long (a long poll's renewal), whose wait wakes the process a second time.
_BARE_APP = """
import asyncio

import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/wait":
        await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})

uvicorn.run(app, host="127.0.0.1", port={port}, loop="uvloop", http="httptools", log_level="warning", access_log=False)
"""


@contextlib.asynccontextmanager
async def bare_server() -> Any:
    """A bare uvicorn app in its own process; yields (url, pid)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _BARE_APP.replace("{port}", str(port))])  # noqa: ASYNC220
    try:
        from bench.client import session

        async with session() as http:
            for _ in range(200):
                with contextlib.suppress(Exception):
                    await request(http, "GET", f"http://127.0.0.1:{port}/")
                    break
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_process(proc, grace=5)


async def _load(call: Callable[[int], Awaitable[Any]], seconds: float, hub_pid: int) -> dict[str, Any]:
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    before = tree_cpu_seconds(hub_pid)

    async def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)
            i += CLIENTS

    await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    cpu = cpu_seconds_between(before, tree_cpu_seconds(hub_pid))
    return {
        "requests": len(latencies),
        "cpuMsPerRequest": 1000 * cpu / max(1, len(latencies)),
        "latencyMs": summarize_ms(latencies),
    }


async def _measure(
    ctx: Context,
    result: Result,
    hub: HubProcess | UpProcess,
    name: str,
    profile: str,
    call: Callable[[int], Awaitable[Any]],
) -> dict[str, Any]:
    """`_load` of `call` on the hub, profiled with --profile; with --statements, also what PostgreSQL ran meanwhile
    per request (the hub's background statements included): statements, plans made (a statement run with its
    generic plan is not planned again) and time executing and planning. Adds the endpoint's rows to `result`."""
    if ctx.statements:
        await statements.prepare(hub.database_url)
    with py_spy(ctx, hub.pid, profile, result):
        figures = await _load(call, ctx.size(6, 15), hub.pid)
    result.details[name] = figures
    result.row(f"{name}: CPU per request", figures["cpuMsPerRequest"], "ms")
    result.row(f"{name}: p50", figures["latencyMs"]["p50"], "ms")
    if ctx.statements:
        counted = [
            r
            for r in await statements.snapshot(hub.database_url)
            if not statements.kind_of(r["query"]).startswith("bench:")
        ]
        n = max(1, figures["requests"])
        figures["statements"] = statements.per_execution(counted, n)
        for label, value, unit in (
            ("PostgreSQL statements per request", sum(r["calls"] for r in counted) / n, "count"),
            ("PostgreSQL plans per request", sum(r["plans"] for r in counted) / n, "count"),
            ("PostgreSQL ms per request (executing + planning)", sum(r["ms"] + r["planMs"] for r in counted) / n, "ms"),
        ):
            result.row(f"{name}: {label}", value, unit)
    return figures


async def run(ctx: Context) -> Result:
    result = Result("endpoints")
    async with exekra_hub(ctx, "endpoints") as (hub, api, http):
        workflow_id = await api.published_workflow("bench-noop")
        creds = await api.register_runners("ep", CLIENTS)
        runners = [SimRunner(http, hub.url, c, _stats(), wait=0) for c in creds]
        for r in runners:
            await r.auth()
        seeded = [(await api.create_execution(workflow_id))["id"] for _ in range(20)]
        base = hub.url

        async def health(i: int) -> None:
            await request(http, "GET", base + "/api/health")

        async def heartbeat(i: int) -> None:
            r = runners[i % CLIENTS]
            await request(http, "POST", base + "/api/runner/heartbeat", json=HEARTBEAT, headers=r.headers)

        async def get_execution(i: int) -> None:
            await api.call("GET", f"/api/executions/{seeded[i % len(seeded)]}")

        async def create(i: int) -> None:
            await api.create_execution(workflow_id)

        busy: list[int] = []  # answers of an idle poll that carried work: the figure would not be an idle poll's

        def poll_idle(wait: str) -> Callable[[int], Awaitable[Any]]:
            async def poll(i: int) -> None:
                r = runners[i % CLIENTS]
                status, _ = await request(
                    http, "GET", base + "/api/runner/poll", params={"wait": wait}, headers=r.headers
                )
                if status != 204:
                    busy.append(status)

            return poll

        async def unauthenticated(i: int) -> None:
            await request(http, "GET", base + "/api/runner/poll")  # 401 before any database or Redis call

        async with bare_server() as (bare_url, bare_pid):

            async def bare(i: int) -> None:
                await request(http, "GET", bare_url + "/")

            async def bare_held(i: int) -> None:
                await request(http, "GET", bare_url + "/wait")

            figures = await _load(bare, ctx.size(6, 15), bare_pid)
            held = await _load(bare_held, ctx.size(6, 15), bare_pid)
        result.details["bare uvicorn app (floor)"] = figures
        result.details["bare uvicorn app, answering 10 ms later (floor of a renewal)"] = held
        result.row("bare uvicorn + uvloop + httptools app (floor): CPU per request", figures["cpuMsPerRequest"], "ms")
        result.row(
            "the same app answering 10 ms later (floor of a renewal): CPU per request", held["cpuMsPerRequest"], "ms"
        )

        plan: list[tuple[str, Callable[[int], Awaitable[Any]]]] = [
            ("GET /api/runner/poll without a token (framework only: 401)", unauthenticated),
            ("GET /api/health (framework + SELECT 1)", health),
            ("POST /api/runner/heartbeat", heartbeat),
            ("GET /api/executions/{id}", get_execution),
            ("POST /api/executions", create),
        ]
        for name, call in plan:
            await _measure(ctx, result, hub, name, _profile_name(name), call)
        # Polls claim whatever is queued first: stop everything still waiting, through the API (so that the
        # hub's queue learns it too), then measure the idle poll.
        gate = asyncio.Semaphore(16)

        async def stop(execution_id: str) -> None:
            async with gate:
                await api.call("POST", f"/api/executions/{execution_id}/stop", expect=(200, 409))

        for _ in range(100):
            page = await api.call("GET", "/api/executions", params={"status": "QUEUED,ASSIGNED", "limit": 200})
            # A create still in flight when its load ended commits after the list was read: its execution is
            # assigned to one of these runners, whose polls would then answer it at once. Each runner looks.
            held = []
            for r in runners:
                status, body = await _poll_now(http, base, r)
                if status == 200:
                    held.append(body["execution"]["id"])
            if not page["executions"] and not held:
                break
            await asyncio.gather(*(stop(e["id"]) for e in page["executions"]), *(stop(e) for e in held))
        # A long poll that times out is what an idle runner's sign of life costs besides its heartbeat: the token,
        # the runner's row, the queue's look, the wait (here 10 ms, 30 s for a real runner), the 204. `wait=0`
        # looks at the database once more after the queue (a match may have committed a moment before).
        idle = [
            ("GET /api/runner/poll?wait=0 (no work)", "endpoints-idle-poll", "0"),
            ("GET /api/runner/poll?wait=0.01 (no work: a long poll's renewal)", "endpoints-poll-renewal", "0.01"),
        ]
        for name, profile, wait in idle:
            await _measure(ctx, result, hub, name, profile, poll_idle(wait))
            if busy:
                raise RuntimeError(f"{name}: {len(busy)} polls answered work ({sorted(set(busy))}): not idle polls")
        # A connected runner's heartbeat comes while its long poll waits: each runner holds one open for the run.
        name = "POST /api/runner/heartbeat while the runner's long poll waits"
        renewed = 0  # polls that ended before their 30 s (something woke them) and were opened again, as a runner does

        async def hold(i: int) -> None:
            nonlocal renewed
            while True:
                await poll_idle("30")(i)
                renewed += 1

        polls = [asyncio.create_task(hold(i)) for i in range(CLIENTS)]
        await asyncio.sleep(1)  # each poll has read its runner's row and waits
        figures = await _measure(ctx, result, hub, name, "endpoints-heartbeat-polling", heartbeat)
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        if busy:
            raise RuntimeError(f"{name}: {len(busy)} polls answered work ({sorted(set(busy))}): not idle runners")
        figures["pollsEndedEarly"] = renewed
    return result


async def _poll_now(http: Any, base: str, runner: SimRunner) -> tuple[int, Any]:
    """One poll that does not wait: (204, None), or (200, the execution the runner holds or was just given)."""
    return await request(http, "GET", base + "/api/runner/poll", params={"wait": "0"}, headers=runner.headers)


def _profile_name(endpoint: str) -> str:
    """`endpoints-post-api-executions` for "POST /api/executions": a file name for the endpoint's profile."""
    words = endpoint.split(" (")[0].lower().replace("{id}", "id")
    return "endpoints-" + "-".join(w for w in re.split(r"[^a-z0-9]+", words) if w)


def _stats() -> Any:
    from bench.client import RunnerStats

    return RunnerStats()
