"""The state of each node of an execution, read from the structured events of its log.

The engine marks a top-level node's start and end on a log line (`node`, `event`: started, completed, failed,
skipped, stopped). A node's state is its last event; a node without one was not reached (yet). A node still
running when the execution has ended (its runner was lost, or the execution timed out and its process tree
was killed) is shown as STOPPED: nothing runs it any more.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import text

from exekra.db.session import Database
from exekra.hub.errors import NotFound
from exekra.hub.executions.models import TERMINAL_STATUSES, ExecutionStatus
from exekra.hub.lookup import parse_id


class NodeState(StrEnum):
    NOT_REACHED = "NOT_REACHED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    STOPPED = "STOPPED"


_STATE_OF_EVENT = {
    "started": NodeState.RUNNING,
    "completed": NodeState.COMPLETED,
    "failed": NodeState.FAILED,
    "skipped": NodeState.SKIPPED,
    "stopped": NodeState.STOPPED,
}


@dataclass
class NodeRun:
    """One node of the execution's version, and what happened to it."""

    id: str
    activity: str
    state: NodeState = NodeState.NOT_REACHED
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds() * 1000)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "activity": self.activity,
            "state": self.state.value,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "durationMs": self.duration_ms,
        }


def fold(definition: dict[str, Any], status: str, events: list[Any]) -> list[NodeRun]:
    """The definition's nodes, in its order, with the events (rows of `node, event, ts` in log order)
    applied; `status` is the execution's."""
    runs: dict[str, NodeRun] = {}
    for node in definition.get("nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            runs.setdefault(node["id"], NodeRun(node["id"], str(node.get("activity", ""))))
    for row in events:
        run = runs.get(row.node)
        state = _STATE_OF_EVENT.get(row.event)
        if run is None or state is None:
            continue
        run.state = state
        if state is NodeState.RUNNING:
            run.started_at, run.ended_at = row.ts, None
        else:
            run.ended_at = row.ts
    if ExecutionStatus(status) in TERMINAL_STATUSES:
        for run in runs.values():
            if run.state is NodeState.RUNNING:
                run.state = NodeState.STOPPED
    return list(runs.values())


_EXECUTION = text(
    """
SELECT e.status, v.definition FROM executions e JOIN workflow_versions v ON v.id = e.version_id
 WHERE e.id = :ident"""
)
# Reads the partial index `ix_execution_logs_node_events`: only the event lines, however long the log.
_EVENTS = text(
    "SELECT node, event, ts FROM execution_logs WHERE execution_id = :ident AND event IS NOT NULL ORDER BY seq"
)


async def execution_graph(db: Database, execution_id: str | uuid.UUID) -> tuple[dict[str, Any], list[NodeRun]]:
    """The definition of the execution's version, and every node of it with its state, start, end and
    duration."""
    ident = parse_id(execution_id, "execution")
    async with db.session() as session:
        execution = (await session.execute(_EXECUTION, {"ident": ident})).first()
        if execution is None:
            raise NotFound(f"execution {execution_id} not found")
        events = (await session.execute(_EVENTS, {"ident": ident})).all()
    return execution.definition, fold(execution.definition, execution.status, list(events))


def runs_to_api(runs: list[NodeRun]) -> list[dict[str, Any]]:
    return [run.to_api() for run in runs]
