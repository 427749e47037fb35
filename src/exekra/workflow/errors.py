"""The errors raised by `exekra.workflow`: one small hierarchy under `WorkflowError`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem of a definition, with where it is: the node id, the 1-based edge index, the parameter path.

    A problem inside a `control.foreach` sub-node names the top-level node that holds it, and its `param`
    starts with `nodes[i]` (0-based, as in the JSON).
    """

    message: str
    node: str | None = None
    edge: int | None = None
    param: str | None = None

    def to_api(self) -> dict[str, Any]:
        """`{message, node?, edge?, param?}`: the location keys only when known."""
        shape: dict[str, Any] = {"message": self.message}
        if self.node is not None:
            shape["node"] = self.node
        if self.edge is not None:
            shape["edge"] = self.edge
        if self.param is not None:
            shape["param"] = self.param
        return shape


class WorkflowError(Exception):
    """Base class of every error this package raises."""


class DefinitionError(WorkflowError):
    """A definition or a set of inputs is invalid.

    `problems` lists every problem's message; `located` the same problems with where each one is.
    """

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.located = [p if isinstance(p, Problem) else Problem(p) for p in problems]
        self.problems = [p.message for p in self.located]
        super().__init__("; ".join(self.problems))


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
