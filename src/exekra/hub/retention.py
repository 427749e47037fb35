"""Retention (SPEC §11): purge old terminal executions and heartbeat history in small batches.

Executions are taken by key: a batch of at most `batch` ids of terminal executions completed before the
cutoff, walked in `(completed_at, id)` order on a partial index. The batch is archived first when asked
(gzip JSON lines, flushed to disk before anything is deleted), then its log lines and its artifacts' chunks
are deleted by `execution_id = ANY(ids)` at most `batch` rows per transaction, then its artifacts,
idempotency keys and the executions themselves (other tables that reference executions cascade). Every transaction is short and
touches only finished rows, so the purge never blocks dispatch, and a purge cut short is simply resumed
by the next one.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import CursorResult, TextClause, Uuid, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.config import Settings
from exekra.db.locks import PURGE_LOCK, advisory_lock
from exekra.db.migrate import ensure_migrated
from exekra.db.session import Database
from exekra.hub.artifacts.files import ArtifactFiles
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import SYSTEM
from exekra.hub.effects import EffectApplier
from exekra.hub.executions.models import Execution
from exekra.hub.executions.schemas import execution_to_api, log_line_to_api
from exekra.hub.workflows.models import Workflow, WorkflowVersion

_CUTOFF = text("SELECT now() - make_interval(days => :days)")

# Matches the partial index `ix_executions_terminal_completed_at`.
_NEXT_BATCH = text(
    """
SELECT id, completed_at FROM executions
 WHERE status IN ('COMPLETED','FAILED','STOPPED') AND completed_at < :cutoff
   AND (completed_at, id) > (:after_ts, :after_id)
 ORDER BY completed_at, id
 LIMIT :batch"""
)

_ids = bindparam("ids", type_=ARRAY(Uuid))

_LOGS = text(
    "SELECT execution_id, seq, ts, level, message, node, event FROM execution_logs "
    "WHERE execution_id = ANY(:ids) ORDER BY execution_id, seq"
).bindparams(_ids)

_DELETE_LOGS = text(
    """
DELETE FROM execution_logs l
 USING (SELECT execution_id, seq FROM execution_logs WHERE execution_id = ANY(:ids) LIMIT :batch) d
 WHERE l.execution_id = d.execution_id AND l.seq = d.seq"""
).bindparams(_ids)

_DELETE_ARTIFACT_CHUNKS = text(
    """
DELETE FROM execution_artifact_chunks c
 USING (SELECT ch.artifact_id, ch.seq FROM execution_artifact_chunks ch
          JOIN execution_artifacts a ON a.id = ch.artifact_id
         WHERE a.execution_id = ANY(:ids) LIMIT :batch) d
 WHERE c.artifact_id = d.artifact_id AND c.seq = d.seq"""
).bindparams(_ids)

_DELETE_ARTIFACTS = text("DELETE FROM execution_artifacts WHERE execution_id = ANY(:ids)").bindparams(_ids)

_DELETE_KEYS = text("DELETE FROM execution_keys WHERE execution_id = ANY(:ids)").bindparams(_ids)

_DELETE_EXECUTIONS = text(
    "DELETE FROM executions WHERE id = ANY(:ids) AND status IN ('COMPLETED','FAILED','STOPPED')"
).bindparams(_ids)

_DELETE_METRICS = text(
    """
DELETE FROM runner_metrics
 WHERE id IN (SELECT id FROM runner_metrics WHERE ts < now() - make_interval(days => :days) LIMIT :batch)"""
)

# Alerts: finished deliveries (SENT, FAILED), then the events left without a delivery (their FK is SET NULL).
_DELETE_ALERT_DELIVERIES = text(
    """
DELETE FROM alert_deliveries
 WHERE id IN (SELECT id FROM alert_deliveries
               WHERE created_at < now() - make_interval(days => :days) AND status IN ('SENT', 'FAILED')
               LIMIT :batch)"""
)
_DELETE_ALERT_EVENTS = text(
    """
DELETE FROM alert_events
 WHERE id IN (SELECT id FROM alert_events
               WHERE created_at < now() - make_interval(days => :days) AND delivery_id IS NULL LIMIT :batch)"""
)

# The slot rows of concurrency groups that nothing holds (`exekra.hub.concurrency`). Safe at any moment: a claim
# takes a slot with `INSERT … ON CONFLICT`, which makes the row again if it is gone, and a row being taken is
# locked, so the delete sees its new holders and leaves it.
_DELETE_EMPTY_SLOTS = text(
    """
DELETE FROM concurrency_slots
 WHERE (workflow_id, key) IN (SELECT workflow_id, key FROM concurrency_slots WHERE holders = '{}' LIMIT :batch)
   AND holders = '{}'"""
)

# The audit log's one deletion path (migration 0008): its trigger refuses every other DELETE.
_PURGE_AUDIT = text("SELECT exekra_purge_audit_log(now() - make_interval(days => :days), :batch)")

_FIRST_KEY = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))


@dataclass
class PurgeReport:
    """Rows deleted by one purge, and the archive written (if any)."""

    executions: int = 0
    logs: int = 0
    artifacts: int = 0
    keys: int = 0
    metrics: int = 0
    audit: int = 0
    alerts: int = 0  # alert deliveries
    slots: int = 0  # concurrency slot rows of groups nothing holds
    archive: Path | None = None

    @property
    def total(self) -> int:
        return (
            self.executions
            + self.logs
            + self.artifacts
            + self.keys
            + self.metrics
            + self.audit
            + self.alerts
            + self.slots
        )


async def purge(
    db: Database,
    *,
    retention_days: int,
    metrics_retention_days: int,
    batch: int,
    archive_dir: Path | None = None,
    pause_ratio: float = 0.0,
    audit_retention_days: int | None = None,
    artifact_dir: Path | None = None,
) -> PurgeReport:
    """Delete terminal executions completed more than `retention_days` ago (with their logs, artifacts and keys),
    heartbeat metrics older than `metrics_retention_days`, the slot rows of concurrency groups nothing holds and,
    when `audit_retention_days` is set, audit entries older than that, `batch` rows per transaction at most.

    With `archive_dir`, each execution is first written with its logs as one line of a new gzip JSON-lines
    file there (one file per purge, created only if something is purged). After each batch it pauses
    `pause_ratio` times as long as the batch took (a duty cycle that leaves the database to dispatch).
    With `artifact_dir` (`EXEKRA_ARTIFACT_DIR`), each purged execution's folder of artifact files goes too.
    """
    report = PurgeReport()
    archive = _Archive(archive_dir) if archive_dir is not None else None
    try:
        async with db.session() as session:
            cutoff = (await session.execute(_CUTOFF, {"days": retention_days})).scalar_one()
        after = _FIRST_KEY
        while True:
            started = time.monotonic()
            async with db.session() as session:
                rows = (
                    await session.execute(
                        _NEXT_BATCH, {"cutoff": cutoff, "after_ts": after[0], "after_id": after[1], "batch": batch}
                    )
                ).all()
            if not rows:
                break
            ids = [row.id for row in rows]
            after = (rows[-1].completed_at, rows[-1].id)
            if archive is not None:
                await archive.write(await _archive_lines(db, ids))
            await _delete_executions(db, ids, batch, report)
            if artifact_dir is not None:
                await ArtifactFiles(artifact_dir).remove_executions(ids)
            if len(rows) < batch:
                break
            if pause_ratio > 0:
                await _pause((time.monotonic() - started) * pause_ratio)
        report.metrics = await _delete_in_batches(db, _DELETE_METRICS, {"days": metrics_retention_days}, batch)
        report.alerts = await _delete_in_batches(db, _DELETE_ALERT_DELIVERIES, {"days": retention_days}, batch)
        await _delete_in_batches(db, _DELETE_ALERT_EVENTS, {"days": retention_days}, batch)
        report.slots = await _delete_in_batches(db, _DELETE_EMPTY_SLOTS, {}, batch)
        if audit_retention_days is not None:
            report.audit = await _delete_in_batches(db, _PURGE_AUDIT, {"days": audit_retention_days}, batch, _returned)
    finally:
        if archive is not None:
            report.archive = await archive.close()
    if report.total:
        async with db.transaction() as session:
            details = {
                "executions": report.executions,
                "logs": report.logs,
                "artifacts": report.artifacts,
                "keys": report.keys,
                "metrics": report.metrics,
                "audit": report.audit,
                "alerts": report.alerts,
                "concurrencySlots": report.slots,
                "retentionDays": retention_days,
                "metricsRetentionDays": metrics_retention_days,
                "auditRetentionDays": audit_retention_days,
                "archive": str(report.archive) if report.archive else None,
            }
            audit.record(session, SYSTEM, "retention.purge", None, None, details)
    return report


async def _pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def _deleted(session: AsyncSession, statement: TextClause, params: dict[str, Any]) -> int:
    result: CursorResult[Any] = await session.execute(statement, params)  # type: ignore[assignment]
    return result.rowcount


async def _returned(session: AsyncSession, statement: TextClause, params: dict[str, Any]) -> int:
    """The count a statement returns (the audit log's purge function answers how many rows it deleted)."""
    return int((await session.execute(statement, params)).scalar_one())


Counter = Callable[[AsyncSession, TextClause, dict[str, Any]], Awaitable[int]]


async def _delete_in_batches(
    db: Database, statement: TextClause, params: dict[str, Any], batch: int, count: Counter = _deleted
) -> int:
    """Run a `LIMIT :batch` delete, one transaction each time, until it deletes fewer than `batch` rows
    (`count` tells how many one run deleted: its row count, unless the statement returns it)."""
    total = 0
    while True:
        async with db.transaction() as session:
            deleted = await count(session, statement, {**params, "batch": batch})
        total += deleted
        if deleted < batch:
            return total


async def _delete_executions(db: Database, ids: list[uuid.UUID], batch: int, report: PurgeReport) -> None:
    report.logs += await _delete_in_batches(db, _DELETE_LOGS, {"ids": ids}, batch)
    # A chunk is up to 1 MiB: a tenth of the batch keeps each transaction short.
    await _delete_in_batches(db, _DELETE_ARTIFACT_CHUNKS, {"ids": ids}, max(1, batch // 10))
    async with db.transaction() as session:
        report.artifacts += await _deleted(session, _DELETE_ARTIFACTS, {"ids": ids})
        report.keys += await _deleted(session, _DELETE_KEYS, {"ids": ids})
        report.executions += await _deleted(session, _DELETE_EXECUTIONS, {"ids": ids})


async def _archive_lines(db: Database, ids: list[uuid.UUID]) -> list[bytes]:
    """One JSON line per execution (its API shape plus `logs`), in id order, logs streamed alongside."""
    query = (
        select(Execution, Workflow.name, WorkflowVersion.number)
        .join(Workflow, Workflow.id == Execution.workflow_id)
        .join(WorkflowVersion, WorkflowVersion.id == Execution.version_id)
        .where(Execution.id == any_(bindparam("archive_ids", ids, type_=ARRAY(Uuid))))
        .order_by(Execution.id)
    )
    lines: list[bytes] = []
    async with db.transaction() as session:
        executions = (await session.execute(query)).all()
        logs = await session.stream(_LOGS, {"ids": ids})
        pending: Any = await anext(logs, None)
        for row in executions:
            record = execution_to_api(row.Execution, row.name, row.number)
            record["logs"] = entries = []
            while pending is not None and pending.execution_id == row.Execution.id:
                entries.append(log_line_to_api(pending))
                pending = await anext(logs, None)
            lines.append(orjson.dumps(record, option=orjson.OPT_UTC_Z) + b"\n")
    return lines


class _Archive:
    """A gzip JSON-lines file, opened on the first write; each write reaches the disk before it returns."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path: Path | None = None
        self._file: gzip.GzipFile | None = None
        self._raw: BinaryIO | None = None

    async def write(self, lines: list[bytes]) -> None:
        await asyncio.to_thread(self._write, lines)

    def _write(self, lines: list[bytes]) -> None:
        if self._file is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            self.path = self.directory / f"exekra-executions-{stamp}.jsonl.gz"
            # Created 0600 whatever the umask: an archive holds logs and inputs, which may be secret.
            self._raw = open(self.path, "xb", opener=_private)  # noqa: SIM115 - closed by close()
            self._file = gzip.GzipFile(fileobj=self._raw, mode="wb")
        self._file.writelines(lines)
        self._file.flush()  # a sync flush: every line written so far can be read back
        os.fsync(self._file.fileno())

    async def close(self) -> Path | None:
        if self._file is not None and self._raw is not None:
            await asyncio.to_thread(self._close)
            self._file = self._raw = None
        return self.path

    def _close(self) -> None:
        assert self._file is not None and self._raw is not None
        self._file.close()  # writes the gzip trailer; a GzipFile never closes a file object it was given
        self._raw.close()


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


async def purge_once(settings: Settings, *, archive_dir: Path | None, retention_days: int) -> PurgeReport | None:
    """`exekra purge`: one purge under the lock the hubs' daily purge uses; None if a purge is already running."""
    assert settings.database_url
    await ensure_migrated(settings.database_url)
    db = Database(settings, EffectApplier())
    try:
        async with advisory_lock(db, PURGE_LOCK) as held:
            if not held:
                return None
            return await purge(
                db,
                retention_days=retention_days,
                metrics_retention_days=settings.metrics_retention_days,
                batch=settings.purge_batch,
                archive_dir=archive_dir,
                pause_ratio=settings.purge_pause_ratio,
                audit_retention_days=settings.audit_retention_days,
                artifact_dir=settings.artifact_dir,
            )
    finally:
        await db.dispose()
