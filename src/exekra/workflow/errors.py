"""The errors raised by `exekra.workflow`: one small hierarchy under `WorkflowError`."""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    """Base class of every error this package raises."""


class DefinitionError(WorkflowError):
    """A definition or a set of inputs is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ExpressionError(WorkflowError):
    """A template could not be evaluated; the message names where it is and the expression."""


class ActivityError(WorkflowError):
    """An activity failed; `outputs` holds what it produced before failing (e.g. `exitCode`)."""

    def __init__(self, message: str, outputs: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.outputs: dict[str, Any] = outputs or {}


class WorkflowFailed(WorkflowError):
    """The workflow failed; the message names the failing node (`node_id`) when there is one."""

    def __init__(self, message: str, node_id: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id


class WorkflowStopped(WorkflowError):
    """The workflow was stopped on request; whatever was running has been killed."""
