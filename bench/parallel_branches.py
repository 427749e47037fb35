"""Parallel branches in the engine: the wall time of a workflow whose start node fans out to four branches of
one second each (`control.delay`), run with `maxParallel` 4 and 1, plus a parallel `control.foreach`.

    .venv/bin/python -m bench.parallel_branches [--branches 4] [--seconds 1] [--repeat 3]

The engine runs in this process (no hub, no runner: the figure is the engine's own scheduling), in a throwaway
work directory. Expected: about `seconds` with maxParallel ≥ branches, about `branches * seconds` with
maxParallel 1, so a ratio close to `branches`. The median of `--repeat` runs is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from exekra.workflow import run_workflow


def fan_out(branches: int, seconds: float, max_parallel: int) -> dict[str, Any]:
    """`start` -> `branches` delays of `seconds` each -> `done` (an implicit join)."""
    delays = [
        {"id": f"b{index}", "activity": "control.delay", "params": {"seconds": seconds}} for index in range(branches)
    ]
    return {
        "maxParallel": max_parallel,
        "nodes": [
            {"id": "start", "activity": "log.message", "params": {"message": "go"}},
            *delays,
            {"id": "done", "activity": "log.message", "params": {"message": "done"}},
        ],
        "edges": [{"from": "start", "to": d["id"]} for d in delays] + [{"from": d["id"], "to": "done"} for d in delays],
    }


def foreach(items: int, seconds: float, parallel: int) -> dict[str, Any]:
    """One `control.foreach` over `items` items, each a delay of `seconds`, `parallel` at a time."""
    body = [{"id": "wait", "activity": "control.delay", "params": {"seconds": seconds}}]
    params = {"items": list(range(items)), "nodes": body, "parallel": parallel}
    return {"nodes": [{"id": "each", "activity": "control.foreach", "params": params}]}


def wall_time(definition: dict[str, Any], workdir: Path) -> float:
    started = time.perf_counter()
    run_workflow(
        definition,
        {},
        execution={"id": "bench", "attempt": 1},
        credentials={},
        workdir=workdir,
        emit=lambda level, message, **_: None,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parallel_branches", description=__doc__.split("\n\n")[0])
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    cases = [
        (f"{args.branches} branches, maxParallel {args.branches}", fan_out(args.branches, args.seconds, args.branches)),
        (f"{args.branches} branches, maxParallel 1", fan_out(args.branches, args.seconds, 1)),
        (f"foreach of {args.branches}, parallel {args.branches}", foreach(args.branches, args.seconds, args.branches)),
        (f"foreach of {args.branches}, parallel 1", foreach(args.branches, args.seconds, 1)),
    ]
    medians: list[float] = []
    with tempfile.TemporaryDirectory(prefix="exekra-bench-") as workdir:
        for _, definition in cases:
            medians.append(statistics.median(wall_time(definition, Path(workdir)) for _ in range(args.repeat)))
    print(f"| Workflow ({args.seconds:g} s per branch or item, median of {args.repeat}) | wall time (s) |")
    print("|---|---:|")
    for (name, _), median in zip(cases, medians, strict=True):
        print(f"| {name} | {median:.2f} |")
    print(f"| **ratio** branches: maxParallel 1 / maxParallel {args.branches} | **{medians[1] / medians[0]:.2f}** |")
    print(f"| **ratio** foreach: parallel 1 / parallel {args.branches} | **{medians[3] / medians[2]:.2f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
