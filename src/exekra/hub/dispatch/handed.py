"""What a runner's poll is handed: an execution it holds, as the poll answers it (SPEC §7.3).

One shape, built from one set of columns, for both ways a poll learns of its execution: the claim that assigned it
returns them (`lifecycle`'s claim statements), and a poll that was not handed its execution reads them
(`exekra.hub.executions.queries.held_execution`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row


@dataclass(frozen=True, slots=True)
class Handed:
    """An execution just assigned to a runner, as its poll answers it, read by the claim that assigned it."""

    epoch: int  # the runner's token epoch when it was assigned
    answer: dict[str, Any]


def answer_for(handed: Handed | None, epoch: int) -> dict[str, Any] | None:
    """The answer for a poll under token `epoch` of what was handed over, if anything was; None under another token
    (the runner's secret was regenerated since, or the token predates the assignment's epoch): that poll reads what
    it holds."""
    return handed.answer if handed is not None and epoch == handed.epoch else None


def poll_answer(row: Row[Any]) -> dict[str, Any]:
    """The poll's answer from a row with the columns id, attempt, status, inputs, timeout_seconds, workflow_id,
    workflow_name, version_id, version_number and definition."""
    return {
        "id": str(row.id),
        "attempt": row.attempt,
        "status": row.status,
        "inputs": row.inputs,
        "timeoutSeconds": row.timeout_seconds,
        "workflow": {"id": str(row.workflow_id), "name": row.workflow_name},
        "version": {"id": str(row.version_id), "number": row.version_number, "definition": row.definition},
    }
