"""What one connected runner's open long poll costs the hub in memory, by layer (issue 17).

`python -m bench.poll_memory [--polls 500]` runs the hub in this process (uvicorn with uvloop and httptools, as
`exekra hub` runs it) on embedded PostgreSQL and Redis, and simulated runners in a child process. Once the runners
have signed in, tracemalloc starts and takes a snapshot; another is taken once each runner holds a long poll open
(renewed when it ends, as a runner does). The difference, divided by the number of polls, is what one signed-in
runner costs while it waits: its connection, its held request and what the hub remembers of it since its first
poll (a sign-in's own allocations are not counted). Each
allocation still alive is charged to the innermost frame of its traceback that is not the standard library: the
layer (uvicorn, FastAPI and Starlette, a hub module) that asked for it. Allocations made by C code with no Python
frame of its own (uvloop's transports) are charged to the frame that was running.

Not a scenario of `python -m bench`: it measures one process from inside, under tracemalloc (which slows it and
makes its timings meaningless); the `connected` scenario measures the RSS of a hub run as operators run it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import sys
import sysconfig
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.infra import ADMIN_EMAIL, ADMIN_PASSWORD, HubProcess, Servers, free_port, raise_nofile

FRAMES = 12  # the innermost frames are kept: enough to find the layer, cheap enough to keep the hub responsive
WAIT_SECONDS = 30.0  # the longest poll the hub holds
RAMP_SECONDS = 40.0
STDLIB = (sysconfig.get_paths()["stdlib"], "<frozen ", "<string>", "<unknown>")
EXEKRA_SRC = str(Path(__file__).resolve().parent.parent / "src" / "exekra")


def layer_of(traceback: tracemalloc.Traceback) -> tuple[str, str]:
    """The layer that asked for an allocation (the innermost frame outside the standard library), and that frame's
    file and line."""
    for frame in reversed(traceback):  # a Traceback lists the oldest frame first
        name = frame.filename
        if name.startswith(STDLIB) and "site-packages" not in name:
            continue
        if name.startswith(EXEKRA_SRC):
            layer = "exekra/" + os.path.relpath(name, EXEKRA_SRC)
        elif "site-packages" in name:
            layer = name.split("site-packages/", 1)[1].split("/", 1)[0]
        else:
            layer = os.path.basename(name)
        return layer, f"{name.split('site-packages/')[-1].split('/src/')[-1]}:{frame.lineno}"
    innermost = traceback[-1] if len(traceback) else None
    if innermost is None:
        return "(no frame)", "(no frame)"
    return f"stdlib {os.path.basename(innermost.filename)}", f"{innermost.filename}:{innermost.lineno}"


def clients(url: str, creds: list[dict[str, str]], signed_in: Any, go: Any, stop: Any) -> None:
    """The child process: the runners sign in (then `signed_in`), and once `go` is set each holds a long poll open
    until `stop` is set."""
    raise_nofile()
    import aiohttp

    from bench.client import RunnerStats, SimRunner, session

    async def main() -> None:
        stats = RunnerStats()
        async with session(timeout=WAIT_SECONDS + 60) as http:
            runners = [SimRunner(http, url, c, stats, wait=WAIT_SECONDS) for c in creds]
            gate = asyncio.Semaphore(16)

            async def sign_in(runner: SimRunner) -> None:
                async with gate:
                    await runner.auth()

            async def poll(i: int, runner: SimRunner) -> None:
                await asyncio.sleep(RAMP_SECONDS * i / len(runners))  # a hub under tracemalloc is slow to take them
                while True:  # a poll that ends (204 after `wait`) is renewed, as a runner does
                    await runner.poll_once()

            await asyncio.gather(*(sign_in(r) for r in runners))
            loop = asyncio.get_running_loop()
            signed_in.set()
            await loop.run_in_executor(None, go.wait)
            polls = [asyncio.create_task(poll(i, r)) for i, r in enumerate(runners)]
            await loop.run_in_executor(None, stop.wait)
            for task in polls:
                task.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            if stats.errors:
                print(f"client errors: {stats.errors}", file=sys.stderr)

    try:
        asyncio.run(main())
    except aiohttp.ClientError as exc:
        print(f"client failed: {exc}", file=sys.stderr)


async def measure(polls: int, servers: Servers, top: int, detail: list[str]) -> None:
    import uvicorn

    from bench.client import Api, session
    from exekra.config import Settings
    from exekra.hub.app import create_app
    from exekra.hub.server import APP_OPTIONS

    hub = HubProcess(
        hub_src=Path(EXEKRA_SRC).parent,
        database_url=servers.new_database("bench_memory"),
        redis_url=servers.redis.url,
        home=servers.workdir / "home-memory",
    )
    hub.home.mkdir(parents=True)
    hub.migrate()
    os.environ.update({k: v for k, v in hub.env().items() if k != "PYTHONPATH"})
    os.chdir(hub.home)
    port = free_port()
    app = create_app(Settings())
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # as `exekra hub` (the application believes X-Forwarded-* itself, from trusted proxies)
        **APP_OPTIONS,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn's Server has a flag, no event
        if serving.done():
            serving.result()  # its start-up failed: raise why
            raise SystemExit("the hub stopped during start-up")
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    async with session() as http:
        api = Api(http, url)
        await api.bootstrap(ADMIN_EMAIL, ADMIN_PASSWORD)
        creds = await api.register_runners("mem", polls)
    context = multiprocessing.get_context("spawn")
    signed_in, go, stop = (context.Event() for _ in range(3))
    child = context.Process(target=clients, args=(url, creds, signed_in, go, stop))
    child.start()
    loop = asyncio.get_running_loop()
    try:
        if not await loop.run_in_executor(None, signed_in.wait, 600):
            raise SystemExit("the runners did not sign in within 600 s")
        gc.collect()  # what is garbage already is not the polls' cost
        tracemalloc.start(FRAMES)
        before = tracemalloc.take_snapshot()
        go.set()
        deadline = loop.time() + 600
        while app.state.hub.dispatcher.wakeups.held < polls:  # the hub's own count of the polls it holds
            if loop.time() > deadline:
                raise SystemExit(f"{app.state.hub.dispatcher.wakeups.held} of {polls} polls held after 600 s")
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        gc.collect()  # nor the garbage of ended polls
        after = tracemalloc.take_snapshot()
    finally:
        stop.set()
        await loop.run_in_executor(None, child.join, 60)
        tracemalloc.stop()
        server.should_exit = True
        await serving
    by_layer: dict[str, int] = defaultdict(int)
    by_line: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for stat in after.compare_to(before, "traceback"):
        layer, line = layer_of(stat.traceback)
        by_layer[layer] += stat.size_diff
        by_line[layer][line] += stat.size_diff
    total = sum(by_layer.values())
    print(f"\n{polls} runners signed in, each holding one long poll; bytes per runner, by layer")
    print(f"{'layer':<48} {'bytes':>8}")
    for layer, size in sorted(by_layer.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{layer:<48} {size / polls:>8.0f}")
    rest = total - sum(size for _, size in sorted(by_layer.items(), key=lambda kv: -kv[1])[:top])
    print(f"{'(the rest)':<48} {rest / polls:>8.0f}")
    print(f"{'total':<48} {total / polls:>8.0f}")
    for layer in detail:
        print(f"\n{layer}, by line")
        for line, size in sorted(by_line[layer].items(), key=lambda kv: -kv[1])[:top]:
            print(f"{line:<60} {size / polls:>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=500, help="runners, each holding one long poll (500)")
    parser.add_argument("--top", type=int, default=25, help="layers (and lines of a layer) listed (25)")
    parser.add_argument("--detail", action="append", default=[], metavar="LAYER", help="list LAYER's lines too")
    args = parser.parse_args()
    raise_nofile()
    import uvloop

    servers = Servers.start()
    try:
        uvloop.run(measure(args.polls, servers, args.top, args.detail))
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
