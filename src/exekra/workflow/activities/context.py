"""What an activity receives besides its params, and helpers to read params."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

from exekra.workflow.artifacts import Attachment
from exekra.workflow.errors import ActivityError
from exekra.workflow.scope import ExecutionScope

P = ParamSpec("P")
R = TypeVar("R")

Emit = Callable[[str, str], None]
"""`emit(level, message)`: level is DEBUG, INFO, WARNING or ERROR."""

NodeEvent = Literal["started", "completed", "failed", "skipped", "stopped"]
"""What a node's structured log line says happened to it (`LineSink`'s `event`)."""


class LineSink(Protocol):
    """Where the engine sends log lines: `node` is the top-level node the line belongs to (lines of a
    `control.foreach` body belong to the foreach), `event` a `NodeEvent` on the line that marks
    a node's start or end."""

    def __call__(self, level: str, message: str, *, node: str | None = None, event: NodeEvent | None = None) -> None:
        """Take one line."""


class RunNodes(Protocol):
    """`run_nodes(nodes, names, should_stop)`: run raw sub-nodes in order with extra template names; returns
    id -> outputs. They stop when the calling activity must (`ActivityContext.should_stop`), and also
    once `should_stop()` is true when it is given. Safe to call from several threads at once (a parallel `control.foreach`)."""

    def __call__(
        self, nodes: list[Any], names: dict[str, Any], should_stop: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        """Run one pass."""


@dataclass
class ActivityContext:
    """The world of one activity call.

    `cancelled` is set by the engine when the node times out or the workflow is stopped; long-running
    activities watch it (`should_stop()`, `wait()`) and return or raise promptly, killing what they run.
    `scope` is shared by every node of the execution: resources (browser sessions), attachments, settings.
    """

    node_id: str
    workdir: Path
    emit: Emit
    timeout: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    vars: dict[str, Any] = field(default_factory=dict)
    run_nodes: RunNodes | None = None
    scope: ExecutionScope = field(default_factory=ExecutionScope)

    def should_stop(self) -> bool:
        """True once the activity must stop (node timeout or workflow stop)."""
        return self.cancelled.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the activity must stop (returns as soon as it must)."""
        return self.cancelled.wait(seconds)

    def path(self, value: str) -> Path:
        """A path param: absolute as given, relative ones under the workdir."""
        path = Path(value)
        return path if path.is_absolute() else self.workdir / path

    def attach(self, path: str | Path, name: str | None = None, content_type: str | None = None) -> Attachment:
        """Attach a file to the execution (kept with it on the hub); relative paths are under the workdir.

        `name` defaults to the file's name, `content_type` to a guess from the name. Raises
        `ActivityError` when the file is missing or the execution's artifact size limit would be passed.
        """
        attachment = self.scope.artifacts.attach(self.node_id, self.path(str(path)), name, content_type)
        self.emit("INFO", f"node {self.node_id}: attached {attachment.name} ({attachment.size} bytes)")
        return attachment


Activity = Callable[[ActivityContext, dict[str, Any]], dict[str, Any]]
"""An activity: `(ctx, params) -> outputs`, raising `ActivityError` on failure."""


def os_errors(run: Callable[P, R]) -> Callable[P, R]:
    """Decorator: an `OSError` (missing file, no permission...) becomes the node's failure message."""

    @functools.wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return run(*args, **kwargs)
        except OSError as exc:
            raise ActivityError(str(exc)) from None

    return wrapper


_MISSING: Any = object()
_KIND_PHRASES: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "a list",
    dict: "an object",
}


def param(params: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """Read one param, checking its type; a missing or null param takes `default` or is an error.

    `float` accepts integers; `int` and `float` never accept booleans.
    """
    value = params.get(name)
    if value is None:
        if default is _MISSING:
            raise ActivityError(f"param '{name}' is required")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not any(_is_kind(value, accepted) for accepted in kinds):
        phrases = " or ".join(_KIND_PHRASES[accepted] for accepted in kinds)
        raise ActivityError(f"param '{name}' must be {phrases}")
    return value


def _is_kind(value: object, kind: type) -> bool:
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)
