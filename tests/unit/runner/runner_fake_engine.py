"""A stand-in workflow engine for runner tests, served through the real worker (`exekra.runner.worker`).

Run as a script it is the worker command. A definition is `{"steps": [{kind: value}, ...]}`:

    log: message            emit an INFO line          print: text      write to stdout (stray output)
    mark: node/event        emit a node's event line ("fetch/started")
    sleep: seconds          sleep, honouring stop      busy: seconds    burn CPU
    spawn: session|group    start `sleep 60` (own session or our group) and log "child pid N"
    pid: _                  log "worker pid N"         ignore_sigterm: _  ignore SIGTERM from now on
    exit: code              os._exit(code)             signal: NAME     kill ourselves with a signal
    fail: message           raise WorkflowFailed    attach: name     write a file `name` and attach it

The outputs are `{"echo": inputs, "attempt": execution attempt}`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_scope: Any = None


def execution_scope(**settings: Any) -> dict[str, Any]:
    """The settings as they are: the real scope is made (importing the workflow package) only to attach."""
    return settings


class WorkflowFailed(Exception):
    """The workflow failed."""


class WorkflowStopped(Exception):
    """The workflow was stopped."""


def run_workflow(
    definition: dict[str, Any],
    inputs: dict[str, Any],
    *,
    execution: dict[str, Any],
    credentials: dict[str, dict[str, str]],
    workdir: Path,
    emit: Callable[..., None],
    should_stop: Callable[[], bool] = lambda: False,
    scope: Any = None,
) -> dict[str, Any]:
    """Interpret the test steps."""
    for step in definition["steps"]:
        ((kind, value),) = step.items()
        if kind == "log":
            emit("INFO", str(value))
        elif kind == "mark":
            node, event = str(value).split("/")
            emit("INFO", f"node {node} {event}", node=node, event=event)
        elif kind == "print":
            print(value, flush=True)
        elif kind == "sleep":
            deadline = time.monotonic() + float(value)
            while time.monotonic() < deadline:
                if should_stop():
                    raise WorkflowStopped()
                time.sleep(0.02)
        elif kind == "busy":
            deadline = time.monotonic() + float(value)
            while time.monotonic() < deadline:
                pass
        elif kind == "spawn":
            child = subprocess.Popen(["sleep", "60"], start_new_session=value == "session")
            emit("INFO", f"child pid {child.pid}")
        elif kind == "pid":
            emit("INFO", f"worker pid {os.getpid()}")
        elif kind == "ignore_sigterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif kind == "exit":
            os._exit(int(value))
        elif kind == "signal":
            os.kill(os.getpid(), getattr(signal, value))
        elif kind == "fail":
            raise WorkflowFailed(str(value))
        elif kind == "attach":
            global _scope
            if _scope is None:
                from exekra.workflow.engine import execution_scope as real_scope

                _scope = real_scope(**scope)
            path = workdir / str(value)
            path.write_text(f"contents of {value}")
            _scope.artifacts.attach("fake", path)
    return {"echo": inputs, "attempt": execution["attempt"]}


if __name__ == "__main__":
    from exekra.runner import worker

    worker.serve(sys.modules[__name__])  # type: ignore[arg-type]
