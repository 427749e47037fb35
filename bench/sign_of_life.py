"""What a runner's sign of life costs the hub's own code, the ASGI application driven directly (issue 17).

`python -m bench.sign_of_life [--requests 3000] [--profile DIR]` runs the hub's application in this process, on
embedded PostgreSQL and Redis, with one signed-in runner, and sends it each kind of sign of life as an ASGI request
(no socket, no HTTP parsing: what `endpoints` measures through uvicorn adds both). For each kind it prints the CPU
time of this process per request, and the wall time:

- `floor`: the event loop waiting `WAIT_SECONDS` and nothing else (what every renewal's wait costs);
- `renewal`: a long poll's quiet renewal, `?wait=` `WAIT_SECONDS`, no work (reads nothing);
- `heartbeat, poll waiting`: a heartbeat while the runner's long poll waits (answered from it);
- `heartbeat, from its note`: a heartbeat answered from the note of the runner's last full one (a busy runner's);
- `heartbeat, reading the row`: a heartbeat after a wake-up of the runner, so that it reads the runner's row (the
  wake-up, an in-process call, is included).

With `--profile DIR`, each kind's requests also run under cProfile (its own overhead makes those timings
meaningless), one `DIR/<kind>.prof` each, for `python -m pstats`.

Not a scenario of `python -m bench`: it measures the hub's code from inside, a process whose every other cost
(uvicorn, the socket) is left out; the `endpoints` scenario measures a hub run as operators run it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from bench.infra import Servers

WAIT_SECONDS = 0.001
HEARTBEAT = json.dumps({"cpuPercent": 5.0, "memoryPercent": 40.0, "memoryUsedMb": 800, "diskPercent": 50}).encode()
WARM_UP = 200


def _scope(method: str, path: str, query: bytes = b"", token: str | None = None, body: bytes = b"") -> dict[str, Any]:
    """An HTTP scope as uvicorn makes it for a runner's request (the agent's headers)."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"python-httpx/0.28"),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"connection", b"keep-alive"),
    ]
    if token is not None:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers,
        "state": {},
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    """One request to the application: its status and body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _measure(name: str, request: Callable[[], Awaitable[None]], n: int, profile: Path | None) -> None:
    for _ in range(WARM_UP):
        await request()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await request()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"| {name} | {1e6 * cpu / n:.1f} | {1e6 * wall / n:.1f} |", flush=True)
    if profile is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await request()
        profiler.disable()
        profiler.dump_stats(profile / f"{name.replace(' ', '-').replace(',', '')}.prof")


async def run(database_url: str, redis_url: str, n: int, profile: Path | None) -> None:
    from exekra.config import Settings
    from exekra.db.migrate import upgrade_async
    from exekra.hub.app import create_app
    from exekra.hub.audit.service import SYSTEM
    from exekra.hub.runners import service
    from exekra.hub.runners.schemas import NewRunner

    await upgrade_async(database_url)
    with tempfile.TemporaryDirectory(prefix="exekra-sign-of-life-") as home:
        settings = Settings(database_url=database_url, redis_url=redis_url, home=Path(home), alerts_enabled=False)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            hub = app.state.hub
            runner = await service.register_runner(hub.db, NewRunner(name="sign-of-life"), SYSTEM, hub.licensing)
            credentials = {"machineKey": runner.machine_key, "machineSecret": runner.machine_secret}
            sign_in = json.dumps({**credentials, "hostname": "bench", "os": "linux", "version": "bench"}).encode()
            status, answer = await _call(app, _scope("POST", "/api/runner/auth", body=sign_in), sign_in)
            if status != 200:
                raise SystemExit(f"the runner's sign-in was answered {status}: {answer!r}")
            token = json.loads(answer)["token"]
            wakeups = hub.executions.dispatcher.wakeups
            deadline = time.monotonic() + 30
            while not wakeups.alone:  # notes are kept once the process has counted itself the only one
                if time.monotonic() > deadline:
                    raise SystemExit("the hub did not count itself the only hub process within 30 s")
                await asyncio.sleep(0.1)
            heartbeat = _scope("POST", "/api/runner/heartbeat", token=token, body=HEARTBEAT)
            renewal = _scope("GET", "/api/runner/poll", f"wait={WAIT_SECONDS}".encode(), token)

            async def expect(scope: dict[str, Any], wanted: int, body: bytes = b"") -> None:
                status, answer = await _call(app, scope, body)
                if status != wanted:
                    raise SystemExit(f"{scope['method']} {scope['path']} answered {status}: {answer!r}")

            async def beat() -> None:
                await expect(heartbeat, 200, HEARTBEAT)

            async def beat_reading() -> None:
                wakeups.notify(runner.runner.id)  # what a change to the runner does: its next heartbeat reads
                await beat()

            print("| sign of life | hub CPU µs per request | wall µs per request |\n|---|---:|---:|", flush=True)
            await _measure("floor", lambda: asyncio.sleep(WAIT_SECONDS), n, None)
            await _measure("renewal", lambda: expect(renewal, 204), n, profile)
            waiting = asyncio.create_task(expect(_scope("GET", "/api/runner/poll", b"wait=30", token), 204))
            await asyncio.sleep(0.5)  # the poll has read the runner's row and waits
            await _measure("heartbeat, poll waiting", beat, n, profile)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await beat()  # a full one, leaving its note
            await _measure("heartbeat, from its note", beat, n, profile)
            await _measure("heartbeat, reading the row", beat_reading, n, profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests of each kind (default 3000)")
    parser.add_argument("--profile", type=Path, help="also profile each kind with cProfile into this directory")
    args = parser.parse_args()
    if args.requests < 1:
        raise SystemExit("--requests must be at least 1")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    servers = Servers.start()
    try:
        uvloop.run(run(servers.new_database("sign_of_life"), servers.redis.url, args.requests, args.profile))
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
