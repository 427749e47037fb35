"""The hot path's claim and finish statements of two source trees, side by side, for a workflow without a
concurrency limit: PostgreSQL's answer time per statement, alternating the trees cycle by cycle on one connection.

    .venv/bin/python -m bench.statements_ab --before OLD/src [--after src] [--cycles 16000]

`--before` is the `src` folder of another checkout (e.g. `git archive <rev> src | tar -x -C DIR`). Each tree's
`lifecycle._CLAIM_FOR_RUNNER`, `_START` and `_FINISH` are read by a subprocess that imports that tree, and prepared
on one connection to a throwaway embedded PostgreSQL migrated by this checkout (an older tree's statements run
against the newer schema: columns are only ever added). The table holds 20,000 finished executions and a queue of
50 (vacuumed every 500 cycles), so that the claims take the queue's partial index as they do in production. Each
cycle is one claim, start and finish of one tree, then one new queued execution; the trees alternate. The medians
and 90th percentiles of the claim and the finish are printed (the start is the same statement in both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from exekra.db.migrate import upgrade_async
from exekra.embedded import EmbeddedPostgres, create_database

_READ_STATEMENTS = """
import json
from exekra.hub import lifecycle
print(json.dumps({name: str(getattr(lifecycle, attribute).text)
                  for name, attribute in (("claim", "_CLAIM_FOR_RUNNER"), ("start", "_START"), ("finish", "_FINISH"))}))
"""
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # SQLAlchemy's `:name`, not a `::` cast
_ADD_QUEUED = (
    "INSERT INTO executions (id, workflow_id, version_id, status, priority, trigger_type) "
    "SELECT gen_random_uuid(), $1, $2, $3, 5, 'API' FROM generate_series(1, $4::int)"
)
QUEUE = 50
WARM_UP = 200


def statements_of(src: str) -> dict[str, str]:
    """The statements as the tree at `src` writes them."""
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", _READ_STATEMENTS], env=env, capture_output=True, text=True, check=True)
    statements: dict[str, str] = json.loads(out.stdout)
    return statements


def positional(statement: str) -> tuple[str, list[str]]:
    """The statement with `$n` parameters, and the names in their order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAMETER.sub(number, statement), names


async def measure(url: str, trees: dict[str, dict[str, str]], cycles: int) -> dict[tuple[str, str], list[float]]:
    connection = await asyncpg.connect(url)
    workflow, version, runner = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await connection.execute("INSERT INTO workflows (id, name) VALUES ($1, 'ab')", workflow)
    await connection.execute(
        "INSERT INTO workflow_versions (id, workflow_id, number, definition, published) VALUES ($1, $2, 1, '{}', true)",
        version,
        workflow,
    )
    await connection.execute(
        "INSERT INTO runners (id, name, machine_key, secret_hash, status, last_heartbeat_at) "
        "VALUES ($1, 'ab', 'ab', 'ab', 'ONLINE', now())",
        runner,
    )
    await connection.execute(_ADD_QUEUED, workflow, version, "COMPLETED", 20_000)
    await connection.execute(_ADD_QUEUED, workflow, version, "QUEUED", QUEUE)
    await connection.execute("VACUUM ANALYZE executions")
    prepared: dict[str, dict[str, tuple[Any, list[str]]]] = {}
    for label, statements in trees.items():
        prepared[label] = {}
        for name, statement in statements.items():
            sql, names = positional(statement)
            prepared[label][name] = (await connection.prepare(sql), names)
    times: dict[tuple[str, str], list[float]] = {(label, kind): [] for label in trees for kind in ("claim", "finish")}
    labels = list(trees)
    for cycle in range(cycles):
        label = labels[cycle % len(labels)]
        tree = prepared[label]

        async def run(name: str, values: dict[str, Any], tree: dict[str, tuple[Any, list[str]]] = tree) -> Any:
            statement, names = tree[name]
            return await statement.fetchrow(*[values[n] for n in names])

        began = time.perf_counter()
        claimed = await run("claim", {"runner_id": runner})
        claimed_in = time.perf_counter() - began
        held = {"execution_id": claimed["id"], "runner_id": runner, "epoch": 0, "attempt": claimed["attempt"]}
        assert await run("start", held)
        report: dict[str, Any] = {"status": "COMPLETED", "sources": ["RUNNING"], "error": None, "outputs": None}
        report |= {"cpu_avg": None, "cpu_peak": None, "mem_avg_mb": None, "mem_peak_mb": None}
        report |= {"log_count": 0, "log_size": 0, "log_cap": 1000, "log_marker": ""}  # no final log lines
        report |= {f"line_{field}": [] for field in ("ts", "levels", "messages", "nodes", "events")}
        began = time.perf_counter()
        assert await run("finish", {**held, **report})
        finished_in = time.perf_counter() - began
        await connection.execute(_ADD_QUEUED, workflow, version, "QUEUED", 1)
        if cycle % 500 == 499:
            await connection.execute("VACUUM executions")
        if cycle >= WARM_UP:
            times[(label, "claim")].append(claimed_in)
            times[(label, "finish")].append(finished_in)
    await connection.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the src folder of the tree to compare with")
    parser.add_argument("--after", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--cycles", type=int, default=16_000)
    args = parser.parse_args()
    trees = {"before": statements_of(args.before), "after": statements_of(args.after)}
    with tempfile.TemporaryDirectory() as data, EmbeddedPostgres(Path(data) / "pg", throwaway=True) as server:
        url = create_database(server.url, "statements_ab")
        asyncio.run(upgrade_async(url))
        times = asyncio.run(measure(url, trees, args.cycles))
    for (label, kind), values in sorted(times.items(), key=lambda item: (item[0][1], item[0][0] != "before")):
        values.sort()
        p90 = values[int(len(values) * 0.9)]
        print(f"{kind:7s} {label:7s} median {statistics.median(values) * 1e3:.3f} ms  p90 {p90 * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
