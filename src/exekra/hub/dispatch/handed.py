"""What a runner's poll is handed: an execution it holds, as the poll answers it (SPEC §7.3).

One shape, built from one set of columns, for every way a poll learns of its execution: the claim that assigned it
returns them (`lifecycle`'s claim statements), a full poll's read of the runner's row returns them for the execution
the runner holds (`exekra.hub.runners.liveness`), and a poll woken for it reads them
(`exekra.hub.executions.queries.held_execution`). The two reads take them from `HELD_FROM` with `held_columns`.
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


# The poll answer's columns, by name, as read from `HELD_FROM`.
_HELD = {
    "id": "e.id",
    "attempt": "e.attempt",
    "status": "e.status",
    "inputs": "e.inputs",
    "timeout_seconds": "e.timeout_seconds",
    "workflow_id": "w.id",
    "workflow_name": "w.name",
    "version_id": "v.id",
    "version_number": "v.number",
    "definition": "v.definition",
}
HELD_FROM = """executions e
  JOIN workflows w ON w.id = e.workflow_id
  JOIN workflow_versions v ON v.id = e.version_id"""


def held_columns(prefix: str = "") -> str:
    """SQL: the select list of a poll's answer from `HELD_FROM` (execution `e`), each column named `prefix` + its
    name, for `poll_answer(row, prefix)`."""
    return ", ".join(f"{column} AS {prefix}{name}" for name, column in _HELD.items())


def poll_answer(row: Row[Any], prefix: str = "") -> dict[str, Any]:
    """The poll's answer from a row with the columns id, attempt, status, inputs, timeout_seconds, workflow_id,
    workflow_name, version_id, version_number and definition, each named with `prefix`."""
    id_, attempt, status, inputs, timeout, workflow_id, workflow_name, version_id, number, definition = (
        getattr(row, prefix + name) for name in _HELD
    )
    return {
        "id": str(id_),
        "attempt": attempt,
        "status": status,
        "inputs": inputs,
        "timeoutSeconds": timeout,
        "workflow": {"id": str(workflow_id), "name": workflow_name},
        "version": {"id": str(version_id), "number": number, "definition": definition},
    }
