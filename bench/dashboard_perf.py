"""Dashboard pages with a million executions in history: server time of the executions list, the overview and
the operator pages (Studio, triggers, credentials, audit, my account, runner history).

    .venv/bin/python -m bench.dashboard_perf [--rows 1000000] [--audit-rows 100000] [--iterations 20]
                                             [--database-url postgresql://…]

Seeds `--rows` finished executions spread over 30 days (90 % COMPLETED, 7 % FAILED, 3 % STOPPED, ten
workflows, twenty runners) plus a small queue with one `INSERT … SELECT generate_series`, then `VACUUM
ANALYZE`s as autovacuum would. Pages are requested in process through the ASGI app (no network), signed in
as an admin, so the figure is the hub's own time: routing, queries, template rendering. Target: < 200 ms for
the executions pages and the overview, p95 ≤ 100 ms for the operator pages (issue 15), which are measured with
`--audit-rows` audit entries, 50 triggers (half of them webhooks) whose last fires started executions of the
history, 20 credentials read by published versions, and a week of 30-second heartbeats of one runner.
Without `--database-url` (a server's URL; a database is created on it and dropped) an embedded, throwaway
PostgreSQL is started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from exekra.config import Settings
from exekra.db.migrate import upgrade_async
from exekra.embedded import EmbeddedPostgres, create_database, drop_database
from exekra.hub.app import create_app
from exekra.hub.context import Hub
from exekra.hub.executions.models import Execution
from exekra.hub.executions.queries import encode_cursor

TARGET_MS = 200.0
OPERATOR_TARGET_MS = 100.0
TRIGGERS = 50
CREDENTIALS = 20
HEARTBEATS = 7 * 24 * 120  # a week of 30-second heartbeats
AUDIT_ACTIONS = [
    "execution.create",
    "execution.stop",
    "workflow.create",
    "workflow.publish",
    "workflow.version.create",
    "trigger.create",
    "trigger.update",
    "credential.create",
    "runner.register",
    "user.update",
    "auth.login",
]
WORKFLOWS = 10
RUNNERS = 20
QUEUED = 200
CHUNK = 250_000
PASSWORD = "bench-password-123"
DEFINITION = {"nodes": [{"id": "a", "activity": "log.message", "params": {"message": "hi"}}], "edges": []}

# Row g (1 = newest) of the history: created 30 days / rows apart, finished 1 s to 10 min later.
_SEED = text(
    """
INSERT INTO executions (id, workflow_id, version_id, runner_id, status, priority, attempt, trigger_type,
                        inputs, error, queued_at, assigned_at, started_at, completed_at, created_at,
                        cpu_avg, cpu_peak, mem_avg_mb, mem_peak_mb)
SELECT gen_random_uuid(),
       (CAST(:workflows AS uuid[]))[1 + g % :n_workflows],
       (CAST(:versions AS uuid[]))[1 + g % :n_workflows],
       (CAST(:runners AS uuid[]))[1 + g % :n_runners],
       CASE WHEN g % 100 < 90 THEN 'COMPLETED' WHEN g % 100 < 97 THEN 'FAILED' ELSE 'STOPPED' END,
       5, 1, CASE WHEN g % 10 = 0 THEN 'SCHEDULE' ELSE 'API' END,
       '{}'::jsonb,
       CASE WHEN g % 100 BETWEEN 90 AND 96 THEN 'exit code 1' END,
       t, t + interval '10 ms', t + interval '50 ms', t + make_interval(secs => 1 + g % 600), t,
       g % 100, g % 100 + 10, 50 + g % 200, 60 + g % 300
  FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g,
       LATERAL (SELECT now() - make_interval(secs => g * :spacing) AS t) AS created"""
)

_QUEUE = text(
    """
INSERT INTO executions (id, workflow_id, version_id, status, priority, trigger_type, required_labels,
                        queued_at, created_at)
SELECT gen_random_uuid(), (CAST(:workflows AS uuid[]))[1], (CAST(:versions AS uuid[]))[1], 'QUEUED', g % 10, 'API', ARRAY['nowhere'],
       now() - make_interval(secs => g), now() - make_interval(secs => g)
  FROM generate_series(1, :queued) AS g"""
)


_AUDIT = text(
    """
INSERT INTO audit_log (ts, actor_type, actor_id, action, entity_type, entity_id, ip, details)
SELECT now() - make_interval(secs => g * :spacing),
       CASE WHEN g % 10 = 0 THEN 'TRIGGER' WHEN g % 10 = 1 THEN 'SYSTEM' ELSE 'USER' END,
       CASE WHEN g % 10 = 1 THEN NULL ELSE :actor END,
       (CAST(:actions AS text[]))[1 + g % array_length(CAST(:actions AS text[]), 1)],
       'execution', gen_random_uuid()::text, '10.0.0.' || (g % 250), jsonb_build_object('n', g)
  FROM generate_series(1, :rows) AS g"""
)

_HEARTBEATS = text(
    """
INSERT INTO runner_metrics (runner_id, ts, cpu_percent, memory_percent, memory_used_mb, disk_percent, disk_free_gb)
SELECT :runner, now() - g * interval '30 seconds', 20 + g % 70, 40 + g % 30, 2048, 55, 120
  FROM generate_series(0, :beats - 1) AS g"""
)


@dataclass(frozen=True)
class Timing:
    name: str
    path: str
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The given server, or an embedded throwaway one for the run."""
    if url:
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="exekra-dashboard-perf-"))
    try:
        with EmbeddedPostgres(root / "pg", throwaway=True) as server:
            yield server.url
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_hub(database_url: str, home: Path) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    settings = Settings(
        database_url=database_url,
        redis_url=None,
        home=home,
        secret_key="ZXhla3JhIGRhc2hib2FyZCBwZXJmIGtleSAzMiBieXQ=",  # 32 bytes in base64
        rate_limit_per_minute=10_000_000,
    )
    app = create_app(settings, owns_process=True)  # the hub is what this process runs: its collector policy too
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=120) as client:
            r = await client.post("/api/auth/bootstrap", json={"email": "perf@exekra.local", "password": PASSWORD})
            r.raise_for_status()
            client.headers["Authorization"] = f"Bearer {r.json()['token']}"
            yield app.state.hub, client


async def seed(hub: Hub, client: httpx.AsyncClient, rows: int) -> dict[str, list[str]]:
    """Workflows and runners through the API, then the history and a queue straight into PostgreSQL."""
    workflows, versions, runners = [], [], []
    for i in range(WORKFLOWS):
        r = await client.post("/api/workflows", json={"name": f"perf-{i}", "definition": DEFINITION})
        r.raise_for_status()
        workflows.append(r.json()["workflow"]["id"])
        versions.append(r.json()["version"]["id"])
        (await client.post(f"/api/workflows/{workflows[-1]}/publish")).raise_for_status()
    for i in range(RUNNERS):
        r = await client.post("/api/runners", json={"name": f"perf-runner-{i:02d}", "labels": ["perf"]})
        r.raise_for_status()
        runners.append(r.json()["runner"]["id"])
    ids = {"workflows": workflows, "versions": versions, "runners": runners}
    arrays = {key: [uuid.UUID(value) for value in values] for key, values in ids.items()}
    started = time.perf_counter()
    for first in range(1, rows + 1, CHUNK):
        last = min(rows, first + CHUNK - 1)
        async with hub.db.transaction() as session:
            await session.execute(
                _SEED,
                {
                    **arrays,
                    "n_workflows": WORKFLOWS,
                    "n_runners": RUNNERS,
                    "first": first,
                    "last": last,
                    "spacing": 30 * 86400 / rows,
                },
            )
        print(f"  seeded {last:>9,} executions ({time.perf_counter() - started:5.1f} s)", flush=True)
    async with hub.db.transaction() as session:
        await session.execute(_QUEUE, {**arrays, "queued": QUEUED})
    async with hub.db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE executions"))
    print(f"  seeded and analysed in {time.perf_counter() - started:.1f} s", flush=True)
    return ids


async def seed_operator_pages(hub: Hub, client: httpx.AsyncClient, ids: dict[str, list[str]], audit_rows: int) -> str:
    """Triggers that fired, credentials in use, a week of heartbeats and `audit_rows` audit entries; returns the
    id of an audit entry half-way back (a deep keyset cursor)."""
    started = time.perf_counter()
    for i in range(CREDENTIALS):
        body = {"name": f"cred-{i:02d}", "type": "basic", "fields": {"user": "u", "password": "p"}}
        (await client.post("/api/credentials", json=body)).raise_for_status()
    reading = {
        "nodes": [
            {
                "id": f"n{i}",
                "activity": "log.message",
                "params": {"message": f"{{{{ credentials['cred-{i:02d}'].user }}}}"},
            }
            for i in range(CREDENTIALS)
        ],
        "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(CREDENTIALS - 1)],
    }
    workflow = ids["workflows"][0]
    (await client.post(f"/api/workflows/{workflow}/versions", json={"definition": reading})).raise_for_status()
    (await client.post(f"/api/workflows/{workflow}/publish")).raise_for_status()
    for i in range(TRIGGERS):
        kind = "WEBHOOK" if i % 2 else "SCHEDULE"
        body: dict[str, Any] = {"workflowId": ids["workflows"][i % WORKFLOWS], "type": kind, "name": f"trigger-{i:02d}"}
        if kind == "SCHEDULE":
            body |= {"cronExpression": f"{i} * * * *", "timezone": "Europe/Berlin"}
        (await client.post("/api/triggers", json=body)).raise_for_status()
    async with hub.db.transaction() as session:
        # Each trigger's last fire: the newest execution of its workflow becomes that fire's run.
        await session.execute(
            text(
                """
WITH runs AS (
  SELECT t.id AS trigger_id, t.type, e.id AS execution_id, e.created_at
    FROM triggers t
    CROSS JOIN LATERAL (SELECT id, created_at FROM executions WHERE workflow_id = t.workflow_id
                        ORDER BY created_at DESC LIMIT 1 OFFSET (hashtext(t.name) & 15)) AS e
), marked AS (
  UPDATE executions SET triggered_by = runs.trigger_id::text FROM runs WHERE executions.id = runs.execution_id
), fires AS (
  INSERT INTO trigger_fires (trigger_id, fire_time, execution_id)
  SELECT trigger_id, created_at, execution_id FROM runs WHERE type = 'SCHEDULE'
)
UPDATE triggers SET last_fired_at = runs.created_at FROM runs WHERE triggers.id = runs.trigger_id"""
            )
        )
        await session.execute(_HEARTBEATS, {"runner": uuid.UUID(ids["runners"][7]), "beats": HEARTBEATS})
        me = (await client.get("/api/auth/me")).json()["user"]["id"]
        await session.execute(
            _AUDIT, {"rows": audit_rows, "spacing": 30 * 86400 / audit_rows, "actor": me, "actions": AUDIT_ACTIONS}
        )
    for i in range(5):
        (await client.post("/api/auth/tokens", json={"name": f"script-{i}"})).raise_for_status()
    async with hub.db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("audit_log", "runner_metrics", "triggers", "trigger_fires", "executions"):
            await autocommit.execute(text(f"VACUUM ANALYZE {table}"))
    async with hub.db.session() as session:
        middle = (
            await session.execute(
                text("SELECT id FROM audit_log ORDER BY id DESC OFFSET :n LIMIT 1"), {"n": audit_rows // 2}
            )
        ).scalar_one()
    print(f"  operator pages seeded in {time.perf_counter() - started:.1f} s", flush=True)
    return str(middle)


async def operator_pages(
    client: httpx.AsyncClient, ids: dict[str, list[str]], audit_cursor: str
) -> list[tuple[str, str]]:
    """The pages of issue 15, with real ids from the seeded data."""
    workflow, runner = ids["workflows"][0], ids["runners"][7]
    trigger = (await client.get("/api/triggers", params={"limit": 1})).json()["triggers"][0]["id"]
    credential = (await client.get("/api/credentials", params={"limit": 1})).json()["credentials"][0]["id"]
    execution = (await client.get("/api/executions", params={"limit": 1, "status": "FAILED"})).json()
    execution_id = execution["executions"][0]["id"]
    week_ago = "2000-01-01T00:00"
    return [
        ("studio (design page)", f"/workflows/{workflow}/design"),
        ("GET /api/activities", "/api/activities"),
        ("triggers, all", "/triggers"),
        ("triggers, one workflow", f"/triggers?workflow={workflow}"),
        ("trigger detail", f"/triggers/{trigger}"),
        ("cron preview fragment", "/triggers/cron-preview?cron=0+7+*+*+1-5&timezone=Europe/Berlin"),
        ("credentials", "/credentials"),
        ("credential detail", f"/credentials/{credential}"),
        ("audit, newest page", "/audit"),
        ("audit, half-way back (cursor)", f"/audit?cursor={audit_cursor}"),
        ("audit, one action", "/audit?action=workflow.publish"),
        ("audit, one actor", "/audit?actor=perf@exekra.local"),
        ("audit, one entity", f"/audit?entityType=execution&entityId={execution_id}"),
        ("audit, time window", f"/audit?since={week_ago}&action=execution.stop"),
        ("my account", "/account"),
        ("runner history, 7 days", f"/runners/{runner}?hours=168"),
        ("runner history, 24 h", f"/runners/{runner}?hours=24"),
    ]


LOG_LINES = 10_000
_SEED_LOG = text(
    """
INSERT INTO execution_logs (execution_id, seq, ts, level, message, node, event)
SELECT :id, g, now(), 'INFO', 'line ' || g, 'n' || (g / 2000),
       CASE WHEN g % 2000 = 1 THEN 'started' WHEN g % 2000 = 0 THEN 'completed' END
  FROM generate_series(1, :lines) g"""
)


async def execution_pages(hub: Hub, client: httpx.AsyncClient, lines: int) -> list[tuple[str, str]]:
    """An execution's page with its live graph, and one poll of it, over a log of `lines` lines with node
    events spread through it."""
    found = (await client.get("/api/executions", params={"limit": 1, "status": "COMPLETED"})).json()
    execution_id = found["executions"][0]["id"]
    async with hub.db.transaction() as session:
        await session.execute(_SEED_LOG, {"id": uuid.UUID(execution_id), "lines": lines})
    return [
        (f"execution detail + graph ({lines:,} lines)", f"/executions/{execution_id}"),
        ("execution live poll with graph states", f"/executions/{execution_id}/live?after={lines - 10}&state=x"),
        ("GET /api/executions/{id}/nodes", f"/api/executions/{execution_id}/nodes"),
    ]


async def deep_cursor(hub: Hub, offset: int) -> str:
    """The keyset cursor of the row `offset` places into the history (as a reader paging that far gets)."""
    async with hub.db.session() as session:
        row = (
            await session.execute(
                text("SELECT created_at, id FROM executions ORDER BY created_at DESC, id DESC OFFSET :n LIMIT 1"),
                {"n": offset},
            )
        ).one()
    return encode_cursor(Execution(created_at=row[0], id=row[1]))


async def measure(client: httpx.AsyncClient, name: str, path: str, iterations: int) -> Timing:
    for _ in range(2):  # warm the pool, the plan cache and the template cache
        (await client.get(path)).raise_for_status()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        r = await client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        r.raise_for_status()
    return Timing(name, path, samples)


async def sql_ms(hub: Hub, sql: str) -> float:
    async with hub.db.session() as session:
        started = time.perf_counter()
        await session.execute(text(sql))
        return (time.perf_counter() - started) * 1000


async def run(args: argparse.Namespace) -> int:
    with postgres_server(args.database_url) as server_url:
        name = f"exekra_dashboard_perf_{secrets.token_hex(4)}"
        database_url = create_database(server_url, name)
        home = Path(tempfile.mkdtemp(prefix="exekra-dashboard-perf-home-"))
        try:
            await upgrade_async(database_url)
            async with running_hub(database_url, home) as (hub, client):
                print(f"Seeding {args.rows:,} executions …", flush=True)
                ids = await seed(hub, client, args.rows)
                print(f"Seeding {args.audit_rows:,} audit entries and the operator pages' data …", flush=True)
                audit_cursor = await seed_operator_pages(hub, client, ids, args.audit_rows)
                cursor = await deep_cursor(hub, args.rows // 2)
                workflow, runner = ids["workflows"][3], ids["runners"][7]
                pages = [
                    ("executions, newest page", "/executions"),
                    ("executions, page half-way back (cursor)", f"/executions?cursor={cursor}"),
                    ("executions, status FAILED", "/executions?status=FAILED"),
                    ("executions, one workflow", f"/executions?workflow={workflow}"),
                    ("executions, runner + status", f"/executions?runner={runner}&status=COMPLETED"),
                    ("overview", "/"),
                    ("overview, 7 days", "/?hours=168"),
                    ("overview live fragment", "/overview/live"),
                    ("GET /api/stats", "/api/stats"),
                    ("runner detail", f"/runners/{runner}"),
                    ("workflow detail", f"/workflows/{workflow}"),
                ]
                pages += await operator_pages(client, ids, audit_cursor)
                pages += await execution_pages(hub, client, LOG_LINES)
                timings = [await measure(client, label, path, args.iterations) for label, path in pages]
                count_ms = await sql_ms(hub, "SELECT count(*) FROM executions")
        finally:
            drop_database(server_url, name)
            shutil.rmtree(home, ignore_errors=True)
    return report(args, timings, count_ms)


def report(args: argparse.Namespace, timings: list[Timing], count_ms: float) -> int:
    print()
    print(
        f"Dashboard server time with {args.rows:,} executions and {args.audit_rows:,} audit entries, "
        f"{args.iterations} requests each (ms):"
    )
    print(f"{'page':<42} {'median':>8} {'p95':>8} {'max':>8}")
    failed = []
    for t in timings:
        verdict = ""
        if _operator_page(t.path):
            verdict = "ok" if t.p95 <= OPERATOR_TARGET_MS else "OVER"
        elif t.path.startswith("/executions") or t.path == "/":
            verdict = "ok" if t.p95 < TARGET_MS else "OVER"
        if verdict == "OVER":
            failed.append(t.name)
        print(f"{t.name:<42} {t.median:8.1f} {t.p95:8.1f} {max(t.samples_ms):8.1f}  {verdict}")
    print(f"(for scale: one SELECT count(*) FROM executions takes {count_ms:.0f} ms)")
    machine = _machine()
    print(f"machine: {machine}")
    print(
        f"targets: executions pages and overview p95 < {TARGET_MS:.0f} ms, operator pages p95 ≤ "
        f"{OPERATOR_TARGET_MS:.0f} ms: {'met' if not failed else 'NOT met: ' + ', '.join(failed)}"
    )
    return 1 if failed else 0


def _operator_page(path: str) -> bool:
    return path.startswith(("/triggers", "/credentials", "/audit", "/account", "/api/activities", "/executions/")) or (
        path.endswith(("/design", "/nodes")) or (path.startswith("/runners/") and "hours=" in path)
    )


def _machine() -> str:
    try:
        from bench.infra import machine_info

        info: dict[str, Any] = machine_info()
        return f"{info['nproc']} CPU ({info['cpuModel']}), {info['ramGb']} GB RAM, load {info['loadAvg']}"
    except Exception:  # the bench package is optional here
        import os

        return f"{os.cpu_count()} CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="executions in history (default 1,000,000)")
    parser.add_argument("--audit-rows", type=int, default=100_000, help="audit entries (default 100,000)")
    parser.add_argument("--iterations", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--database-url", help="a PostgreSQL server to use instead of an embedded one")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
