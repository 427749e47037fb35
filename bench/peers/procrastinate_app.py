"""The procrastinate peer's tasks and worker (issue 17): `python -m bench.peers.procrastinate_app DSN CONCURRENCY`
runs a worker in its own process, as the hub's runners are processes of their own.

procrastinate (a PostgreSQL task queue) is the fastest durable Python queue we know of: a worker takes a job
with one stored procedure (`SELECT … FOR UPDATE SKIP LOCKED`) and is woken by LISTEN/NOTIFY. It has no HTTP hop,
no runner protocol and no fencing of a stale worker, so it shows what Python plus PostgreSQL can do, and how far
the hub is from it.
"""

from __future__ import annotations

import asyncio
import sys

import procrastinate

JOB_SECONDS = 0.010


def make_app(dsn: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    @app.task(name="sleep10")
    async def sleep10() -> None:
        await asyncio.sleep(JOB_SECONDS)

    return app


async def _work(dsn: str, concurrency: int) -> None:
    app = make_app(dsn)
    async with app.open_async():
        # Jobs are kept (delete_jobs="never"): the scenario reads their events afterwards.
        await app.run_worker_async(
            concurrency=concurrency, listen_notify=True, delete_jobs="never", install_signal_handlers=True
        )


if __name__ == "__main__":
    asyncio.run(_work(sys.argv[1], int(sys.argv[2])))
