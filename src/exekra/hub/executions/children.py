"""Sub-workflows on the hub: a RUNNING execution's `workflow.run` starts a child execution, and a child never
outlives its parent.

A child is created through the one creation path (`creation.new_execution`, `lifecycle.insert_queued`), with
`parentId` and the key of the parent's call (`<node>:<n>`), unique per parent: a request the runner repeats
after a network failure answers the child it created the first time. It is refused (409
`subworkflow_refused`) when it would go deeper than `EXEKRA_MAX_SUBWORKFLOW_DEPTH`, when its workflow already
runs above it (a cycle), and when no registered runner could ever run it besides those that hold the executions
above it, which wait for it (a certain deadlock).

When a parent ends, whatever the way (completed, failed, stopped, timed out, its runner lost), its live
descendants are stopped: at once by the end's hook (`stop_children_of`), and by the maintenance pass for any
the hook missed (`stop_orphans`). A user's stop of a RUNNING parent stops its descendants in the same
transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from exekra.db.raw import Statements
from exekra.hub import lifecycle
from exekra.hub.audit.service import Actor
from exekra.hub.errors import NotFound, SubworkflowRefused
from exekra.hub.executions import creation
from exekra.hub.executions.creation import Created, ExecutionRequest
from exekra.hub.executions.models import LIVE_STATUS_SQL, Execution, TriggerType


@dataclass(frozen=True)
class ChildRequest:
    """What a parent's `workflow.run` asks for: its call's key, the workflow (name or id), inputs, a version."""

    key: str
    workflow: str
    inputs: dict[str, Any]
    version: int | None = None


# The parent, its parent, and so on up to the top-level execution (at most `limit` + 1 rows): their workflows
# (a cycle) and the runners that hold them (they wait for the child: none of them can run it).
_ANCESTRY = text(
    """
WITH RECURSIVE chain AS (
    SELECT x.id, x.parent_id, x.workflow_id, x.runner_id, 1 AS depth FROM executions x WHERE x.id = :parent_id
    UNION ALL
    SELECT x.id, x.parent_id, x.workflow_id, x.runner_id, chain.depth + 1
      FROM executions x JOIN chain ON x.id = chain.parent_id
     WHERE chain.depth <= :limit
)
SELECT chain.workflow_id, w.name AS workflow_name, chain.runner_id
  FROM chain JOIN workflows w ON w.id = chain.workflow_id
 ORDER BY chain.depth DESC"""
)

# By id first; else by name (workflow names are unique).
_WORKFLOW = text(
    """
SELECT id FROM (SELECT id, 0 AS rank FROM workflows WHERE id = CAST(:id AS uuid)
                UNION ALL
                SELECT id, 1 FROM workflows WHERE name = :name) found
 ORDER BY rank LIMIT 1"""
)

_CHILD_BY_KEY = text(
    f"SELECT {lifecycle.EXECUTION_COLUMNS} FROM executions WHERE parent_id = :parent_id AND parent_key = :key"
)

# Some registered, enabled runner may run the child (SPEC §6, online or not) that does not hold one of the
# executions above it.
_RUNNABLE = text(
    f"""
SELECT EXISTS (
    SELECT 1 FROM runners rn, (SELECT CAST(:pinned_runner_id AS uuid) AS pinned_runner_id,
                                      CAST(:runner_type AS text) AS runner_type,
                                      CAST(:required_labels AS text[]) AS required_labels) x
     WHERE rn.enabled AND rn.activities @> CAST(:required_activities AS text[])
       AND NOT (rn.id = ANY(CAST(:busy AS uuid[])))
       AND {lifecycle.may_run("rn", "x")})"""
)


async def start_child(
    session: Statements, held: lifecycle.Attempt, request: ChildRequest, actor: Actor, *, max_depth: int
) -> Created | None:
    """Create the child `request` asks for, for the RUNNING attempt `held`, or return the one its key already
    made (`duplicate`). None when the runner does not hold that attempt RUNNING.

    Raises NotFound (no such workflow or version), Conflict (archived, no published version, a draft pinned),
    ValidationFailed (inputs), SubworkflowRefused (depth, cycle, no runner, the parent is stopping).
    """
    parent = await lifecycle.hold_parent(session, held)
    if parent is None:
        return None
    row = (await session.execute(_CHILD_BY_KEY, {"parent_id": parent.id, "key": request.key})).first()
    if row is not None:
        return Created(lifecycle.execution_of(row), duplicate=True)
    if parent.stop_requested:
        raise SubworkflowRefused(f"execution {parent.id} is stopping: it starts no child")
    chain = (await session.execute(_ANCESTRY, {"parent_id": parent.id, "limit": max_depth})).all()
    if len(chain) > max_depth:
        raise SubworkflowRefused(
            f"sub-workflow depth limit reached: {_path(chain)} already nests {len(chain)} executions deep, the "
            f"most EXEKRA_MAX_SUBWORKFLOW_DEPTH ({max_depth}) allows"
        )
    workflow_id = await _workflow_id(session, request.workflow)
    if workflow_id in {link.workflow_id for link in chain}:
        name = next(link.workflow_name for link in chain if link.workflow_id == workflow_id)
        raise SubworkflowRefused(
            f"cycle: workflow {name} already runs above this execution ({_path(chain)} → {name}); "
            "a workflow may not run itself, directly or through others"
        )
    child = ExecutionRequest(
        workflow_id=workflow_id,
        inputs=request.inputs,
        trigger_type=TriggerType.WORKFLOW,
        triggered_by=str(parent.id),
        version_number=request.version,
        parent_id=parent.id,
        parent_key=request.key,
    )
    unsaved = (await creation.new_execution(session, workflow_id, child)).execution
    # A child goes ahead of new work of a lower priority: the runner its parent holds waits for it.
    unsaved.priority = max(unsaved.priority, parent.priority)
    busy = [link.runner_id for link in chain if link.runner_id is not None]
    if not await _runnable(session, unsaved, busy):
        raise SubworkflowRefused(
            f"no runner can run workflow {request.workflow} but those that run {_path(chain)}, which wait for it: "
            "register a runner of its type and labels (a sub-workflow runs on a runner of its own)"
        )
    return Created(await lifecycle.insert_queued(session, unsaved, actor), duplicate=False)


def _path(chain: Sequence[Any]) -> str:
    return " → ".join(link.workflow_name for link in chain)


async def _workflow_id(session: Statements, ref: str) -> uuid.UUID:
    try:
        ident: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        ident = None
    found = (await session.execute(_WORKFLOW, {"id": ident, "name": ref})).scalar_one_or_none()
    if found is None:
        raise NotFound(f"workflow {ref} not found")
    return uuid.UUID(str(found))


async def _runnable(session: Statements, execution: Execution, busy: list[uuid.UUID]) -> bool:
    params = {
        "pinned_runner_id": execution.pinned_runner_id,
        "runner_type": execution.runner_type,
        "required_labels": list(execution.required_labels),
        "required_activities": list(execution.required_activities),
        "busy": busy,
    }
    return bool((await session.execute(_RUNNABLE, params)).scalar_one())


# The live descendants of an execution not yet asked to stop (a child's children included, whatever state the
# child is in), at most `limit`.
_LIVE_DESCENDANTS = text(
    f"""
WITH RECURSIVE d AS (
    SELECT id, status, stop_requested, 1 AS depth FROM executions WHERE parent_id = :root
    UNION ALL
    SELECT x.id, x.status, x.stop_requested, d.depth + 1 FROM executions x JOIN d ON x.parent_id = d.id
     WHERE d.depth < :max_depth
)
SELECT id FROM d WHERE {LIVE_STATUS_SQL} AND NOT stop_requested ORDER BY depth"""
)

# Live children, not yet asked to stop, of parents that have ended (index `ix_executions_live_children`).
_ORPHANS = text(
    f"""
SELECT c.id, c.parent_id, p.status AS parent_status
  FROM executions c JOIN executions p ON p.id = c.parent_id
 WHERE c.parent_id IS NOT NULL AND c.{LIVE_STATUS_SQL} AND NOT c.stop_requested
   AND p.status IN ('COMPLETED','FAILED','STOPPED')
 LIMIT :limit"""
)


async def stop_descendants(
    session: Statements, root: uuid.UUID, actor: Actor, why: str, *, max_depth: int
) -> list[uuid.UUID]:
    """Stop every live descendant of `root` (`lifecycle.request_stop`: at once when not yet running, else its
    runner is asked); returns their ids. Each is audited `execution.stop` with `parentId` and `reason`."""
    rows = (await session.execute(_LIVE_DESCENDANTS, {"root": root, "max_depth": max_depth + 1})).all()
    ids = [row.id for row in rows]
    for ident in ids:
        details = {"reason": why, "ancestorId": str(root)}
        await lifecycle.request_stop(session, ident, actor, reason=f"stopped: {why}", details=details)
    return ids


async def stop_orphans(session: Statements, actor: Actor, *, limit: int) -> int:
    """Stop live children whose parent has ended (the end's hook did not: a hub process stopped between the two);
    returns how many."""
    rows = (await session.execute(_ORPHANS, {"limit": limit})).all()
    for row in rows:
        why = ended_reason(row.parent_id, row.parent_status)
        details = {"reason": why, "ancestorId": str(row.parent_id)}
        await lifecycle.request_stop(session, row.id, actor, reason=f"stopped: {why}", details=details)
    return len(rows)


def ended_reason(parent_id: uuid.UUID, status: str) -> str:
    """Why a child is stopped when its parent ends."""
    return f"parent execution {parent_id} ended {status}"


# The parent this runner holds RUNNING, and its child `child_id` if it has one by that id.
_HELD_CHILD = text(
    f"""
SELECT p.id, c.id AS child_id
  FROM executions p LEFT JOIN executions c ON c.id = :child_id AND c.parent_id = p.id
 WHERE {lifecycle.held_by("p")} AND p.status = 'RUNNING'"""
)


async def holds_child(session: Statements, held: lifecycle.Attempt, child_id: uuid.UUID) -> bool:
    """True when the runner holds the RUNNING attempt `held` of the parent of `child_id`; False when it does not
    hold the attempt; NotFound when the parent has no such child."""
    row = (await session.execute(_HELD_CHILD, {**held.params(), "child_id": child_id})).first()
    if row is None:
        return False
    if row.child_id is None:
        raise NotFound(f"execution {held.execution_id} has no child {child_id}")
    return True
