"""What creating an execution needs inside its transaction: the version to run, the inputs, the idempotency key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.hub.errors import Conflict, NotFound, ValidationFailed
from exekra.hub.executions.models import Execution, TriggerType
from exekra.hub.lookup import get_or_404, parse_id
from exekra.hub.runners.models import Runner
from exekra.hub.workflows.models import Workflow, WorkflowVersion
from exekra.hub.workflows.service import published_version
from exekra.workflow.catalogue import required_activities
from exekra.workflow.definition import DefinitionError, resolve_inputs, validate_definition


@dataclass(frozen=True)
class ExecutionRequest:
    """Everything that starts an execution, whatever the trigger (API, dashboard, retry, schedule, webhook)."""

    workflow_id: str | uuid.UUID
    inputs: dict[str, Any]
    trigger_type: TriggerType
    triggered_by: str | None
    priority: int | None = None
    runner_id: str | None = None
    idempotency_key: str | None = None
    # How long the key keeps answering with this execution; None: the hub's `EXEKRA_DEDUP_WINDOW_SECONDS`.
    key_window_seconds: int | None = None
    version_id: uuid.UUID | None = None  # a retry reruns its version, which must still be the published one


@dataclass(frozen=True)
class Created:
    execution: Execution
    duplicate: bool


_CLAIM_KEY = text(
    """
INSERT INTO execution_keys (workflow_id, key, execution_id, created_at)
VALUES (:workflow_id, :key, :execution_id, now())
ON CONFLICT (workflow_id, key) DO UPDATE
   SET execution_id = EXCLUDED.execution_id, created_at = EXCLUDED.created_at
 WHERE execution_keys.created_at < now() - make_interval(secs => :window)
RETURNING execution_id"""
)

_FIND_KEY = text(
    """
SELECT execution_id FROM execution_keys
 WHERE workflow_id = :workflow_id AND key = :key AND created_at >= now() - make_interval(secs => :window)"""
)


async def find_duplicate(session: AsyncSession, workflow_id: uuid.UUID, key: str, window: int) -> Execution | None:
    """The execution that holds `key` within its window, if any."""
    row = (await session.execute(_FIND_KEY, {"workflow_id": workflow_id, "key": key, "window": window})).first()
    return await session.get(Execution, row.execution_id) if row else None


async def claim_key(
    session: AsyncSession, workflow_id: uuid.UUID, key: str, execution_id: uuid.UUID, window: int
) -> bool:
    """Bind `key` to the new execution; False when a concurrent request holds it (this transaction must roll back)."""
    params = {"workflow_id": workflow_id, "key": key, "execution_id": execution_id, "window": window}
    return (await session.execute(_CLAIM_KEY, params)).first() is not None


async def new_execution(session: AsyncSession, workflow_id: uuid.UUID, request: ExecutionRequest) -> Execution:
    """The execution a request asks for, not yet inserted: its version, resolved inputs and constraints.

    NotFound for an unknown workflow, version or pinned runner; Conflict for an archived workflow, a workflow
    without a published version, or a retry of a version that is no longer the published one; 422 for inputs
    the definition refuses.
    """
    if request.version_id is not None:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow")
        version = await get_or_404(session, WorkflowVersion, request.version_id, "version")
        if workflow.archived:
            raise Conflict(f"workflow {workflow.name} is archived")
        if not version.published:
            raise Conflict(
                f"version {version.number} of workflow {workflow.name} is no longer the published one: "
                "run the workflow again instead"
            )
    else:
        workflow, version = await published_version(session, workflow_id)
    try:
        definition = validate_definition(version.definition)
        inputs = resolve_inputs(definition, request.inputs)
    except DefinitionError as exc:
        raise ValidationFailed(f"inputs: {exc.problems[0]}", details={"problems": exc.problems}) from None
    pinned = None
    if request.runner_id:
        pinned = parse_id(request.runner_id, "runner")
        if await session.get(Runner, pinned) is None:
            raise NotFound(f"runner {request.runner_id} not found")
    return Execution(
        id=uuid.uuid4(),
        workflow_id=workflow.id,
        version_id=version.id,
        pinned_runner_id=pinned,
        runner_type=workflow.runner_type,
        required_labels=list(workflow.labels),
        required_activities=required_activities(definition),
        priority=request.priority if request.priority is not None else workflow.priority,
        trigger_type=request.trigger_type,
        triggered_by=request.triggered_by,
        inputs=inputs,
        idempotency_key=request.idempotency_key,
        timeout_seconds=workflow.timeout_seconds,
    )


def retry_of(original: Execution, triggered_by: str) -> ExecutionRequest:
    """The request that re-runs an execution with the same version and inputs."""
    return ExecutionRequest(
        workflow_id=original.workflow_id,
        inputs=original.inputs,
        trigger_type=TriggerType.MANUAL,
        triggered_by=triggered_by,
        priority=original.priority,
        version_id=original.version_id,
    )
