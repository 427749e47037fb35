"""Operational statistics for the dashboard and `GET /api/stats`.

Every query stays cheap with millions of executions in history: live statuses (QUEUED, ASSIGNED,
RUNNING) are few and counted exactly through the status index; finished executions are counted only
inside the requested window, through the partial index on their completion time
(`ix_executions_terminal_completed_at`); the size of the whole history is PostgreSQL's estimate once it is
large (`pg_class.reltuples`), never a full count.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.session import Database
from exekra.hub.executions.models import Execution, ExecutionStatus
from exekra.hub.executions.queries import ExecutionFilter, count_executions
from exekra.hub.workflows.models import Workflow

# Up to this many rows the history is counted exactly; above it PostgreSQL's estimate is used.
EXACT_COUNT_LIMIT = 10_000
MAX_BUCKETS = 1000
# Buckets are aligned on this instant (as `date_bin` does), so that every client sees the same edges.
_BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Bucket:
    """Executions that finished in [start, start + bucket)."""

    start: datetime
    completed: int = 0
    failed: int = 0
    stopped: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.stopped

    @property
    def success_rate(self) -> float | None:
        """COMPLETED among COMPLETED and FAILED (a stop is an operator's decision, not a failure)."""
        judged = self.completed + self.failed
        return self.completed / judged if judged else None


@dataclass(frozen=True)
class RunnerCounts:
    online: int = 0
    busy: int = 0
    offline: int = 0
    disabled: int = 0  # of any status: they are offered no work

    @property
    def total(self) -> int:
        return self.online + self.busy + self.offline

    @property
    def utilisation(self) -> float | None:
        """BUSY among the runners that are alive (ONLINE or BUSY)."""
        alive = self.online + self.busy
        return self.busy / alive if alive else None


@dataclass(frozen=True)
class HistorySize:
    count: int
    estimated: bool


@dataclass(frozen=True)
class Stats:
    generated_at: datetime
    queue_mode: str
    queue_depth: int
    oldest_queued_at: datetime | None
    # Live statuses: now. Finished statuses: finished inside the window.
    by_status: dict[str, int]
    window: timedelta
    bucket: timedelta
    buckets: list[Bucket]
    runners: RunnerCounts
    history: HistorySize

    @property
    def window_total(self) -> Bucket:
        """The whole window as one bucket."""
        return Bucket(
            self.buckets[0].start,
            completed=sum(b.completed for b in self.buckets),
            failed=sum(b.failed for b in self.buckets),
            stopped=sum(b.stopped for b in self.buckets),
        )


_LIVE_COUNTS = text(
    """
SELECT status, count(*) AS total, min(queued_at) AS oldest FROM executions
 WHERE status IN ('QUEUED', 'ASSIGNED', 'RUNNING')
 GROUP BY status"""
)

_FINISHED_BY_BUCKET = text(
    """
SELECT date_bin(make_interval(secs => :bucket), completed_at, :origin) AS start, status, count(*) AS total
  FROM executions
 WHERE status IN ('COMPLETED', 'FAILED', 'STOPPED')
   AND completed_at >= :since
 GROUP BY 1, 2"""
)

_RUNNER_COUNTS = text("SELECT status, enabled, count(*) AS total FROM runners GROUP BY status, enabled")

_ESTIMATED_COUNT = text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'executions'::regclass")


def default_bucket(window: timedelta) -> timedelta:
    """A bucket size that gives a readable chart (12 to 28 bars) for `window`."""
    for bucket in (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1)):
        if window <= bucket * 24:
            return bucket
    return timedelta(hours=6)


def bucket_starts(now: datetime, window: timedelta, bucket: timedelta) -> list[datetime]:
    """The starts of the buckets covering `window` up to `now`, oldest first; the last one holds `now`."""
    current = _BUCKET_ORIGIN + ((now - _BUCKET_ORIGIN) // bucket) * bucket
    count = max(1, -(-window // bucket))  # ceiling division
    return [current - bucket * i for i in range(count - 1, -1, -1)]


async def collect_stats(
    db: Database, *, queue_mode: str, window: timedelta = timedelta(hours=24), bucket: timedelta = timedelta(hours=1)
) -> Stats:
    """Counts by status, the queue, runner utilisation and throughput per bucket over `window`."""
    now = datetime.now(UTC)
    starts = bucket_starts(now, window, bucket)
    async with db.session() as session:
        live = (await session.execute(_LIVE_COUNTS)).all()
        finished = (
            await session.execute(
                _FINISHED_BY_BUCKET,
                {
                    "bucket": bucket.total_seconds(),
                    "origin": _BUCKET_ORIGIN,
                    "since": starts[0],
                },
            )
        ).all()
        runners = (await session.execute(_RUNNER_COUNTS)).all()
        history = await _history_size(session)
    by_status = {status.value: 0 for status in ExecutionStatus}
    oldest_queued_at = None
    for row in live:
        by_status[row.status] = int(row.total)
        if row.status == ExecutionStatus.QUEUED:
            oldest_queued_at = row.oldest
    per_bucket: dict[datetime, dict[str, int]] = {start: {} for start in starts}
    for row in finished:
        by_status[row.status] += int(row.total)
        per_bucket.setdefault(row.start, {})[row.status] = int(row.total)
    buckets = [
        Bucket(
            start,
            completed=per_bucket[start].get(ExecutionStatus.COMPLETED, 0),
            failed=per_bucket[start].get(ExecutionStatus.FAILED, 0),
            stopped=per_bucket[start].get(ExecutionStatus.STOPPED, 0),
        )
        for start in starts
    ]
    return Stats(
        generated_at=now,
        queue_mode=queue_mode,
        queue_depth=by_status[ExecutionStatus.QUEUED],
        oldest_queued_at=oldest_queued_at,
        by_status=by_status,
        window=window,
        bucket=bucket,
        buckets=buckets,
        runners=_runner_counts(runners),
        history=history,
    )


def _runner_counts(rows: Sequence[Row[Any]]) -> RunnerCounts:
    """From `(status, enabled, count)` rows."""
    counts = {"ONLINE": 0, "BUSY": 0, "OFFLINE": 0}
    disabled = 0
    for row in rows:
        counts[row.status] += int(row.total)
        if not row.enabled:
            disabled += int(row.total)
    return RunnerCounts(online=counts["ONLINE"], busy=counts["BUSY"], offline=counts["OFFLINE"], disabled=disabled)


async def _history_size(session: AsyncSession) -> HistorySize:
    counted = await count_executions(session, ExecutionFilter(), EXACT_COUNT_LIMIT)
    if not counted.capped:
        return HistorySize(counted.value, estimated=False)
    estimate = int((await session.execute(_ESTIMATED_COUNT)).scalar_one())
    # A table never analysed yet estimates -1 (PostgreSQL 14+) or 0: the capped count is then a floor.
    return HistorySize(max(estimate, counted.value), estimated=True)


@dataclass(frozen=True)
class Failure:
    execution_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_name: str
    error: str | None
    completed_at: datetime | None
    created_at: datetime


async def recent_failures(db: Database, limit: int = 5) -> list[Failure]:
    """The newest FAILED executions (by creation), through the `(status, created_at)` index."""
    query = (
        select(
            Execution.id,
            Execution.workflow_id,
            Workflow.name,
            Execution.error,
            Execution.completed_at,
            Execution.created_at,
        )
        .join(Workflow, Workflow.id == Execution.workflow_id)
        .where(Execution.status == ExecutionStatus.FAILED)
        .order_by(Execution.created_at.desc())
        .limit(limit)
    )
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [Failure(*row) for row in rows]
