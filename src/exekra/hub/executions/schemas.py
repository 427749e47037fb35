"""Execution request bodies and API shapes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from exekra.hub.executions.models import Execution
from exekra.hub.schemas import ApiModel


class NewExecution(ApiModel):
    workflow_id: str = Field(min_length=1, max_length=64)
    inputs: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=0, le=9)
    runner_id: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


def execution_to_api(
    e: Execution,
    workflow_name: str | None = None,
    version_number: int | None = None,
    *,
    runner_name: str | None = None,
    triggered_by_name: str | None = None,
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
    }
