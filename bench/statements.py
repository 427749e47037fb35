"""What PostgreSQL ran per execution, statement by statement (`python -m bench throughput --statements`).

With `--statements` the embedded PostgreSQL starts with `shared_preload_libraries=pg_stat_statements`
(bench only: the hub's code and settings are unchanged), the throughput scenario resets the statistics when its
load begins and reads them when it ends, for the hub's database only, with Redis's per-command counters. Each
statement gets a short kind (`KINDS`: the claim for a polling runner, the pg_notify of a wake-up, the
sign-of-life read…); a claim that returns no row lost its race (or found nothing), so `rows` beside `calls`
counts the claims that missed.

pg_stat_database counts transactions that run no statement: a LISTEN connection's backend reads the
notifications in a transaction of its own each time it is woken, and PostgreSQL wakes every listening backend of
the database for every NOTIFY. "Transactions without a statement" (transactions minus statements) is mostly that.

Comparing runs: `python -m bench.statements RESULTS.json [RESULTS.json ...]` prints, for each `--hub-workers`
count among the files, the mean figures per execution of every kind, side by side (e.g. 1 against 2 processes).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg

# Seconds to wait after the load before reading pg_stat_database: a LISTEN connection's backend reads each
# notification in a transaction of its own (PostgreSQL wakes every listening backend of the database for every
# NOTIFY, whatever its channel), and reports those transactions only after its next command: the hub's listener
# sends one every 10 s (`exekra.hub.listener.KEEPALIVE_SECONDS`).
FLUSH_SECONDS = 11.5

SERVER_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.max": "5000",
    "pg_stat_statements.track": "top",
    "pg_stat_statements.track_utility": "on",  # BEGIN / COMMIT count as statements
    "pg_stat_statements.track_planning": "on",  # planning is timed apart from execution
    "log_lock_waits": "on",  # in the server's log, copied beside the results (postgres.log)
}

WAKEUP = "pg_notify wake-up (an assignment, for a poll in another process)"

# (kind, pattern): the first pattern found in a statement's text names it. The text is first normalised (`fold`):
# whitespace folded, and every constant and parameter written `?` (pg_stat_statements shows constants as $n).
KINDS: list[tuple[str, str]] = [
    ("BEGIN", r"^(BEGIN|START TRANSACTION)"),
    ("COMMIT", r"^COMMIT"),
    ("ROLLBACK", r"^ROLLBACK"),
    (
        "claim for a runner (poll, sweep, freed runner)",
        r"^WITH r AS \( SELECT id, type, labels, activities FROM runners",
    ),
    (
        "claim for an execution (create's match)",
        r"^WITH e AS \( SELECT id, workflow_id, concurrency_key, pinned_runner_id",
    ),
    (WAKEUP, r"^SELECT pg_notify\(\?, \?\)$"),
    ("sign-of-life read (poll, heartbeat)", r"^SELECT r\.id, r\.status, r\.enabled, r\.current_execution_id"),
    ("held execution read (poll answer, by id)", r"^SELECT e\.id, e\.attempt.* WHERE e\.id = \? AND e\.runner_id"),
    ("held execution read (woken poll)", r"WHERE e\.id = \(SELECT current_execution_id FROM runners"),
    ("start", r"^UPDATE executions SET status = \?, started_at = now\(\)"),
    ("finish (complete + lines)", r"^WITH ue AS \( UPDATE executions SET status = \?, error = \?"),
    ("log upload", r"^WITH ue AS \( UPDATE executions SET log_seq"),
    ("create: insert + audit", r"INSERT INTO executions"),
    ("create: workflow and version", r"^SELECT w\.id, w\.name, w\.archived"),
    ("create: version definition", r"^SELECT definition FROM workflow_versions"),
    ("signs of life write (1/s/process)", r"^WITH s AS \( SELECT \* FROM unnest"),
    ("touch OFFLINE runner", r"^UPDATE runners SET last_heartbeat_at = now\(\)"),
    ("dispatch: queued execution read", r"FROM executions WHERE id = \? AND status = \?$"),
    ("dispatch: head state", r"AS held FROM executions x WHERE x\.id = \?"),
    ("dispatch: still queued (reconcile)", r"WHERE id = ANY\(\?\) AND status = \?"),
    ("dispatch: all queued (reconcile)", r"FROM executions WHERE status = \? ORDER BY priority DESC"),
    (
        "dispatch: idle runners (sweep)",
        r"^SELECT id FROM runners WHERE status = \? AND enabled AND current_execution_id",
    ),
    ("dispatch: any queued (direct sweep)", r"^SELECT EXISTS \(SELECT \? FROM executions x WHERE x\.status = \?"),
    ("dispatch: runner profile", r"^SELECT id, type, labels, activities FROM runners WHERE id = \?$"),
    ("maintenance: runners OFFLINE", r"^WITH c AS \( SELECT id FROM runners WHERE status IN"),
    ("token read", r"FROM auth_tokens|t\.expires_at"),
    ("token lastUsedAt write", r"^UPDATE auth_tokens SET last_used_at"),
    ("leader lease", r"pg_try_advisory_lock"),
    ("keep-alive SELECT 1", r"^SELECT \?$"),
    ("bench: pg_stat_database", r"pg_stat_database|pg_stat_statements|pg_current_wal_lsn|LISTEN"),
]
_COMPILED = [(kind, re.compile(pattern, re.S)) for kind, pattern in KINDS]


async def redis_reset(redis_url: str) -> None:
    """Forget Redis's per-command counters (`INFO commandstats`)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.config_resetstat()
    finally:
        await client.aclose()


async def redis_commands(redis_url: str) -> dict[str, int]:
    """Calls per Redis command since `redis_reset` (the bench's own INFO/CONFIG included, a handful)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items() if isinstance(v, dict)}


def fold(query: str) -> str:
    """Whitespace folded to one space."""
    return re.sub(r"\s+", " ", query).strip()


def normalise(query: str) -> str:
    """`fold`, then constants and parameters as `?` (string literals, $n, numbers)."""
    text = re.sub(r"'(?:[^']|'')*'", "?", fold(query))
    text = re.sub(r"\$\d+", "?", text)
    return re.sub(r"(?<![\w.])\d+(?:\.\d+)?\b", "?", text)


def kind_of(query: str) -> str:
    folded = normalise(query)
    for kind, pattern in _COMPILED:
        if pattern.search(folded):
            return kind
    return "other: " + folded[:70]


async def prepare(database_url: str) -> None:
    """Create the extension in the hub's database (once) and forget what was counted so far (every database)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def snapshot(database_url: str) -> list[dict[str, Any]]:
    """Every statement counted in the hub's database since `prepare`: query, calls, rows, time."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT query, calls, rows, total_exec_time, total_plan_time, plans FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await conn.close()
    return [
        {
            "query": r["query"],
            "calls": int(r["calls"]),
            "rows": int(r["rows"]),
            "ms": float(r["total_exec_time"]),
            "planMs": float(r["total_plan_time"]),
            "plans": int(r["plans"]),
        }
        for r in rows
    ]


def per_execution(rows: list[dict[str, Any]], executions: int) -> dict[str, Any]:
    """Statements grouped by kind, per execution: calls, rows, calls that returned no row, time executing and
    planning (a statement prepared once and run with its generic plan is planned once, not per call)."""
    n = max(1, executions)
    kinds: dict[str, dict[str, float]] = defaultdict(
        lambda: {"calls": 0.0, "rows": 0.0, "ms": 0.0, "planMs": 0.0, "plans": 0.0, "statements": 0}
    )
    for row in rows:
        k = kinds[kind_of(row["query"])]
        for field in ("calls", "rows", "ms", "planMs", "plans"):
            k[field] += row.get(field, 0.0)
        k["statements"] += 1
    by_kind = {
        kind: {
            "callsPerExecution": v["calls"] / n,
            "rowsPerExecution": v["rows"] / n,
            "msPerExecution": v["ms"] / n,
            "planMsPerExecution": v["planMs"] / n,
            "plansPerExecution": v["plans"] / n,
            "calls": int(v["calls"]),
            "rows": int(v["rows"]),
            "distinctStatements": int(v["statements"]),
        }
        for kind, v in sorted(kinds.items(), key=lambda kv: -kv[1]["calls"])
    }
    total = sum(v["calls"] for v in kinds.values())
    return {
        "executions": executions,
        "statementsPerExecution": total / n,
        "byKind": by_kind,
        "top": [
            {**r, "kind": kind_of(r["query"]), "query": fold(r["query"])[:400]}
            for r in sorted(rows, key=lambda r: -r["calls"])[:40]
        ],
    }


def lines(summary: dict[str, Any], top: int = 20) -> list[str]:
    """The statement kinds per execution, most frequent first, as text lines."""
    out = [
        f"PostgreSQL statements per execution: {summary['statementsPerExecution']:.2f} "
        f"({summary['executions']} executions)",
        f"{'calls/exec':>10} {'rows/exec':>10} {'ms/exec':>8} {'plans/exec':>10} {'plan ms':>8}  kind",
    ]
    for kind, v in list(summary["byKind"].items())[:top]:
        out.append(
            f"{v['callsPerExecution']:10.3f} {v['rowsPerExecution']:10.3f} {v['msPerExecution']:8.3f}"
            f" {v.get('plansPerExecution', 0.0):10.3f} {v.get('planMsPerExecution', 0.0):8.3f}  {kind}"
        )
    return out


def _load(path: Path) -> tuple[int, dict[str, Any], dict[str, Any]]:
    data = json.loads(path.read_text())
    workers = int(data["meta"].get("hubWorkers", 1))
    details = data["scenarios"].get("throughput", {}).get("details", {})
    if "statements" in details:
        return workers, details["statements"], details
    raise SystemExit(f"{path}: no throughput result with statements (run with --statements)")


def compare(paths: list[Path]) -> list[str]:
    """Mean per-execution figures of each `--hub-workers` count among the files, side by side."""
    runs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for path in paths:
        workers, summary, details = _load(path)
        runs[workers].append((summary, details))
    counts = sorted(runs)
    kinds: dict[str, float] = defaultdict(float)
    for w in counts:
        for summary, _ in runs[w]:
            for kind, v in summary["byKind"].items():
                kinds[kind] = max(kinds[kind], v["callsPerExecution"])

    def mean(w: int, get: Any) -> float:
        return statistics.fmean(get(s, d) for s, d in runs[w])

    head = " | ".join(f"{w} proc. ({len(runs[w])} runs)" for w in counts)
    out = [f"| per execution | {head} |", "|---|" + "---:|" * len(counts)]

    def row(label: str, get: Any, fmt: str = "{:.2f}") -> None:
        out.append(f"| {label} | " + " | ".join(fmt.format(mean(w, get)) for w in counts) + " |")

    row("throughput, exec/s", lambda s, d: d["completed"] / d["elapsedSeconds"], "{:.1f}")
    row("hub CPU, ms", lambda s, d: d["cpuMsPerExecution"]["hub"])
    row("PostgreSQL CPU, ms", lambda s, d: d["cpuMsPerExecution"]["postgres"])
    row("transactions (pg_stat_database)", lambda s, d: d["databasePerExecution"]["transactions"])
    row("statements (pg_stat_statements)", lambda s, d: s["statementsPerExecution"])
    for kind in sorted(kinds, key=lambda k: -kinds[k]):
        if kinds[kind] < 0.005:
            continue

        def calls(s: dict[str, Any], d: dict[str, Any], kind: str = kind) -> float:
            return float(s["byKind"].get(kind, {}).get("callsPerExecution", 0.0))

        def missed(s: dict[str, Any], d: dict[str, Any], kind: str = kind) -> float:
            v = s["byKind"].get(kind, {})
            return float(v.get("callsPerExecution", 0.0) - v.get("rowsPerExecution", 0.0))

        row(kind, calls, "{:.3f}")
        if kind.startswith("claim") or kind.startswith("held execution"):
            row(f"  … of which returned no row ({kind.split(' (')[0]})", missed, "{:.3f}")
    row("long polls answered 204", lambda s, d: float(s.get("polls204PerExecution", 0.0)), "{:.3f}")
    row(
        "transactions without a statement (LISTEN reads…)",
        lambda s, d: d["databasePerExecution"]["transactions"] - s["statementsPerExecution"],
    )

    commands: dict[str, float] = defaultdict(float)
    for w in counts:
        for s, _ in runs[w]:
            for name, n in s.get("redisCommandsPerExecution", {}).items():
                commands[name] = max(commands[name], n)
    row("Redis commands", lambda s, d: float(sum(s.get("redisCommandsPerExecution", {}).values())))
    for name in sorted(commands, key=lambda k: -commands[k]):
        if commands[name] >= 0.005:
            row(f"  Redis {name}", lambda s, d, n=name: float(s.get("redisCommandsPerExecution", {}).get(n, 0.0)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.statements", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results JSON files of `--statements` runs")
    args = parser.parse_args(argv)
    print("\n".join(compare(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
