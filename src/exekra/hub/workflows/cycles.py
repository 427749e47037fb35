"""Publishing refuses a version that would make a workflow run itself through `workflow.run`.

The check follows the `workflow.run` nodes that name their workflow literally (`subworkflow_calls`): from the
version being published to the version each call would run (the pinned one when its number is literal, else
the published one), and on through theirs. A call that leads back to the workflow being published is a cycle,
refused with 422 at the node that starts it. Calls whose workflow is a template are seen only at run time, where
the hub refuses a child whose workflow already runs above it, and the depth limit bounds the rest
(`exekra.hub.executions.children`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.workflow.definition import SubworkflowCall, subworkflow_calls
from exekra.workflow.errors import Problem

# The workflow a call names (by id first, else by name) and the definition of the version it would run, if any.
_TARGET = text(
    """
SELECT w.id, w.name, v.definition
  FROM workflows w
  LEFT JOIN workflow_versions v
    ON v.workflow_id = w.id
   AND CASE WHEN CAST(:number AS int) IS NULL THEN v.published
            ELSE v.number = CAST(:number AS int) AND v.published_at IS NOT NULL END
 WHERE w.id = CAST(:id AS uuid) OR w.name = :name
 ORDER BY w.id = CAST(:id AS uuid) DESC NULLS LAST
 LIMIT 1"""
)


async def find_cycle(
    session: AsyncSession, workflow_id: uuid.UUID, name: str, definition: dict[str, Any]
) -> Problem | None:
    """The first cycle the definition's literal `workflow.run` calls close through published versions back to
    workflow `workflow_id` (named `name`), as a problem at the node that starts it; None when there is none."""
    seen: set[uuid.UUID] = set()

    async def back_to_start(calls: list[SubworkflowCall], path: list[str]) -> list[str] | None:
        for call in calls:
            target = await _target(session, call)
            if target is None:
                continue  # an unknown workflow fails when it runs, with its own message
            if target.id == workflow_id:
                return [*path, name]
            if target.id in seen or target.definition is None:
                continue
            seen.add(target.id)
            found = await back_to_start(subworkflow_calls(target.definition), [*path, target.name])
            if found is not None:
                return found
        return None

    for call in subworkflow_calls(definition):
        cycle = await back_to_start([call], [name])
        if cycle is not None:
            message = f"node {call.node}: workflow.run closes a cycle: {' → '.join(cycle)}"
            return Problem(message, node=call.node, param="workflow")
    return None


async def _target(session: AsyncSession, call: SubworkflowCall) -> Any:
    try:
        ident: uuid.UUID | None = uuid.UUID(call.workflow)
    except ValueError:
        ident = None
    params = {"id": ident, "name": call.workflow, "number": call.version}
    return (await session.execute(_TARGET, params)).first()
