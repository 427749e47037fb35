"""Running a subprocess for an activity: own process group, live output, kill on stop or timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from exekra.workflow.activities.context import ActivityContext, Emit
from exekra.workflow.activities.spec import Params
from exekra.workflow.errors import ActivityError

CAPTURE_LIMIT_CHARS = 1_000_000
"""`stdout`/`stderr` outputs keep at most this many characters: the end of the stream, where errors are."""
_POLL_SECONDS = 0.05
# How long output may keep flowing after the group is killed (a descendant that left the group).
_DRAIN_SECONDS = 5.0


class ProcessOutputs(Params):
    """The outputs of an activity that runs a process."""

    exit_code: int
    """The process's exit code; non-zero fails the node."""
    stdout: str
    """Its standard output (the last 1,000,000 characters)."""
    stderr: str
    """Its standard error (the last 1,000,000 characters)."""


class _Capture:
    """The tail of a stream, bounded by `CAPTURE_LIMIT_CHARS`."""

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._size = 0

    def add(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        while self._size > CAPTURE_LIMIT_CHARS and len(self._lines) > 1:
            self._size -= len(self._lines.popleft())

    def text(self) -> str:
        return "".join(self._lines)[-CAPTURE_LIMIT_CHARS:]


def run_process(
    ctx: ActivityContext,
    command: str | Sequence[str],
    *,
    shell: bool,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run a command to its end and return `(exitCode, stdout, stderr)`.

    stdout lines are emitted at INFO and stderr lines at WARNING as they arrive. The command runs in
    its own process group; the whole group is killed when the context is cancelled (then
    `ActivityError` is raised) and when the command ends, so background leftovers die with it.
    """
    try:
        process = subprocess.Popen(
            command,
            shell=shell,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise ActivityError(f"cannot start {command!r}: {exc}") from None
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = _Capture(), _Capture()
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, stdout, ctx.emit, "INFO"), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, stderr, ctx.emit, "WARNING"), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        _wait_for_exit(process, ctx)
    finally:
        _kill_group(process)
        exit_code = process.wait()
        for reader in readers:
            reader.join(_DRAIN_SECONDS)
    return exit_code, stdout.text(), stderr.text()


def completed(exit_code: int, stdout: str, stderr: str, **extra: Any) -> dict[str, Any]:
    """The outputs of a finished process; a non-zero exit code fails the node (outputs kept)."""
    outputs = {"exitCode": exit_code, "stdout": stdout, "stderr": stderr, **extra}
    if exit_code != 0:
        raise ActivityError(f"exit code {exit_code}", outputs)
    return outputs


def _wait_for_exit(process: subprocess.Popen[str], ctx: ActivityContext) -> None:
    """Wait until the process exits, without reaping it: its pid, the group id, cannot be reused yet."""
    delay = 0.001
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if ctx.wait(delay):
            raise ActivityError("interrupted: process killed")
        delay = min(delay * 2, _POLL_SECONDS)


def _pump(stream: IO[str], capture: _Capture, emit: Emit, level: str) -> None:
    with stream:
        for line in stream:
            capture.add(line)
            emit(level, line.rstrip("\r\n"))


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)
