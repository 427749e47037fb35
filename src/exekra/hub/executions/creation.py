"""What creating an execution needs inside its transaction: the version to run, the inputs, the idempotency key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from cachetools import LRUCache
from sqlalchemy import text

from exekra.db.raw import Statements
from exekra.hub import concurrency, lifecycle
from exekra.hub.errors import Conflict, ExekraError, NotFound, ValidationFailed
from exekra.hub.executions.models import Execution, TriggerType
from exekra.hub.lookup import parse_id
from exekra.workflow.catalogue import required_activities
from exekra.workflow.definition import (
    DefinitionError,
    WorkflowDefinition,
    resolve_inputs,
    validate_definition,
)


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
    # An automatic retry (`executions.retries`): the execution it retries, and its place in the chain. It reruns
    # its version even when another one has been published since.
    retry_of: uuid.UUID | None = None
    retry_attempt: int = 0
    # A sub-workflow (`executions.children`): a version pinned by number (any version ever published), the
    # parent execution, and the key of the parent's call.
    version_number: int | None = None
    parent_id: uuid.UUID | None = None
    parent_key: str | None = None


@dataclass(frozen=True)
class Created:
    execution: Execution
    duplicate: bool


_FIND_KEY = text(
    f"""
SELECT {lifecycle.EXECUTION_COLUMNS} FROM executions
 WHERE id = (SELECT execution_id FROM execution_keys
              WHERE workflow_id = :workflow_id AND key = :key
                AND created_at >= now() - make_interval(secs => :window))"""
)

# The workflow and the version to run: the published one, `version_id` (a retry reruns its own version), or
# `version_number` (a sub-workflow pinned to a version).
_TO_RUN = text(
    """
SELECT w.id, w.name, w.archived, w.runner_type, w.labels, w.priority, w.timeout_seconds, w.max_concurrent,
       w.concurrency_key, w.revision, v.id AS version_id, v.number AS version_number, v.published, v.published_at
  FROM workflows w
  LEFT JOIN workflow_versions v
    ON v.workflow_id = w.id
   AND CASE WHEN CAST(:version_id AS uuid) IS NOT NULL THEN v.id = CAST(:version_id AS uuid)
            WHEN CAST(:version_number AS int) IS NOT NULL THEN v.number = CAST(:version_number AS int)
            ELSE v.published END
 WHERE w.id = :workflow_id"""
)
_DEFINITION = text("SELECT definition FROM workflow_versions WHERE id = :id")
_RUNNER_EXISTS = text("SELECT EXISTS (SELECT 1 FROM runners WHERE id = :id)")


async def find_duplicate(session: Statements, workflow_id: uuid.UUID, key: str, window: int) -> Execution | None:
    """The execution that holds `key` within its window, if any."""
    row = (await session.execute(_FIND_KEY, {"workflow_id": workflow_id, "key": key, "window": window})).first()
    return lifecycle.execution_of(row) if row is not None else None


@dataclass(frozen=True)
class _Runnable:
    """What a version's definition gives every execution of it, worked out once per process (a version never
    changes): validating a definition costs 50 µs to 0.3 ms, more than the rest of a create's CPU work."""

    definition: WorkflowDefinition
    required_activities: list[str]


_runnable: LRUCache[uuid.UUID, _Runnable] = LRUCache(maxsize=1024)  # the versions this process ran last


async def _runnable_version(session: Statements, version_id: uuid.UUID) -> _Runnable:
    """The version's checked definition: read (and validated) only the first time this process runs it, so a
    create reads no definition, which may be tens of kilobytes of JSON, for a version it has run before."""
    found = _runnable.get(version_id)
    if found is None:
        definition = (await session.execute(_DEFINITION, {"id": version_id})).scalar_one()
        checked = validate_definition(definition)  # DefinitionError: the caller answers 422
        found = _runnable[version_id] = _Runnable(checked, required_activities(checked))
    return found


class Remembered(LRUCache[uuid.UUID, Any]):
    """What creates of a workflow's published version read of it (`_TO_RUN`), by workflow id, for the workflows a hub
    process created executions of lately (the 1,024 used last), kept once a create made from it was valid.

    Every change of a workflow or of its versions gives it a new revision (migration 0022), and a create made from a
    remembered row inserts nothing unless the revision is still the one remembered (`lifecycle.insert_queued`): the
    row is then forgotten, and the create reads it again. A refusal is never answered from memory."""

    def __init__(self, maxsize: int = 1024) -> None:
        super().__init__(maxsize)

    def forget(self, workflow_id: uuid.UUID) -> None:
        """What was remembered of the workflow may be stale: the next create reads it."""
        self.pop(workflow_id, None)


class Unsaved(NamedTuple):
    """An execution not yet inserted, and the revision of its workflow to check when it is (`insert_queued`): set when
    it was built from what the process remembered, None when from what it read."""

    execution: Execution
    revision: int | None


async def new_execution(
    session: Statements, workflow_id: uuid.UUID, request: ExecutionRequest, *, remembered: Remembered | None = None
) -> Unsaved:
    """The execution a request asks for, not yet inserted: its version, resolved inputs and constraints. For a
    request of the published version, built from what `remembered` holds of the workflow when it holds it (the
    insert then checks the revision), else from a read, which it then holds.

    NotFound for an unknown workflow, version or pinned runner; Conflict for an archived workflow, a workflow
    without a published version, or a manual retry of a version that is no longer the published one; 422 for
    inputs the definition refuses, or that give its workflow's concurrency key no value.
    """
    if request.version_id is not None or request.version_number is not None:
        remembered = None  # a version named: read
    if remembered is not None and (row := remembered.get(workflow_id)) is not None:
        try:
            return await _built(session, row, request, revision=row.revision)
        except ExekraError:
            remembered.forget(workflow_id)  # refused on what was remembered, which may be stale: refused on a read
    chosen = {"workflow_id": workflow_id, "version_id": request.version_id, "version_number": request.version_number}
    row = (await session.execute(_TO_RUN, chosen)).first()
    unsaved = await _built(session, row, request, revision=None)
    if remembered is not None:  # valid
        remembered[workflow_id] = row
    return unsaved


async def _built(session: Statements, row: Any, request: ExecutionRequest, *, revision: int | None) -> Unsaved:
    """The execution `request` asks for, from the workflow's row as `_TO_RUN` reads it (refused as documented in
    `new_execution`)."""
    if row is None:
        raise NotFound(f"workflow {request.workflow_id} not found")
    if request.version_id is not None and row.version_id is None:
        raise NotFound(f"version {request.version_id} not found")
    if request.version_number is not None and row.version_id is None:
        raise NotFound(f"workflow {row.name} has no version {request.version_number}")
    if row.archived:
        raise Conflict(f"workflow {row.name} is archived")
    if row.version_id is None:
        raise Conflict(f"workflow {row.name} has no published version")
    if request.version_number is not None:
        if row.published_at is None:  # a draft may still change: only versions once published are run
            raise Conflict(f"version {row.version_number} of workflow {row.name} is a draft: publish it first")
    elif not row.published and request.retry_of is None:
        raise Conflict(
            f"version {row.version_number} of workflow {row.name} is no longer the published one: "
            "run the workflow again instead"
        )
    try:
        runnable = await _runnable_version(session, row.version_id)
        inputs = resolve_inputs(runnable.definition, request.inputs)
    except DefinitionError as exc:
        raise ValidationFailed(f"inputs: {exc.problems[0]}", details={"problems": exc.problems}) from None
    # Its concurrency group, fixed now (docs/queue.md): later changes of the key template do not move it.
    key = None if row.max_concurrent is None else concurrency.group_key(row.concurrency_key, inputs)
    pinned = None
    if request.runner_id:
        pinned = parse_id(request.runner_id, "runner")
        if not (await session.execute(_RUNNER_EXISTS, {"id": pinned})).scalar_one():
            raise NotFound(f"runner {request.runner_id} not found")
    execution = lifecycle.execution_from(
        dict(
            id=uuid.uuid4(),
            workflow_id=row.id,
            version_id=row.version_id,
            pinned_runner_id=pinned,
            runner_type=row.runner_type,
            required_labels=list(row.labels),
            required_activities=runnable.required_activities,
            priority=request.priority if request.priority is not None else row.priority,
            trigger_type=request.trigger_type,
            triggered_by=request.triggered_by,
            inputs=inputs,
            idempotency_key=request.idempotency_key,
            timeout_seconds=row.timeout_seconds,
            retry_of=request.retry_of,
            retry_attempt=request.retry_attempt,
            concurrency_key=key,
            parent_id=request.parent_id,
            parent_key=request.parent_key,
        )
    )
    return Unsaved(execution, revision)


def rerun_request(original: Execution, triggered_by: str | None) -> ExecutionRequest:
    """The request that re-runs an execution with the same version, inputs and priority (a manual retry)."""
    return ExecutionRequest(
        workflow_id=original.workflow_id,
        inputs=original.inputs,
        trigger_type=TriggerType.MANUAL,
        triggered_by=triggered_by,
        priority=original.priority,
        version_id=original.version_id,
    )
