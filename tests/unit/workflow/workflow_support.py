"""Helpers for the workflow tests: definitions in a line, a recording runner, an activity context."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from exekra.workflow import run_workflow
from exekra.workflow.activities import BUILTIN, Activity, ActivityContext
from exekra.workflow.errors import ActivityError


def chain(*nodes: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A definition running `nodes` one after the other (plus any other top-level fields)."""
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"nodes": list(nodes), "edges": edges, **fields}


def process_gone(pid: int, within: float = 2.0) -> bool:
    """True once the process has ended (a zombie left for an absent reaper counts as ended).

    A SIGKILL takes effect asynchronously, so this polls for up to `within` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


class WorkflowRun:
    """Runs workflows in a workdir and records every emitted log line."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lines: list[tuple[str, str]] = []
        self.marks: list[tuple[str | None, str | None, str]] = []  # (node, event, message) of every line
        self.on_emit: Callable[[str, str], None] = lambda level, message: None

    def emit(self, level: str, message: str, *, node: str | None = None, event: str | None = None) -> None:
        self.lines.append((level, message))
        self.marks.append((node, event, message))
        self.on_emit(level, message)

    @property
    def events(self) -> list[tuple[str, str]]:
        """(node, event) of the lines that mark a node's start or end, in order."""
        return [(node, event) for node, event, _ in self.marks if node is not None and event is not None]

    @property
    def messages(self) -> list[str]:
        return [message for _, message in self.lines]

    def __call__(
        self,
        definition: dict[str, Any],
        inputs: dict[str, Any] | None = None,
        *,
        credentials: dict[str, dict[str, str]] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        activities: Mapping[str, Activity] | None = None,
    ) -> dict[str, Any]:
        return run_workflow(
            definition,
            inputs or {},
            execution={"id": "exec-1", "attempt": 2},
            credentials=credentials or {},
            workdir=self.workdir,
            emit=self.emit,
            should_stop=should_stop,
            activities=activities,
        )


class Probe:
    """A test activity, `probe`, that records how many calls run at once.

    Params: `meet` (wait until that many probes have run at the same time, now or earlier), `hold` (then wait that many seconds,
    or until cancelled: a call cancelled while waiting ends as "interrupted"), `fail` (then fail with that
    message unless empty), `value` (returned as `value`). Every wait ends when the call is cancelled.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.running = 0
        self.peak = 0
        self.started: list[str] = []

    @property
    def activities(self) -> dict[str, Activity]:
        return {**BUILTIN, "probe": self.call}

    def call(self, ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._changed:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.started.append(ctx.node_id)
            self._changed.notify_all()
        try:
            self._meet(ctx, params.get("meet", 0))
            if ctx.wait(params.get("hold", 0)):
                raise ActivityError("interrupted")
            if params.get("fail"):
                raise ActivityError(params["fail"])
            return {"value": params.get("value")}
        finally:
            with self._changed:
                self.running -= 1
                self._changed.notify_all()

    def _meet(self, ctx: ActivityContext, count: int) -> None:
        deadline = time.monotonic() + 10
        with self._changed:
            while self.peak < count:
                if ctx.should_stop() or time.monotonic() > deadline:
                    raise ActivityError("interrupted")
                self._changed.wait(0.02)  # a cancellation sets an event, not this condition


class ActivityCall:
    """An `ActivityContext` in a temporary workdir that records emitted lines."""

    def __init__(self, workdir: Path) -> None:
        self.lines: list[tuple[str, str]] = []
        self.on_emit: Callable[[str, str], None] = lambda level, message: None
        self.ctx = ActivityContext(node_id="step", workdir=workdir, emit=self._emit)

    def _emit(self, level: str, message: str) -> None:
        self.lines.append((level, message))
        self.on_emit(level, message)
