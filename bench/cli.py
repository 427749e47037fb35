"""`python -m bench [scenario ...] [--quick] [--profile] [--no-peer]`: run scenarios, print and save results."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path

from bench.infra import BENCH_DIR, git_revision, machine_info, raise_nofile

SCENARIO_NAMES = [
    "pickup",
    "sequential",
    "throughput",
    "pickup-load",
    "procrastinate",
    "endpoints",
    "connected",
    "history",
    "redis-down",
]
PEER_SCENARIOS = {"pickup", "sequential", "throughput"}
# The scenarios that reach the hub through HTTP alone: `--up` runs them against `exekra up`.
UP_SCENARIOS = ["pickup", "sequential", "throughput", "pickup-load", "endpoints"]
# Upper bound of one scenario's wall time (full size); it is stopped and marked failed past it.
BUDGET_SECONDS = {
    "pickup": 600,
    "sequential": 900,
    "throughput": 1200,
    "pickup-load": 900,
    "procrastinate": 900,
    "endpoints": 600,
    "connected": 1500,
    "history": 2400,
    "redis-down": 600,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", metavar="scenario", help=f"any of {', '.join(SCENARIO_NAMES)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: minutes instead of tens of minutes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the hub during throughput, connected and each endpoint of endpoints",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the Prefect peer runs")
    parser.add_argument(
        "--hub-src",
        type=Path,
        default=None,
        help="exekra source the hub runs from (default: the src/ of the checkout this benchmark belongs to)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--connected-runners", type=int, default=None, help="override the connected-runners size")
    parser.add_argument(
        "--statements",
        action="store_true",
        help=(
            "PostgreSQL with pg_stat_statements: throughput prints and saves the statements per execution by kind,"
            " endpoints the statements, plans and PostgreSQL time per request"
        ),
    )
    parser.add_argument(
        "--hub-workers",
        type=int,
        default=1,
        metavar="N",
        help="run the hub with N worker processes (`exekra hub --workers N`; default 1)",
    )
    parser.add_argument(
        "--up",
        action="store_true",
        help=(
            f"run {', '.join(UP_SCENARIOS)} (default: all of them) against `exekra up` (its own embedded"
            " PostgreSQL and Redis, default settings but the rate limit), as an operator starts it"
        ),
    )
    return parser


def _hub_src(args: argparse.Namespace) -> Path:
    if args.hub_src is not None:
        return args.hub_src.resolve()
    return (BENCH_DIR.parent / "src").resolve()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIO_NAMES]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIO_NAMES)}")
    if args.hub_workers < 1:
        parser.error("--hub-workers must be at least 1")
    if args.up:
        if args.statements:
            parser.error("--up and --statements exclude each other: `exekra up`'s PostgreSQL counts no statements")
        other = [s for s in args.scenarios if s not in UP_SCENARIOS]
        if other:
            parser.error(f"--up runs {', '.join(UP_SCENARIOS)}, not {other[0]!r}")
        args.scenarios = args.scenarios or UP_SCENARIOS
    hub_src = _hub_src(args)
    # The harness uses exekra.embedded from the same source as the hub (committed code, not work in progress).
    sys.path.insert(0, str(hub_src))
    raise_nofile()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        return asyncio.run(_run(args, hub_src))
    except KeyboardInterrupt:
        print("interrupted; every started process was stopped", file=sys.stderr)
        return 130


async def _run(args: argparse.Namespace, hub_src: Path) -> int:
    from bench import report
    from bench.infra import Servers
    from bench.scenarios import SCENARIOS, Context, Result

    names = args.scenarios or SCENARIO_NAMES
    out: Path = args.results_dir
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    meta = {
        "startedAt": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "hubSource": str(hub_src),
        "hubRevision": git_revision(hub_src),
        "quick": args.quick,
        "hubWorkers": args.hub_workers,
        "statements": args.statements,
        "up": args.up,
        "machine": machine_info(),
    }
    print(
        f"hub source {hub_src} @ {meta['hubRevision']}, {args.hub_workers} worker(s); machine {meta['machine']}",
        flush=True,
    )
    peer = None
    if not args.no_peer and PEER_SCENARIOS & set(names):
        from bench.peers.prefect_peer import PrefectPeer

        peer = PrefectPeer(quick=args.quick)
        print("Prefect peer: checking its venv (the first run pip-installs it: a few minutes)…", flush=True)
        await asyncio.to_thread(peer.ensure_installed)
    servers = await asyncio.to_thread(Servers.start, statements=args.statements)
    results: list[Result] = []
    try:
        if peer is not None:
            peer.servers = servers
        ctx = Context(
            servers,
            hub_src,
            args.quick,
            out,
            profile=args.profile,
            peer=peer,
            connected_runners=args.connected_runners,
            hub_workers=args.hub_workers,
            statements=args.statements,
            up=args.up,
        )
        for name in names:
            print(f"\n=== {name} ===", flush=True)
            t0 = time.monotonic()
            try:
                result = await asyncio.wait_for(SCENARIOS[name](ctx), BUDGET_SECONDS[name])
            except Exception as exc:  # a failed scenario must not stop the others
                traceback.print_exc()
                result = Result(name, status="failed", note=f"{type(exc).__name__}: {exc}"[:300])
            result.seconds = time.monotonic() - t0
            results.append(result)
            ctx.done[name] = result
            print("\n".join(report.table_lines([result])), flush=True)
            report.write_json(results, meta, out / "latest.json")
    finally:
        if peer is not None:
            await asyncio.to_thread(peer.stop)
        if args.statements:  # its errors (a statement that failed is not in pg_stat_statements) and lock waits
            with contextlib.suppress(OSError):
                shutil.copyfile(servers.pg.log_path, out / "postgres.log")
        await asyncio.to_thread(servers.stop)
    with contextlib.suppress(Exception):
        report.write_charts(results, out)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    report.write_json(results, meta, out / f"bench-{stamp}.json")
    report.write_json(results, meta, out / "latest.json")
    report.write_markdown(results, meta, out / "latest.md")
    print("\n" + "\n".join(report.table_lines(results)))
    print(f"\nresults: {out}/latest.json, latest.md, charts: {', '.join(c for r in results for c in r.charts)}")
    return 0 if all(r.status != "failed" for r in results) else 1
