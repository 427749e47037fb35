"""What one NOTIFY costs PostgreSQL per listening connection (`python -m bench.notify_cost`).

Not a hub scenario: on a throwaway embedded PostgreSQL, one connection sends `--count` NOTIFYs (each its own
transaction, paced by `--pause` seconds) while 0, 1 or 2 other connections LISTEN, on the same channel or on
another one. Printed: the transactions pg_stat_database counted beyond the NOTIFY statements themselves, per
NOTIFY, and PostgreSQL's CPU per NOTIFY (psutil over the server's processes; 10 ms ticks, so use thousands).

Each hub process keeps one such LISTEN connection (`exekra.hub.listener`): this is what a notification costs
PostgreSQL for every hub process, heard or not.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import asyncpg
import psutil


async def _commits(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    finally:
        await conn.close()
    return int(value)


def _cpu(pid: int) -> float:
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def trial(url: str, pid: int, listeners: int, channel: str, count: int, pause: float) -> str:
    heard = 0

    def hear(*_args: object) -> None:
        nonlocal heard
        heard += 1

    listening = []
    for _ in range(listeners):
        conn = await asyncpg.connect(url)
        await conn.add_listener(channel, hear)
        listening.append(conn)
    sender = await asyncpg.connect(url)
    for conn in listening:  # a backend reports its transactions after a command: report what came before
        await conn.fetchval("SELECT 1")
    await asyncio.sleep(1.2)
    before, cpu_before = await _commits(url), _cpu(pid)
    for _ in range(count):
        await sender.execute("SELECT pg_notify('bench_notify', 'x')")
        if pause:
            await asyncio.sleep(pause)
    await asyncio.sleep(1.0)
    for conn in [*listening, sender]:
        await conn.fetchval("SELECT 1")
    await asyncio.sleep(1.2)
    after, cpu_after = await _commits(url), _cpu(pid)
    for conn in [*listening, sender]:
        await conn.close()
    # Beyond the NOTIFYs: one SELECT 1 per listener and for the sender, and the reading connection's own.
    extra = after - before - count - listeners - 2
    return (
        f"listeners {listeners} on {channel!r}: {extra / count:.2f} transactions per NOTIFY beyond its own, "
        f"PostgreSQL CPU {1e6 * (cpu_after - cpu_before) / count:.0f} µs per NOTIFY; heard {heard}"
    )


async def _main(url: str, pid: int, count: int, pause: float) -> None:
    for listeners, channel in ((0, "bench_notify"), (1, "bench_notify"), (2, "bench_notify"), (2, "other")):
        print(await trial(url, pid, listeners, channel, count, pause), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notify_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--pause", type=float, default=0.002, help="seconds between two NOTIFYs")
    parser.add_argument("--hub-src", type=Path, default=Path(__file__).resolve().parent.parent / "src")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.hub_src.resolve()))
    from exekra.embedded import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix="exekra-notify-"))
    server = EmbeddedPostgres(workdir / "pg", throwaway=True)
    server.start()
    try:
        assert server.pid is not None
        asyncio.run(_main(server.url, server.pid, args.count, args.pause))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
