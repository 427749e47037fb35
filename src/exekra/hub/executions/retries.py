"""Automatic retries: a workflow's retry policy turns a failed execution into a new one, after a delay.

A workflow may set `retry: {attempts, backoffSeconds, backoffFactor, on}`. An execution that ended FAILED, of a
kind in `on` (`end_kind`), gets a retry once `backoffSeconds * backoffFactor ** retryAttempt` seconds have passed
since it ended, while its `retryAttempt` is below `attempts`. The retry is a new execution of the same version
with the same inputs, priority and trigger, whose `retryOf` is the execution before it and whose `retryAttempt`
is one more. STOPPED and COMPLETED executions are never retried.

Nothing is scheduled when an execution ends (the runner's `complete` stays one statement): the maintenance pass
of every hub process looks for failures that are due (`retry_due`) and retries each in its own transaction. The
failure's row is locked first (SKIP LOCKED), then its retry is looked for with a new snapshot, and the unique
index on `executions.retry_of` is the last guard: an execution is retried once, whichever process gets to it.
All times are the database's clock.
"""

from __future__ import annotations

import logging
import uuid
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from exekra.db.raw import Statements, sqlstate
from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import SYSTEM
from exekra.hub.errors import ExekraError
from exekra.hub.executions import creation
from exekra.hub.executions.creation import ExecutionRequest
from exekra.hub.executions.models import Execution, TriggerType

log = logging.getLogger(__name__)

BATCH = 100  # failures retried per pass and hub process at most; the next pass takes the rest
# A failure is looked at until a day after its policy's longest delay: a hub down for longer skips its retries.
HORIZON_SECONDS = 86400


class RetryOn(StrEnum):
    """The kinds of failure a policy may retry."""

    FAILED = "FAILED"  # any other failure: a step failed, no runner in time, not picked up
    TIMEOUT = "TIMEOUT"  # the workflow's `timeoutSeconds` ran out (runner or hub)
    RUNNER_LOST = "RUNNER_LOST"  # its runner went silent while running it


def end_kind(alias: str) -> str:
    """SQL: the kind (`RetryOn`) of the FAILED execution aliased `alias`, read from the error its end recorded.

    The one place that tells them apart: the runner and the hub's time-out both record "timed out after …",
    the stale check records "runner lost" for a runner gone while running.
    """
    return f"""(CASE WHEN {alias}.error LIKE 'timed out after %' THEN '{RetryOn.TIMEOUT.value}'
            WHEN {alias}.error = 'runner lost' THEN '{RetryOn.RUNNER_LOST.value}'
            ELSE '{RetryOn.FAILED.value}' END)"""


def _policy(field: str) -> str:
    return f"CAST(w.retry_policy->>'{field}' AS float8)"


_DELAY = f"{_policy('backoffSeconds')} * power({_policy('backoffFactor')}, {{attempt}})"

# Per workflow with a policy, its recent failures (index `ix_executions_retry_candidates`), oldest first.
_DUE = text(
    f"""
SELECT x.id
  FROM workflows w
  JOIN executions x ON x.workflow_id = w.id AND x.status = 'FAILED'
 WHERE w.retry_policy IS NOT NULL AND NOT w.archived
   AND x.created_at >= CAST(w.retry_policy->>'since' AS timestamptz)
   AND x.completed_at > now() - make_interval(
           secs => {_DELAY.format(attempt=f"{_policy('attempts')} - 1")} + {HORIZON_SECONDS})
   AND x.retry_attempt < CAST(w.retry_policy->>'attempts' AS int)
   AND x.completed_at + make_interval(secs => {_DELAY.format(attempt="x.retry_attempt")}) <= now()
   AND jsonb_build_array({end_kind("x")}) <@ (w.retry_policy->'on')
   AND NOT EXISTS (SELECT 1 FROM executions r WHERE r.retry_of = x.id)
 ORDER BY x.completed_at
 LIMIT :limit"""
)

_UNIQUE_VIOLATION = "23505"
_LOCK_FAILED = text(
    f"SELECT {lifecycle.EXECUTION_COLUMNS} FROM executions WHERE id = :id AND status = 'FAILED' FOR UPDATE SKIP LOCKED"
)
# A statement of its own, after the lock: its snapshot sees a retry committed by whoever held the lock before.
_RETRIED = text("SELECT EXISTS (SELECT 1 FROM executions WHERE retry_of = :id)")


async def retry_due(db: Database, *, limit: int = BATCH) -> int:
    """Retry the failures whose delay has passed, each in its own transaction; returns how many were retried."""
    async with db.reading() as session:
        due = [row.id for row in (await session.execute(_DUE, {"limit": limit})).all()]
    retried = 0
    for execution_id in due:
        try:
            async with db.statements() as session:
                retried += await _retry_one(session, execution_id)
        except DBAPIError as exc:
            if sqlstate(exc) != _UNIQUE_VIOLATION:
                raise
            # another hub process retried it a moment before: the unique index kept it to one
        except ExekraError as exc:  # the workflow was archived meanwhile, or its version deleted
            log.warning("execution %s not retried: %s", execution_id, exc)
    return retried


async def _retry_one(session: Statements, execution_id: uuid.UUID) -> int:
    row = (await session.execute(_LOCK_FAILED, {"id": execution_id})).first()
    if row is None or (await session.execute(_RETRIED, {"id": execution_id})).scalar_one():
        return 0  # another pass holds it, or has retried it
    failed = lifecycle.execution_of(row)
    request = retry_request(failed)
    unsaved = await creation.new_execution(session, failed.workflow_id, request)
    execution = await lifecycle.insert_queued(session, unsaved, SYSTEM)
    retry = {"retryOf": str(failed.id), "attempt": execution.retry_attempt}
    audit.record(session, SYSTEM, "execution.retry", "execution", execution.id, retry)
    return 1


def retry_request(failed: Execution) -> ExecutionRequest:
    """The automatic retry of `failed`: its version, inputs, priority and trigger, one further down the chain."""
    return ExecutionRequest(
        workflow_id=failed.workflow_id,
        inputs=failed.inputs,
        trigger_type=TriggerType(failed.trigger_type),
        triggered_by=failed.triggered_by,
        priority=failed.priority,
        version_id=failed.version_id,
        retry_of=failed.id,
        retry_attempt=failed.retry_attempt + 1,
    )
