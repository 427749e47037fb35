"""Names beside ids: the runner's name and who triggered an execution (a user's email, a trigger's name).

The API keeps the ids and adds these names (`runnerName`, `triggeredByName`) so that a person reading an
execution needs no second look-up. One query reads the names of a whole page of executions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from exekra.db.session import Database
from exekra.hub.executions.models import Execution, TriggerType

_BY_TRIGGER = frozenset({TriggerType.SCHEDULE, TriggerType.WEBHOOK})


@dataclass(frozen=True)
class ExecutionNames:
    """Runner names and trigger-user emails or trigger names, by id (as text)."""

    runners: dict[uuid.UUID, str] = field(default_factory=dict)
    triggerers: dict[str, str] = field(default_factory=dict)

    def runner_name(self, execution: Execution) -> str | None:
        return self.runners.get(execution.runner_id) if execution.runner_id else None

    def triggered_by_name(self, execution: Execution) -> str | None:
        return self.triggerers.get(execution.triggered_by or "")

    def of(self, execution: Execution) -> dict[str, Any]:
        """The keyword arguments of `execution_to_api` for this execution's names."""
        return {"runner_name": self.runner_name(execution), "triggered_by_name": self.triggered_by_name(execution)}


# Built once (composing a statement per request costs more CPU than running it); an empty array matches nothing.
_NAMES = text(
    """
SELECT 'runner' AS kind, CAST(id AS text) AS id, name FROM runners WHERE id = ANY(CAST(:runners AS uuid[]))
UNION ALL
SELECT 'user', CAST(id AS text), email FROM users WHERE id = ANY(CAST(:users AS uuid[]))
UNION ALL
SELECT 'trigger', CAST(id AS text), name FROM triggers WHERE id = ANY(CAST(:triggers AS uuid[]))"""
)


def _ids(values: Iterable[str | None]) -> list[uuid.UUID]:
    ids = set()
    for value in values:
        try:
            ids.add(uuid.UUID(str(value)))
        except ValueError:
            continue  # not one of ours (an older row): shown without a name
    return sorted(ids)


async def names_of(db: Database, executions: Iterable[Execution]) -> ExecutionNames:
    """The names of the runners and triggerers of `executions`, read in one query."""
    rows = list(executions)
    runner_ids = _ids(str(e.runner_id) for e in rows if e.runner_id)
    user_ids = _ids(e.triggered_by for e in rows if e.trigger_type not in _BY_TRIGGER)
    trigger_ids = _ids(e.triggered_by for e in rows if e.trigger_type in _BY_TRIGGER)
    if not (runner_ids or user_ids or trigger_ids):
        return ExecutionNames()
    params = {"runners": runner_ids, "users": user_ids, "triggers": trigger_ids}
    async with db.session() as session:
        found = (await session.execute(_NAMES, params)).all()
    names = ExecutionNames()
    for row in found:
        if row.kind == "runner":
            names.runners[uuid.UUID(row.id)] = row.name
        else:
            names.triggerers[row.id] = row.name
    return names
