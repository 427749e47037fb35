"""The one module that writes execution and runner state (SPEC §4).

Every change is a conditional update in PostgreSQL: the WHERE clause names the states a transition may
start from (and the attempt and runner for runner calls), so a stale or late call changes nothing and the
caller learns it from the empty result. Terminal states appear in no rule's sources, so they never change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.hub.executions.models import ExecutionStatus as S


@dataclass(frozen=True)
class Rule:
    """A named transition: the states it may start from and the state it leads to."""

    name: str
    sources: tuple[S, ...]
    target: S


ASSIGN = Rule("assign", (S.QUEUED,), S.ASSIGNED)
START = Rule("start", (S.ASSIGNED,), S.RUNNING)
COMPLETE = Rule("complete", (S.RUNNING,), S.COMPLETED)
FAIL = Rule("fail", (S.ASSIGNED, S.RUNNING), S.FAILED)
RUNNER_STOPPED = Rule("runner-stopped", (S.ASSIGNED, S.RUNNING), S.STOPPED)
STOP_NOW = Rule("stop-now", (S.QUEUED, S.ASSIGNED), S.STOPPED)
REQUEST_STOP = Rule("request-stop", (S.RUNNING,), S.RUNNING)

RUNNER_FINISH_RULES = {S.COMPLETED: COMPLETE, S.FAILED: FAIL, S.STOPPED: RUNNER_STOPPED}
LIVE = (S.ASSIGNED, S.RUNNING)


def _sources(rule: Rule) -> str:
    return "(" + ",".join(f"'{s.value}'" for s in rule.sources) + ")"


@dataclass(frozen=True)
class Assignment:
    """An execution just handed to a runner."""

    execution_id: uuid.UUID
    runner_id: uuid.UUID
    attempt: int


# Shared tail of both claim statements: given CTEs `e` (the execution) and `r` (the runner), both locked,
# mark the execution ASSIGNED with attempt + 1 and the runner BUSY, in one statement.
_ASSIGN_TAIL = f"""
, ue AS (
    UPDATE executions x
       SET status = 'ASSIGNED', attempt = x.attempt + 1, runner_id = r.id, assigned_at = now()
      FROM e, r
     WHERE x.id = e.id AND x.status IN {_sources(ASSIGN)}
 RETURNING x.id, x.attempt, x.runner_id
), ur AS (
    UPDATE runners SET status = 'BUSY', current_execution_id = ue.id
      FROM ue WHERE runners.id = ue.runner_id
 RETURNING runners.id
)
SELECT ue.id, ue.runner_id, ue.attempt FROM ue, ur
"""

_ELIGIBLE_RUNNER = """
    rn.status = 'ONLINE' AND rn.enabled AND rn.current_execution_id IS NULL
    AND (rn.id = e.pinned_runner_id
         OR (e.pinned_runner_id IS NULL
             AND (e.runner_type IS NULL OR rn.type = e.runner_type)
             AND rn.labels @> e.required_labels))
"""

_CLAIM_FOR_RUNNER = text(
    f"""
WITH r AS (
    SELECT id, type, labels FROM runners
     WHERE id = :runner_id AND status = 'ONLINE' AND enabled AND current_execution_id IS NULL
       FOR UPDATE SKIP LOCKED
), e AS (
    SELECT x.id FROM executions x, r
     WHERE x.status = 'QUEUED'
       AND (x.pinned_runner_id = r.id
            OR (x.pinned_runner_id IS NULL
                AND (x.runner_type IS NULL OR x.runner_type = r.type)
                AND x.required_labels <@ r.labels))
     ORDER BY x.priority DESC, x.queued_at, x.id
     LIMIT 1
       FOR UPDATE OF x SKIP LOCKED
){_ASSIGN_TAIL}"""
)

_ASSIGN_TO_BEST_RUNNER = text(
    f"""
WITH e AS (
    SELECT id, pinned_runner_id, runner_type, required_labels FROM executions
     WHERE id = :execution_id AND status = 'QUEUED'
       FOR UPDATE SKIP LOCKED
), r AS (
    SELECT rn.id FROM runners rn, e
     WHERE {_ELIGIBLE_RUNNER}
     ORDER BY rn.last_heartbeat_at DESC NULLS LAST
     LIMIT 1
       FOR UPDATE OF rn SKIP LOCKED
){_ASSIGN_TAIL}"""
)


def _assignment(row: Row[Any] | None) -> Assignment | None:
    return Assignment(execution_id=row[0], runner_id=row[1], attempt=row[2]) if row else None


async def claim_for_runner(session: AsyncSession, runner_id: uuid.UUID) -> Assignment | None:
    """Give an idle runner the best queued execution it may run (priority, then age)."""
    result = await session.execute(_CLAIM_FOR_RUNNER, {"runner_id": runner_id})
    return _assignment(result.first())


async def assign_to_best_runner(session: AsyncSession, execution_id: uuid.UUID) -> Assignment | None:
    """Give a queued execution to the eligible idle runner with the most recent heartbeat."""
    result = await session.execute(_ASSIGN_TO_BEST_RUNNER, {"execution_id": execution_id})
    return _assignment(result.first())


_START = text(
    f"""
UPDATE executions SET status = 'RUNNING', started_at = now()
 WHERE id = :execution_id AND runner_id = :runner_id AND attempt = :attempt AND status IN {_sources(START)}
RETURNING id"""
)


async def start(session: AsyncSession, execution_id: uuid.UUID, runner_id: uuid.UUID, attempt: int) -> bool:
    """ASSIGNED → RUNNING for the runner holding this attempt."""
    result = await session.execute(_START, {"execution_id": execution_id, "runner_id": runner_id, "attempt": attempt})
    return result.first() is not None


_RESERVE_LOG_SEQ = text(
    """
UPDATE executions SET log_seq = log_seq + :count
 WHERE id = :execution_id AND runner_id = :runner_id AND attempt = :attempt AND status IN ('ASSIGNED','RUNNING')
RETURNING log_seq, stop_requested"""
)


async def reserve_log_seq(
    session: AsyncSession, execution_id: uuid.UUID, runner_id: uuid.UUID, attempt: int, count: int
) -> tuple[int, bool] | None:
    """Fence a log upload and reserve `count` sequence numbers: returns (last seq, stopRequested)."""
    result = await session.execute(
        _RESERVE_LOG_SEQ,
        {"execution_id": execution_id, "runner_id": runner_id, "attempt": attempt, "count": count},
    )
    row = result.first()
    return (int(row[0]), bool(row[1])) if row else None


_FINISH = text(
    """
WITH ue AS (
    UPDATE executions
       SET status = :status, error = :error, outputs = :outputs, completed_at = now(),
           cpu_avg = :cpu_avg, cpu_peak = :cpu_peak, mem_avg_mb = :mem_avg_mb, mem_peak_mb = :mem_peak_mb
     WHERE id = :execution_id AND runner_id = :runner_id AND attempt = :attempt AND status = ANY(:sources)
 RETURNING id, runner_id
), ur AS (
    UPDATE runners SET current_execution_id = NULL,
                       status = CASE WHEN status = 'BUSY' THEN 'ONLINE' ELSE status END
      FROM ue WHERE runners.id = ue.runner_id AND runners.current_execution_id = ue.id
)
SELECT id FROM ue"""
).bindparams(bindparam("outputs", type_=JSONB))


async def finish(
    session: AsyncSession,
    execution_id: uuid.UUID,
    runner_id: uuid.UUID,
    attempt: int,
    status: S,
    *,
    error: str | None,
    outputs: dict[str, Any] | None,
    metrics: dict[str, float | None],
) -> bool:
    """A runner's final report: ends the execution and frees the runner, in one statement."""
    rule = RUNNER_FINISH_RULES[status]
    result = await session.execute(
        _FINISH,
        {
            "execution_id": execution_id,
            "runner_id": runner_id,
            "attempt": attempt,
            "status": rule.target.value,
            "sources": [s.value for s in rule.sources],
            "error": error,
            "outputs": outputs,
            "cpu_avg": metrics.get("cpuAvg"),
            "cpu_peak": metrics.get("cpuPeak"),
            "mem_avg_mb": metrics.get("memAvgMb"),
            "mem_peak_mb": metrics.get("memPeakMb"),
        },
    )
    return result.first() is not None


_STOP_NOW = text(
    f"""
WITH ue AS (
    UPDATE executions SET status = 'STOPPED', completed_at = now(), stop_requested = true,
                          stop_requested_at = now(), error = 'stopped by user'
     WHERE id = :execution_id AND status IN {_sources(STOP_NOW)}
 RETURNING id, runner_id
), ur AS (
    UPDATE runners SET current_execution_id = NULL,
                       status = CASE WHEN status = 'BUSY' THEN 'ONLINE' ELSE status END
      FROM ue WHERE runners.id = ue.runner_id AND runners.current_execution_id = ue.id
 RETURNING runners.id
)
SELECT ue.id, (SELECT id FROM ur) FROM ue"""
)

_REQUEST_STOP = text(
    f"""
UPDATE executions SET stop_requested = true, stop_requested_at = coalesce(stop_requested_at, now())
 WHERE id = :execution_id AND status IN {_sources(REQUEST_STOP)}
RETURNING id"""
)


@dataclass(frozen=True)
class StopOutcome:
    """What a stop request did: stopped at once (freeing `freed_runner_id`), or asked the runner."""

    stopped: bool
    requested: bool
    freed_runner_id: uuid.UUID | None = None


async def request_stop(session: AsyncSession, execution_id: uuid.UUID) -> StopOutcome:
    """QUEUED/ASSIGNED → STOPPED at once; RUNNING → stopRequested (the runner confirms)."""
    row = (await session.execute(_STOP_NOW, {"execution_id": execution_id})).first()
    if row:
        return StopOutcome(stopped=True, requested=False, freed_runner_id=row[1])
    requested = (await session.execute(_REQUEST_STOP, {"execution_id": execution_id})).first()
    return StopOutcome(stopped=False, requested=requested is not None)


_TOUCH_RUNNER = text(
    """
UPDATE runners
   SET last_heartbeat_at = now(),
       status = CASE WHEN current_execution_id IS NULL THEN 'ONLINE' ELSE 'BUSY' END
 WHERE id = :runner_id AND token_epoch = :epoch
RETURNING id, status, enabled, current_execution_id"""
)

_HEARTBEAT_RUNNER = text(
    """
WITH ur AS (
    UPDATE runners
       SET last_heartbeat_at = now(),
           status = CASE WHEN current_execution_id IS NULL THEN 'ONLINE' ELSE 'BUSY' END,
           cpu_percent = :cpu_percent, memory_percent = :memory_percent, memory_used_mb = :memory_used_mb,
           disk_percent = :disk_percent, disk_free_gb = :disk_free_gb
     WHERE id = :runner_id AND token_epoch = :epoch
 RETURNING id, status, enabled, current_execution_id, last_heartbeat_at
), m AS (
    INSERT INTO runner_metrics (runner_id, ts, cpu_percent, memory_percent, memory_used_mb, disk_percent, disk_free_gb)
    SELECT id, last_heartbeat_at, :cpu_percent, :memory_percent, :memory_used_mb, :disk_percent, :disk_free_gb
      FROM ur
)
SELECT id, status, enabled, current_execution_id FROM ur"""
)


@dataclass(frozen=True)
class RunnerPresence:
    """The runner's row after a sign of life."""

    runner_id: uuid.UUID
    status: str
    enabled: bool
    current_execution_id: uuid.UUID | None


def _presence(row: Row[Any] | None) -> RunnerPresence | None:
    return RunnerPresence(row[0], row[1], row[2], row[3]) if row else None


async def touch_runner(session: AsyncSession, runner_id: uuid.UUID, epoch: int) -> RunnerPresence | None:
    """A poll: the runner is alive (ONLINE, or BUSY while it holds work). None if its token is revoked."""
    result = await session.execute(_TOUCH_RUNNER, {"runner_id": runner_id, "epoch": epoch})
    return _presence(result.first())


async def heartbeat_runner(
    session: AsyncSession, runner_id: uuid.UUID, epoch: int, metrics: dict[str, float | None]
) -> RunnerPresence | None:
    """A heartbeat: like `touch_runner`, and records the metrics on the runner and in its history."""
    result = await session.execute(_HEARTBEAT_RUNNER, {"runner_id": runner_id, "epoch": epoch, **metrics})
    return _presence(result.first())


async def stop_requested_ids(session: AsyncSession, runner_id: uuid.UUID) -> list[uuid.UUID]:
    """Live executions of this runner whose stop was requested (answered in the heartbeat)."""
    result = await session.execute(
        text(
            "SELECT id FROM executions WHERE runner_id = :runner_id "
            "AND status IN ('ASSIGNED','RUNNING') AND stop_requested"
        ),
        {"runner_id": runner_id},
    )
    return [row[0] for row in result]
