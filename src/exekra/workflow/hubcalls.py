"""What an activity may ask of the hub while its execution runs, through the runner that runs it.

The worker process that runs a workflow holds no hub credentials: it asks its runner (`exekra.runner.calls`), and
the runner makes the call with its own token, fenced by the execution's attempt (SPEC §7.3), retrying through
hub outages. `ExecutionScope.hub` is None where no runner is behind the engine (a test, a script).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from exekra.workflow.errors import ActivityError

START_CHILD = "children.start"
"""`{key, workflow, inputs, version?}` → the child execution as the hub answers it (`POST …/children`)."""
WAIT_FOR_CHILD = "children.wait"
"""`{id, wait}` → the child once it has ended, or as it is after `wait` seconds (`GET …/children/{id}?wait=`)."""
STOP_CHILD = "children.stop"
"""`{id}` → the child, asked to stop (`POST …/children/{id}/stop`)."""


class HubCallFailed(ActivityError):
    """The hub refused the call (`status`, `code` of its error) or it could not be made."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class CallInterrupted(ActivityError):
    """The activity was told to stop while it waited for the answer."""


class HubCalls(Protocol):
    """The runner's side of the execution, as activities see it."""

    def call(
        self,
        op: str,
        body: dict[str, Any],
        *,
        cancelled: threading.Event | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Make one call and return the hub's answer; `CallInterrupted` once `cancelled` is set, `HubCallFailed`
        when refused, or when `timeout` seconds pass without an answer."""
        ...
