"""What the dashboard's trigger pages show: triggers with their workflow and the execution of their last fire."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.session import Database
from exekra.hub.lookup import parse_id
from exekra.hub.triggers.models import Trigger
from exekra.hub.workflows.models import Workflow


@dataclass(frozen=True)
class LastRun:
    """The execution a trigger's last fire started."""

    id: uuid.UUID
    status: str


@dataclass(frozen=True)
class TriggerRow:
    trigger: Trigger
    workflow_name: str
    last_run: LastRun | None


# A fire's execution: a schedule records it with the fire; a webhook call's execution was created just before
# `lastFiredAt` was set, so it is found in a short window of the workflow's history (index on workflow_id,
# created_at), never by a scan of the whole history.
_LAST_RUNS = text(
    """
    SELECT t.id AS trigger_id, run.id AS execution_id, run.status AS status
    FROM triggers t
    CROSS JOIN LATERAL (
        SELECT e.id, e.status FROM executions e
        WHERE e.id = (SELECT f.execution_id FROM trigger_fires f
                      WHERE f.trigger_id = t.id AND f.execution_id IS NOT NULL
                      ORDER BY f.fire_time DESC LIMIT 1)
        UNION ALL
        SELECT * FROM (
            SELECT e.id, e.status FROM executions e
            WHERE t.type = 'WEBHOOK' AND e.workflow_id = t.workflow_id
              AND e.created_at BETWEEN t.last_fired_at - interval '10 minutes' AND t.last_fired_at
              AND e.triggered_by = t.id::text
            ORDER BY e.created_at DESC LIMIT 1
        ) AS webhook_run
        LIMIT 1
    ) AS run
    WHERE t.id IN :ids AND t.last_fired_at IS NOT NULL
    """
).bindparams(bindparam("ids", expanding=True))


async def _last_runs(session: AsyncSession, triggers: list[Trigger]) -> dict[uuid.UUID, LastRun]:
    if not triggers:
        return {}
    rows = await session.execute(_LAST_RUNS, {"ids": [t.id for t in triggers]})
    return {row.trigger_id: LastRun(row.execution_id, row.status) for row in rows}


async def trigger_rows(
    db: Database, *, workflow_id: str | None, offset: int, limit: int
) -> tuple[list[TriggerRow], int]:
    """A page of triggers by workflow name and trigger name (optionally of one workflow), with the total."""
    query = select(Trigger, Workflow.name).join(Workflow, Workflow.id == Trigger.workflow_id)
    if workflow_id:
        query = query.where(Trigger.workflow_id == parse_id(workflow_id, "workflow"))
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = list(
            await session.execute(query.order_by(Workflow.name, Trigger.name, Trigger.id).offset(offset).limit(limit))
        )
        runs = await _last_runs(session, [row.Trigger for row in rows])
    return [TriggerRow(row.Trigger, row.name, runs.get(row.Trigger.id)) for row in rows], int(total)


async def trigger_row(db: Database, trigger_id: str) -> TriggerRow | None:
    """One trigger with its workflow's name and last run (None when it does not exist)."""
    ident = parse_id(trigger_id, "trigger")
    async with db.session() as session:
        row = (
            await session.execute(
                select(Trigger, Workflow.name)
                .join(Workflow, Workflow.id == Trigger.workflow_id)
                .where(Trigger.id == ident)
            )
        ).first()
        if row is None:
            return None
        runs = await _last_runs(session, [row.Trigger])
    return TriggerRow(row.Trigger, row.name, runs.get(row.Trigger.id))
