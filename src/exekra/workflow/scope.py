"""What lives as long as one execution: resources shared by its nodes, its attachments, runner settings.

A resource is something a node opens and later nodes use through a handle, such as a browser session
(`browser-1`). The engine closes every resource still open when the run ends, whatever the outcome
(completed, failed, stopped, timed out), so nothing outlives its execution.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from exekra.workflow.artifacts import Artifacts
from exekra.workflow.errors import ActivityError
from exekra.workflow.hubcalls import HubCalls

T = TypeVar("T")
Emit = Callable[[str, str], None]


@dataclass(frozen=True)
class ActivitySettings:
    """Settings of the machine that runs activities (the runner's, handed to its worker)."""

    chromium: str | None = None
    """The Chromium executable for `browser.*`; None finds it (EXEKRA_CHROMIUM, then the usual places)."""


@dataclass
class _Resource:
    kind: str
    value: Any
    close: Callable[[], None]


@dataclass
class ExecutionScope:
    """Resources, attachments and settings of one execution; `close()` releases every resource."""

    artifacts: Artifacts = field(default_factory=Artifacts)
    settings: ActivitySettings = field(default_factory=ActivitySettings)
    hub: HubCalls | None = None
    """The runner's calls to the hub for this execution (`workflow.run`); None without a runner behind."""
    _resources: dict[str, _Resource] = field(default_factory=dict, init=False)
    _cached: dict[str, str] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _creating: threading.Lock = field(default_factory=threading.Lock, init=False)
    """Held while a cached resource is made (creation is quick: an engine connects on first use)."""
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1), init=False)
    _calls: dict[str, int] = field(default_factory=dict, init=False)

    def call_key(self, node_id: str) -> str:
        """A key for one call of node `node_id` to the hub, unique in the execution: `<node>:<n>`, n counting that
        node's calls from 1 (each retry, each item of a loop, is a call of its own)."""
        with self._lock:
            number = self._calls[node_id] = self._calls.get(node_id, 0) + 1
        return f"{node_id}:{number}"

    def open(self, kind: str, value: Any, close: Callable[[], None]) -> str:
        """Keep a resource until `release` or the end of the run; returns its handle (`kind-N`)."""
        with self._lock:
            handle = f"{kind}-{next(self._numbers)}"
            self._resources[handle] = _Resource(kind, value, close)
        return handle

    def get(self, handle: object, kind: str, cls: type[T]) -> T:
        """The open resource behind `handle`; an `ActivityError` names a wrong or closed handle."""
        with self._lock:
            resource = self._resources.get(handle) if isinstance(handle, str) else None
        if resource is None or resource.kind != kind or not isinstance(resource.value, cls):
            raise ActivityError(f"no open {kind} session {handle!r} in this execution")
        return resource.value

    def cached(self, key: str, kind: str, create: Callable[[], tuple[T, Callable[[], None]]], cls: type[T]) -> T:
        """One resource per `key` for the whole run (e.g. a database engine per URL), made on first use; nodes
        running at the same time that ask for the same key get the same one."""
        with self._creating:
            with self._lock:
                handle = self._cached.get(key)
            if handle is None:
                value, close = create()
                handle = self.open(kind, value, close)
                with self._lock:
                    self._cached[key] = handle
        return self.get(handle, kind, cls)

    def release(self, handle: object, kind: str) -> None:
        """Close one resource now; an `ActivityError` if the handle is not an open one of this kind."""
        with self._lock:
            resource = self._resources.get(handle) if isinstance(handle, str) else None
            if resource is None or resource.kind != kind:
                raise ActivityError(f"no open {kind} session {handle!r} in this execution")
            del self._resources[handle]  # type: ignore[arg-type]
        resource.close()

    def close(self, emit: Emit) -> None:
        """Close every resource still open, newest first; a failure is logged and the rest still close."""
        with self._lock:
            resources = list(self._resources.items())
            self._resources.clear()
            self._cached.clear()
        for handle, resource in reversed(resources):
            try:
                resource.close()
            except Exception as exc:
                emit("WARNING", f"closing {handle} failed: {type(exc).__name__}: {exc}")
