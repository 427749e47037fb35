"""Automatic retries: a workflow's retry policy turns a failed execution into a new one, after a delay.

A workflow may set `retry: {attempts, backoffSeconds, backoffFactor, on}`. An execution that ended FAILED, of a
kind in `on` (`lifecycle.failure_kind`), gets a retry once `backoffSeconds * backoffFactor ** retryAttempt`
seconds have passed since it ended, while its `retryAttempt` is below `attempts`. The retry is a new execution of
the same version with the same inputs, priority and trigger, whose `retryOf` is the execution before it and whose
`retryAttempt` is one more. STOPPED and COMPLETED executions are never retried.

Nothing is scheduled when an execution ends (the runner's `complete` stays one statement): the maintenance pass
looks for failures that are due (`retry_due`) and retries each in its own transaction. The unique index on
`executions.retry_of` makes an execution's retry one, whichever pass or hub process gets to it.
All times are the database's clock.
"""

from __future__ import annotations

import logging
from dataclasses import replace

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


def _policy(field: str) -> str:
    return f"CAST(w.retry_policy->>'{field}' AS float8)"


_DELAY = f"{_policy('backoffSeconds')} * power({_policy('backoffFactor')}, {{attempt}})"

# Per workflow with a policy, its recent failures (index `ix_executions_retry_candidates`), oldest first.
_DUE = text(
    f"""
SELECT {lifecycle.execution_columns("x")}
  FROM workflows w
  JOIN executions x ON x.workflow_id = w.id AND x.status = 'FAILED'
 WHERE w.retry_policy IS NOT NULL AND NOT w.archived
   AND x.created_at >= CAST(w.retry_policy->>'since' AS timestamptz)
   AND x.completed_at > now() - make_interval(
           secs => {_DELAY.format(attempt=f"{_policy('attempts')} - 1")} + {HORIZON_SECONDS})
   AND x.retry_attempt < CAST(w.retry_policy->>'attempts' AS int)
   AND x.completed_at + make_interval(secs => {_DELAY.format(attempt="x.retry_attempt")}) <= now()
   AND jsonb_build_array({lifecycle.failure_kind("x")}) <@ (w.retry_policy->'on')
   AND NOT EXISTS (SELECT 1 FROM executions r WHERE r.retry_of = x.id)
 ORDER BY x.completed_at
 LIMIT :limit"""
)

_UNIQUE_VIOLATION = "23505"


async def retry_due(db: Database, *, limit: int = BATCH) -> int:
    """Retry the failures whose delay has passed, each in its own transaction; returns how many were retried.

    Only the leader runs the maintenance checks (`exekra.hub.leader`); should two passes meet during a hand-over, the
    unique index on `executions.retry_of` lets one retry of a failure commit, and the other rolls back."""
    async with db.reading() as session:
        due = [lifecycle.execution_of(row) for row in (await session.execute(_DUE, {"limit": limit})).all()]
    retried = 0
    for failed in due:
        try:
            async with db.statements() as session:
                await _retry(session, failed)
            retried += 1
        except DBAPIError as exc:
            if sqlstate(exc) != _UNIQUE_VIOLATION:
                raise
            # another pass retried it a moment before: the unique index kept it to one
        except ExekraError as exc:  # the workflow was archived since the look
            log.warning("execution %s not retried: %s", failed.id, exc)
    return retried


async def _retry(session: Statements, failed: Execution) -> None:
    unsaved = await creation.new_execution(session, failed.workflow_id, retry_request(failed))
    execution = await lifecycle.insert_queued(session, unsaved.execution, SYSTEM)
    retry = {"retryOf": str(failed.id), "attempt": execution.retry_attempt}
    audit.record(session, SYSTEM, "execution.retry", "execution", execution.id, retry)


def retry_request(failed: Execution) -> ExecutionRequest:
    """The automatic retry of `failed`: a rerun (`creation.rerun_request`) with its trigger, one further down the
    chain."""
    return replace(
        creation.rerun_request(failed, failed.triggered_by),
        trigger_type=TriggerType(failed.trigger_type),
        retry_of=failed.id,
        retry_attempt=failed.retry_attempt + 1,
    )
