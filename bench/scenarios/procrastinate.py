"""A second peer, procrastinate (`bench/peers/procrastinate_app.py`): the same workloads on the same PostgreSQL
server, in the same run, next to the hub's figures of this run's `throughput` and `pickup` scenarios.

- throughput: as many jobs as the hub's throughput scenario runs executions (3,000 quick / 10,000 full), deferred
  by 16 producers into one worker process with concurrency 100 (the hub's 100 simulated runners); no-op jobs, then
  10 ms jobs. Rate = jobs / (last succeeded - first deferred), both on the database's clock (procrastinate's
  events). CPU per job of the worker process and of PostgreSQL (psutil, as for the hub).
- pick-up: jobs deferred one at a time into an idle worker (LISTEN/NOTIFY on), 10 warm-up + 100 (quick) / 500:
  `started - deferred` of each job's events, the database's clock for both. The hub's pick-up is measured from
  the create's answer to the runner's poll answer, which also covers two HTTP hops.

Run it after `throughput` and `pickup` (`python -m bench throughput pickup procrastinate`) to have both columns;
alone it fills the peer's column only.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import psycopg

from bench.infra import BENCH_DIR, cpu_seconds_between, stop_process, tree_cpu_seconds
from bench.scenarios.base import Context, Result
from bench.stats import summarize_ms

CONCURRENCY = 100
PRODUCERS = 16
PEER = "procrastinate"


def _exekra(ctx: Context, scenario: str, metric: str) -> float | None:
    """The hub's figure of `metric` in this run's `scenario`, if it ran before this one."""
    done = ctx.done.get(scenario)
    for row in done.rows if done is not None else ():
        if row.metric == metric:
            return row.exekra
    return None


async def _scalar(conn: psycopg.AsyncConnection[Any], sql: str) -> Any:
    cur = await conn.execute(sql)
    row = await cur.fetchone()
    return row[0] if row else None


async def _wait_until(conn: psycopg.AsyncConnection[Any], sql: str, target: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while int(await _scalar(conn, sql) or 0) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"procrastinate: fewer than {target} after {seconds:.0f} s ({sql})")
        await asyncio.sleep(0.02)


async def _throughput(ctx: Context, dsn: str, task: str, count: int, worker_pid: int) -> dict[str, Any]:
    from bench.peers.procrastinate_app import make_app

    app = make_app(dsn)
    async with app.open_async(), await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("DELETE FROM procrastinate_jobs")
        before = {"worker": tree_cpu_seconds(worker_pid), "postgres": tree_cpu_seconds(ctx.servers.pg.pid)}
        remaining = iter(range(count))

        async def producer() -> None:
            for _ in remaining:
                await app.configure_task(task).defer_async()

        await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
        done_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        await _wait_until(conn, done_sql, count, seconds=max(120.0, count / 20))
        spent = {
            "worker": cpu_seconds_between(before["worker"], tree_cpu_seconds(worker_pid)),
            "postgres": cpu_seconds_between(before["postgres"], tree_cpu_seconds(ctx.servers.pg.pid)),
        }
        span = await _scalar(
            conn,
            "SELECT EXTRACT(EPOCH FROM max(at) FILTER (WHERE type = 'succeeded') - min(at) FILTER (WHERE type = "
            "'deferred')) FROM procrastinate_events",
        )
    seconds = float(span)
    return {
        "jobs": count,
        "seconds": seconds,
        "perSecond": count / seconds if seconds > 0 else 0.0,
        "cpuMsPerJob": {name: 1000 * s / count for name, s in spent.items()},
    }


async def _pickup(dsn: str, count: int) -> list[float]:
    from bench.peers.procrastinate_app import make_app

    app = make_app(dsn)
    pickups: list[float] = []
    async with app.open_async(), await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for i in range(10 + count):
            job_id = await app.configure_task("noop").defer_async()
            started = f"SELECT count(*) FROM procrastinate_events WHERE job_id = {int(job_id)} AND type = 'started'"
            await _wait_until(conn, started, 1, seconds=10)
            waited = await _scalar(
                conn,
                "SELECT EXTRACT(EPOCH FROM max(at) FILTER (WHERE type = 'started') - min(at) FILTER (WHERE type = "
                f"'deferred')) FROM procrastinate_events WHERE job_id = {int(job_id)}",
            )
            if i >= 10:
                pickups.append(float(waited))
            await asyncio.sleep(0.05)  # the worker is idle again, waiting on LISTEN, before the next job
    return pickups


def _start_worker(dsn: str, log: Any) -> subprocess.Popen[bytes]:
    """The worker in its own process (its log beside the results)."""
    command = [sys.executable, "-m", "bench.peers.procrastinate_app", dsn, str(CONCURRENCY)]
    return subprocess.Popen(command, cwd=BENCH_DIR.parent, stdout=log, stderr=subprocess.STDOUT)


async def run(ctx: Context) -> Result:
    from bench.peers.procrastinate_app import make_app

    result = Result("procrastinate")
    dsn = ctx.servers.new_database("procrastinate")
    app = make_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
    version = __import__("importlib.metadata").metadata.version("procrastinate")
    log = (ctx.results_dir / "procrastinate-worker.log").open("wb")
    worker = _start_worker(dsn, log)
    try:
        await asyncio.sleep(2.0)  # the worker connects and listens
        count = ctx.size(3000, 10000)
        noop = await _throughput(ctx, dsn, "noop", count, worker.pid)
        slow = await _throughput(ctx, dsn, "sleep10", count, worker.pid)
        pickups = await _pickup(dsn, ctx.size(100, 500))
    finally:
        stop_process(worker)
        log.close()
    pick = summarize_ms(pickups)
    result.details |= {"version": version, "noop": noop, "sleep10": slow, "pickupMs": pick}

    def row(metric: str, exekra: float | None, peer: float, unit: str) -> None:
        result.row(metric, exekra, unit).peer(PEER, peer)

    row("throughput, no-op", _exekra(ctx, "throughput", "throughput"), noop["perSecond"], "exec/s")
    row(
        "CPU per execution: hub / worker process",
        _exekra(ctx, "throughput", "hub CPU per execution"),
        noop["cpuMsPerJob"]["worker"],
        "ms",
    )
    row(
        "PostgreSQL CPU per execution",
        _exekra(ctx, "throughput", "PostgreSQL CPU per execution"),
        noop["cpuMsPerJob"]["postgres"],
        "ms",
    )
    row("throughput, 10 ms jobs", None, slow["perSecond"], "exec/s")
    row("pick-up p50", _exekra(ctx, "pickup", "pick-up p50"), pick["p50"], "ms")
    row("pick-up p99", _exekra(ctx, "pickup", "pick-up p99"), pick["p99"], "ms")
    result.note = f"procrastinate {version}, one worker process, concurrency {CONCURRENCY}"
    return result
