"""Names beside ids: the runner's name and who triggered an execution (a user's email, a trigger's name, a parent
execution's workflow), and why a queued execution waits (`waitingReason`): no registered runner can run it, or its
workflow's concurrency limit is reached for its group.

The API keeps the ids and adds these names (`runnerName`, `triggeredByName`) so that a person reading an
execution needs no second look-up. One query reads the names of a whole page of executions; more, only when the
page holds queued executions that require activities or have a concurrency group, read their waiting reasons.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from exekra.db.raw import Statements
from exekra.db.session import Database
from exekra.hub import concurrency, lifecycle
from exekra.hub.executions.models import Execution, ExecutionStatus, TriggerType

_BY_TRIGGER = frozenset({TriggerType.SCHEDULE, TriggerType.WEBHOOK})
_NOT_BY_USER = _BY_TRIGGER | {TriggerType.WORKFLOW}  # a sub-workflow's `triggeredBy` is its parent execution


@dataclass(frozen=True)
class ExecutionNames:
    """Runner names and trigger-user emails or trigger names, by id (as text)."""

    runners: dict[uuid.UUID, str] = field(default_factory=dict)
    triggerers: dict[str, str] = field(default_factory=dict)
    waiting: dict[uuid.UUID, str] = field(default_factory=dict)

    def runner_name(self, execution: Execution) -> str | None:
        return self.runners.get(execution.runner_id) if execution.runner_id else None

    def triggered_by_name(self, execution: Execution) -> str | None:
        return self.triggerers.get(execution.triggered_by or "")

    def with_runner(self, runner_id: uuid.UUID | None, name: str | None) -> ExecutionNames:
        """These names, and `runner_id`'s name as given (None: no runner, or its name unknown: shown without one)."""
        runners = self.runners if runner_id is None or name is None else {**self.runners, runner_id: name}
        return ExecutionNames(runners, self.triggerers, self.waiting)

    def of(self, execution: Execution) -> dict[str, Any]:
        """The keyword arguments of `execution_to_api` for this execution's names (a waiting reason only while it is
        QUEUED: names read before it left the queue may still hold one)."""
        return {
            "runner_name": self.runner_name(execution),
            "triggered_by_name": self.triggered_by_name(execution),
            "waiting_reason": self.waiting.get(execution.id) if execution.status == ExecutionStatus.QUEUED else None,
        }


# Built once (composing a statement per request costs more CPU than running it); an empty array matches nothing.
_NAMES = text(
    """
SELECT 'runner' AS kind, CAST(id AS text) AS id, name FROM runners WHERE id = ANY(CAST(:runners AS uuid[]))
UNION ALL
SELECT 'user', CAST(id AS text), email FROM users WHERE id = ANY(CAST(:users AS uuid[]))
UNION ALL
SELECT 'trigger', CAST(id AS text), name FROM triggers WHERE id = ANY(CAST(:triggers AS uuid[]))
UNION ALL
SELECT 'parent', CAST(x.id AS text), w.name FROM executions x JOIN workflows w ON w.id = x.workflow_id
 WHERE x.id = ANY(CAST(:parents AS uuid[]))"""
)


def _ids(values: Iterable[str | None]) -> list[uuid.UUID]:
    ids = set()
    for value in values:
        try:
            ids.add(uuid.UUID(str(value)))
        except ValueError:
            continue  # not one of ours (an older row): shown without a name
    return sorted(ids)


# For each queued execution that requires activities: those of them that no runner it may run on declares (pinned:
# its runner; else those of its type and labels, registered, online or not), and whether one such runner declares
# them all.
_NOT_DECLARED = text(
    """
SELECT x.id, x.pinned_runner_id IS NOT NULL AS pinned,
       ARRAY(SELECT a FROM unnest(x.required_activities) AS a
              WHERE NOT EXISTS (SELECT 1 FROM runners rn WHERE a = ANY(rn.activities) AND {may_run})
              ORDER BY a) AS missing,
       EXISTS (SELECT 1 FROM runners rn WHERE rn.activities @> x.required_activities AND {may_run}) AS runnable
  FROM executions x
 WHERE x.id = ANY(:ids) AND x.status = 'QUEUED' AND cardinality(x.required_activities) > 0""".format(
        may_run=lifecycle.may_run("rn", "x")
    )
)


def _waiting_reason(pinned: bool, missing: list[str], required: list[str]) -> str | None:
    who = "the pinned runner does not declare" if pinned else "no runner declares"
    if missing:
        return f"{who} {', '.join(missing)}"
    return None if pinned else f"no single runner declares all of {', '.join(required)}"


def _may_wait(execution: Execution) -> bool:
    """Whether a waiting reason is worth a read: it is QUEUED and requires activities, or has a group."""
    return execution.status == ExecutionStatus.QUEUED and (
        bool(execution.required_activities) or execution.concurrency_key is not None
    )


async def _waiting_reasons(session: Statements, executions: list[Execution]) -> dict[uuid.UUID, str]:
    """Why each of the QUEUED `executions` waits, for those no registered runner can run, then for those whose
    concurrency group is full (by execution id)."""
    waiting = {e.id: e for e in executions if _may_wait(e) and e.required_activities}
    reasons: dict[uuid.UUID, str] = {}
    if waiting:
        rows = (await session.execute(_NOT_DECLARED, {"ids": list(waiting)})).all()
        for row in rows:
            reason = _waiting_reason(row.pinned, list(row.missing), waiting[row.id].required_activities)
            if reason and not row.runnable:
                reasons[row.id] = reason
    grouped = [e.id for e in executions if _may_wait(e) and e.concurrency_key is not None and e.id not in reasons]
    return reasons | await concurrency.held_by_limit(session, grouped)


async def waiting_reasons(db: Database, executions: list[Execution]) -> dict[uuid.UUID, str]:
    """`_waiting_reasons` on a connection of its own (an execution shown without its names); no read when
    none of them is queued with required activities or a concurrency group."""
    if not any(_may_wait(e) for e in executions):
        return {}
    async with db.reading() as session:
        return await _waiting_reasons(session, executions)


async def names_of(db: Database, executions: Iterable[Execution]) -> ExecutionNames:
    """The names of the runners and triggerers of `executions`, read in one query, and the waiting reasons of
    those that are queued where no runner can run them."""
    rows = list(executions)
    runner_ids = _ids(str(e.runner_id) for e in rows if e.runner_id)
    user_ids = _ids(e.triggered_by for e in rows if e.trigger_type not in _NOT_BY_USER)
    trigger_ids = _ids(e.triggered_by for e in rows if e.trigger_type in _BY_TRIGGER)
    parent_ids = _ids(e.triggered_by for e in rows if e.trigger_type == TriggerType.WORKFLOW)
    found: list[Any] = []
    async with db.reading() as session:  # one connection for both reads
        waiting = await _waiting_reasons(session, rows)
        if runner_ids or user_ids or trigger_ids or parent_ids:
            params = {"runners": runner_ids, "users": user_ids, "triggers": trigger_ids, "parents": parent_ids}
            found = list((await session.execute(_NAMES, params)).all())
    names = ExecutionNames(waiting=waiting)
    for row in found:
        if row.kind == "runner":
            names.runners[uuid.UUID(row.id)] = row.name
        else:
            names.triggerers[row.id] = row.name
    return names
