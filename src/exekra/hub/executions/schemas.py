"""Execution request bodies and API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from exekra.hub.executions.models import Execution, ExecutionStatus, TriggerType
from exekra.hub.executions.nodes import NodeState
from exekra.hub.schemas import ApiAnswer, ApiModel
from exekra.workflow.activities.context import NodeEvent


class NewExecution(ApiModel):
    workflow_id: str = Field(min_length=1, max_length=64)
    inputs: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=0, le=9)
    runner_id: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


class ExecutionMetrics(ApiModel):
    """What the runner measured of an execution (reported with `complete`)."""

    cpu_avg: float | None = Field(default=None, ge=0)
    cpu_peak: float | None = Field(default=None, ge=0)
    mem_avg_mb: float | None = Field(default=None, ge=0)
    mem_peak_mb: float | None = Field(default=None, ge=0)


class ExecutionOut(ApiAnswer):
    """An execution as the API shows it (rendered by `execution_to_api`)."""

    id: str
    workflow_id: str
    workflow_name: str | None
    version_id: str
    version_number: int | None
    runner_id: str | None
    runner_name: str | None
    pinned_runner_id: str | None
    status: ExecutionStatus
    priority: int
    attempt: int
    triggered_by: str | None
    triggered_by_name: str | None
    trigger_type: TriggerType
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    idempotency_key: str | None
    stop_requested: bool
    timeout_seconds: int | None
    retry_of: str | None
    """The execution this one automatically retries (the one before it in the chain); null for an original."""
    retry_attempt: int
    """0 for an original, n for its n-th automatic retry."""
    concurrency_key: str | None
    """Its concurrency group in its workflow: the workflow's `concurrencyKey` evaluated on its inputs when it was
    created ("" without a template); null when its workflow had no `maxConcurrent` then."""
    parent_id: str | None
    """The execution whose `workflow.run` started this one (a sub-workflow); null for a top-level execution."""
    queued_at: datetime | None
    assigned_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    metrics: ExecutionMetrics
    waiting_reason: str | None
    """Why a QUEUED execution waits: no registered runner can run it (`no runner declares browser.open`), and it
    stays QUEUED until a runner that declares its activities signs in; or its workflow's concurrency limit is
    reached for its group (`concurrency limit reached: 3 of 3 running for key 'acme'`), and it starts when one of
    them ends. Either way, unless the queue timeout ends it first."""


class ExecutionAnswer(ApiAnswer):
    execution: ExecutionOut


class ExecutionPage(ApiAnswer):
    """Newest first. `total` is null for keyset pages (`cursor`); `totalCapped` when it stopped counting."""

    executions: list[ExecutionOut]
    total: int | None
    total_capped: bool
    page: int
    limit: int
    next_cursor: str | None


class StoredLogLine(ApiAnswer):
    seq: int
    ts: datetime
    level: str
    message: str
    node: str | None = Field(description="The top-level workflow node the line belongs to.")
    event: NodeEvent | None = Field(description="On a node's start or end line: what happened to the node.")


class NodeRunOut(ApiAnswer):
    """A node of the execution's version: its state (NOT_REACHED until its first event) and, once it has
    ended, its duration."""

    id: str
    activity: str
    state: NodeState
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None


class NodeRunsAnswer(ApiAnswer):
    nodes: list[NodeRunOut]


class LogPage(ApiAnswer):
    """Lines after `afterSeq`; ask again with `afterSeq=nextSeq` for the next ones."""

    lines: list[StoredLogLine]
    next_seq: int


class CreatedExecutionAnswer(ApiAnswer):
    """201 with the new execution; 200 with the first one when the idempotency key was seen (`duplicate`)."""

    execution: ExecutionOut
    duplicate: bool


def log_line_to_api(line: Any) -> dict[str, Any]:
    """A stored log line (a row or an `ExecutionLog`) as the API, the log stream and the archive give it."""
    return {
        "seq": line.seq,
        "ts": line.ts,
        "level": line.level,
        "message": line.message,
        "node": line.node,
        "event": line.event,
    }


def execution_to_api(
    e: Execution,
    workflow_name: str | None = None,
    version_number: int | None = None,
    *,
    runner_name: str | None = None,
    triggered_by_name: str | None = None,
    waiting_reason: str | None = None,
) -> dict[str, Any]:
    """An execution as the API shows it; the names beside the ids spare a person a look-up (None when not
    given or not known)."""
    return {
        "id": str(e.id),
        "workflowId": str(e.workflow_id),
        "workflowName": workflow_name,
        "versionId": str(e.version_id),
        "versionNumber": version_number,
        "runnerId": str(e.runner_id) if e.runner_id else None,
        "runnerName": runner_name,
        "pinnedRunnerId": str(e.pinned_runner_id) if e.pinned_runner_id else None,
        "status": e.status,
        "priority": e.priority,
        "attempt": e.attempt,
        "triggeredBy": e.triggered_by,
        "triggeredByName": triggered_by_name,
        "triggerType": e.trigger_type,
        "inputs": e.inputs,
        "outputs": e.outputs,
        "error": e.error,
        "idempotencyKey": e.idempotency_key,
        "stopRequested": e.stop_requested,
        "timeoutSeconds": e.timeout_seconds,
        "retryOf": str(e.retry_of) if e.retry_of else None,
        "retryAttempt": e.retry_attempt,
        "concurrencyKey": e.concurrency_key,
        "parentId": str(e.parent_id) if e.parent_id else None,
        "queuedAt": e.queued_at,
        "assignedAt": e.assigned_at,
        "startedAt": e.started_at,
        "completedAt": e.completed_at,
        "createdAt": e.created_at,
        "metrics": {
            "cpuAvg": e.cpu_avg,
            "cpuPeak": e.cpu_peak,
            "memAvgMb": e.mem_avg_mb,
            "memPeakMb": e.mem_peak_mb,
        },
        "waitingReason": waiting_reason,
    }
