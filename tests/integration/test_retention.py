"""Retention (SPEC §11): old finished executions go with their logs and keys, in batches, archived on request."""

from __future__ import annotations

import asyncio
import gzip
import os
import stat
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from exekra.hub.context import Hub
from exekra.hub.maintenance import Maintenance
from exekra.hub.retention import purge

from .conftest import SIMPLE_DEFINITION
from .protocol import ProtocolRunner, publish_workflow

pytestmark = pytest.mark.timeout(90)


def archives(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


class History:
    """Executions made through the runner protocol, some of them finished long ago."""

    def __init__(self, hub: Hub, admin: httpx.AsyncClient, runner: ProtocolRunner, workflow_id: str) -> None:
        self.hub = hub
        self.admin = admin
        self.runner = runner
        self.workflow_id = workflow_id

    async def create(self, key: str | None = None) -> str:
        body: dict[str, Any] = {"workflowId": self.workflow_id}
        if key:
            body["idempotencyKey"] = key
        r = await self.admin.post("/api/executions", json=body)
        assert r.status_code == 201, r.text
        execution_id: str = r.json()["execution"]["id"]
        return execution_id

    async def finished(self, status: str, lines: int, key: str | None = None) -> str:
        execution_id = await self.create(key)
        polled = await self.runner.poll(wait=5)
        assert polled.json()["execution"]["id"] == execution_id
        assert (await self.runner.start(execution_id, 1)).status_code == 200
        messages = [f"{execution_id[:8]} line {i}" for i in range(lines)]
        assert (await self.runner.logs(execution_id, 1, *messages)).status_code == 200
        assert (
            await self.runner.complete(execution_id, 1, status, error="boom" if status == "FAILED" else None)
        ).status_code == 200
        return execution_id

    async def age(self, execution_ids: list[str], days: float) -> None:
        async with self.hub.db.transaction() as session:
            await session.execute(
                text("UPDATE executions SET completed_at = now() - make_interval(days => :d) WHERE id = ANY(:ids)"),
                {"d": days, "ids": [uuid.UUID(i) for i in execution_ids]},
            )

    async def count(self, sql: str) -> int:
        async with self.hub.db.session() as session:
            return int((await session.execute(text(sql))).scalar_one())


@pytest.fixture
async def history(hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient) -> History:
    runner = await ProtocolRunner.register(admin, client, "historian")
    assert (await runner.auth()).status_code == 200
    workflow_id = await publish_workflow(admin, "kept", SIMPLE_DEFINITION)
    return History(hub, admin, runner, workflow_id)


async def test_purge_deletes_old_finished_executions_with_logs_and_keys_in_batches(history: History) -> None:
    old = [await history.finished(s, lines=3, key=f"k{i}") for i, s in enumerate(["COMPLETED", "FAILED"] * 3)]
    old.append(await history.finished("STOPPED", lines=0))
    recent = await history.finished("COMPLETED", lines=2, key="recent")
    await history.age(old, 31)
    await history.age([recent], 29)
    live = await history.create()  # the runner is idle: ASSIGNED, whatever its age
    async with history.hub.db.transaction() as session:
        await session.execute(text("UPDATE executions SET queued_at = now() - interval '90 days'"))

    report = await purge(history.hub.db, retention_days=30, metrics_retention_days=7, batch=2)

    assert (report.executions, report.logs, report.keys, report.archive) == (7, 18, 6, None)
    remaining = await history.admin.get("/api/executions")
    assert sorted(e["id"] for e in remaining.json()["executions"]) == sorted([recent, live])
    assert await history.count("SELECT count(*) FROM execution_logs") == 2
    assert await history.count("SELECT count(*) FROM execution_keys") == 1
    details = await history.count(
        "SELECT (details->>'executions')::int FROM audit_log WHERE action = 'retention.purge' AND actor_type = 'SYSTEM'"
    )
    assert details == 7
    again = await purge(history.hub.db, retention_days=30, metrics_retention_days=7, batch=2)
    assert again.total == 0


async def test_purge_pauses_between_batches_in_proportion_to_their_time(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A duty cycle, so that a purge of a large history leaves the database to dispatch (SPEC §13).
    from exekra.hub import retention

    old = [await history.finished("COMPLETED", lines=1) for _ in range(5)]
    await history.age(old, 31)
    pauses: list[float] = []

    async def recorded(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(retention, "_pause", recorded)
    report = await purge(history.hub.db, retention_days=30, metrics_retention_days=7, batch=2, pause_ratio=2.0)
    assert report.executions == 5
    assert len(pauses) == 2 and all(p > 0 for p in pauses)  # after the two full batches, not after the last
    pauses.clear()
    await history.age([await history.finished("COMPLETED", lines=0) for _ in range(4)], 31)
    await purge(history.hub.db, retention_days=30, metrics_retention_days=7, batch=2)
    assert pauses == []  # no pause unless asked


async def test_purge_archives_each_execution_with_its_logs_before_deleting_it(history: History, tmp_path: Path) -> None:
    old = [await history.finished("COMPLETED", lines=n) for n in (0, 1, 4)]
    await history.finished("FAILED", lines=1)  # recent: neither archived nor deleted
    await history.age(old, 40)

    report = await purge(history.hub.db, retention_days=30, metrics_retention_days=7, batch=2, archive_dir=tmp_path)

    assert report.executions == 3 and report.archive is not None
    assert report.archive.parent == tmp_path and report.archive.name.endswith(".jsonl.gz")
    assert stat.S_IMODE(report.archive.stat().st_mode) == 0o600  # logs and inputs may be secret: owner only
    with gzip.open(report.archive, "rb") as archive:
        records = [orjson.loads(line) for line in archive]
    assert sorted(r["id"] for r in records) == sorted(old)
    for record in records:
        assert record["status"] == "COMPLETED" and record["workflowName"] == "kept" and record["versionNumber"] == 1
        assert record["completedAt"].endswith("Z") and record["attempt"] == 1
        lines = record["logs"]
        assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
        assert [line["message"] for line in lines] == [f"{record['id'][:8]} line {i}" for i in range(len(lines))]
        assert all(line["level"] == "INFO" and line["ts"] for line in lines)
    assert sorted(len(r["logs"]) for r in records) == [0, 1, 4]
    # Nothing to purge: no empty archive file.
    nothing = await purge(history.hub.db, retention_days=30, metrics_retention_days=7, batch=2, archive_dir=tmp_path)
    assert nothing.archive is None and len(archives(tmp_path)) == 1


async def test_daily_purge_deletes_heartbeat_history_past_metrics_retention(history: History) -> None:
    for _ in range(5):
        assert (await history.runner.heartbeat()).status_code == 200
    await history.hub.executions.liveness.flush()
    async with history.hub.db.transaction() as session:
        await session.execute(
            text(
                "UPDATE runner_metrics SET ts = now() - interval '8 days' "
                "WHERE id IN (SELECT id FROM runner_metrics ORDER BY id LIMIT 3)"
            )
        )
    history.hub.settings.purge_batch, batch = 2, history.hub.settings.purge_batch
    try:
        report = await Maintenance(history.hub).run_purge()
    finally:
        history.hub.settings.purge_batch = batch

    assert report is not None and report.metrics == 3 and report.executions == 0
    assert await history.count("SELECT count(*) FROM runner_metrics") == 2
    assert await history.count("SELECT count(*) FROM runner_metrics WHERE ts < now() - interval '7 days'") == 0


async def test_exekra_purge_command_archives_and_deletes(history: History, tmp_path: Path) -> None:
    old = await history.finished("COMPLETED", lines=2)
    kept = await history.finished("COMPLETED", lines=2)
    await history.age([old], 10)
    await history.age([kept], 2)
    env = {**os.environ, "DATABASE_URL": history.hub.settings.database_url or "", "EXEKRA_HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exekra.cli",
        "purge",
        "--archive",
        str(tmp_path / "archive"),
        "--older-than-days",
        "5",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, stderr.decode()
    output = stdout.decode()
    assert "purged 1 executions (2 log lines, 0 idempotency keys)" in output
    [archive] = archives(tmp_path / "archive")
    assert f"archive: {archive}" in output
    with gzip.open(archive, "rb") as f:
        assert [orjson.loads(line)["id"] for line in f] == [old]
    remaining = (await history.admin.get("/api/executions")).json()["executions"]
    assert [e["id"] for e in remaining] == [kept]


async def test_purge_deletes_the_slot_rows_of_concurrency_groups_nothing_holds(history: History) -> None:
    await history.admin.patch(f"/api/workflows/{history.workflow_id}", json={"maxConcurrent": 1})
    await history.finished("COMPLETED", 0)  # its group's row is left empty
    limited = await publish_workflow(history.admin, "limited", SIMPLE_DEFINITION, maxConcurrent=1)
    held = (await history.admin.post("/api/executions", json={"workflowId": limited})).json()["execution"]["id"]
    assert (await history.runner.poll(wait=5)).json()["execution"]["id"] == held

    report = await purge(history.hub.db, retention_days=30, metrics_retention_days=7, batch=2)

    assert report.slots == 1
    rows = await history.count(f"SELECT count(*) FROM concurrency_slots WHERE '{held}' = ANY(holders)")
    assert rows == 1 and await history.count("SELECT count(*) FROM concurrency_slots") == 1
