"""The execution child process: `python -m exekra.runner.worker`.

It imports the workflow engine first (so a pre-started worker has paid Python's start-up cost), then
reads one job as a JSON document on the first line of stdin, runs it, and writes JSON-lines events on the
original stdout:

    {"type": "log", "ts": "...", "level": "INFO", "message": "...", "node": "fetch", "event": "started"}
    {"type": "artifact", "ts": "...", "name": "shot.png", "path": "<staging>/shot.png",
     "contentType": "image/png", "bytes": 1234, "node": "shot"}
    {"type": "result", "status": "COMPLETED" | "FAILED" | "STOPPED", "outputs": {...}, "error": "..."}

File descriptor 1 is pointed at stderr before the workflow runs, so stray prints of activities (or of
programs they start) can never corrupt the event stream. An activity that needs the hub (`workflow.run`) writes a
`call` event, and the runner answers on the rest of stdin (`exekra.runner.calls`); file descriptor 0 is pointed
at /dev/null, so that nothing the workflow runs can read those answers. SIGTERM asks the workflow to stop.

The worker dies with its runner: when the runner's end of the event channel closes (the runner was
killed, even with SIGKILL), the workflow is stopped (browser sessions close), and after
`ORPHAN_GRACE_SECONDS` whatever is left of the process tree (found by its marker variable, like the
runner does) is killed, this worker included.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, NoReturn, Protocol

from exekra.runner.calls import RunnerCalls
from exekra.runner.logstream import utc_now
from exekra.runner.metrics import TREE_MARKER_VARIABLE, marked_processes

if TYPE_CHECKING:
    from exekra.workflow.hubcalls import HubCalls

ORPHAN_GRACE_SECONDS = 5.0


class Engine(Protocol):
    """What the worker needs from `exekra.workflow.engine` (tests pass a stand-in module)."""

    WorkflowFailed: type[Exception]
    WorkflowStopped: type[Exception]

    def execution_scope(
        self,
        *,
        artifacts_dir: Path | None,
        artifact_limit_bytes: int | None,
        report_artifact: Callable[[dict[str, Any]], None],
        chromium: str | None,
        hub: HubCalls | None,
    ) -> Any:
        """Make the execution's scope; see `exekra.workflow.engine.execution_scope`."""
        ...

    def run_workflow(self, definition: dict[str, Any], inputs: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Run a workflow; see `exekra.workflow.engine.run_workflow`."""
        ...


class EventWriter:
    """Writes one JSON event per line to the event channel; safe to call from any thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any]) -> None:
        """Write and flush one event."""
        line = json.dumps(event, default=str, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def log(self, level: str, message: str, *, node: str | None = None, event: str | None = None) -> None:
        """A log event stamped with the current UTC time; `node` and `event` only when the engine gave them."""
        line = {"type": "log", "ts": utc_now(), "level": level.upper(), "message": str(message)}
        if node is not None:
            line["node"] = node
        if event is not None:
            line["event"] = event
        self.write(line)


def _take_event_channel() -> IO[str]:
    """Keep the real stdout for events only; everything else that writes to fd 1 goes to stderr."""
    events_fd = os.dup(1)  # not inheritable: programs started by activities never get it
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(events_fd, "w", encoding="utf-8", buffering=1)


def _take_reply_channel() -> IO[bytes]:
    """Keep stdin for the job and the runner's answers only; everything else that reads fd 0 reads /dev/null."""
    replies_fd = os.dup(0)  # not inheritable
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return os.fdopen(replies_fd, "rb")


def run_job(
    job: dict[str, Any], engine: Engine, events: EventWriter, stop: threading.Event, hub: HubCalls | None = None
) -> dict[str, Any]:
    """Run one job through the engine, its activities reaching the hub through `hub`; the result event (never
    raises)."""
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    try:
        outputs = engine.run_workflow(
            job["definition"],
            job.get("inputs") or {},
            execution=job["execution"],
            credentials=job.get("credentials") or {},
            workdir=workdir,
            emit=events.log,
            should_stop=stop.is_set,
            scope=_scope(engine, job, events, hub),
        )
    except engine.WorkflowStopped:
        return {"type": "result", "status": "STOPPED", "outputs": None, "error": None}
    except engine.WorkflowFailed as exc:
        return {"type": "result", "status": "FAILED", "outputs": None, "error": str(exc)}
    except Exception as exc:
        events.log("ERROR", traceback.format_exc().rstrip())
        return {"type": "result", "status": "FAILED", "outputs": None, "error": f"{type(exc).__name__}: {exc}"}
    for name, path in vanishing_outputs(outputs, workdir):
        events.log(
            "WARNING",
            f"output '{name}' is {path}, inside the execution's work directory, which is deleted when the "
            "execution ends: attach it with file.attach, or write it outside the work directory, to keep it",
        )
    return {"type": "result", "status": "COMPLETED", "outputs": outputs, "error": None}


def vanishing_outputs(outputs: object, workdir: Path) -> list[tuple[str, str]]:
    """(output name, value) of outputs naming an existing file or folder inside the work directory: an
    absolute path, or a relative one with a `/` or a `.` in it (a plain word is not taken for a path)."""
    from exekra.workflow.validation import walk_strings  # the engine has loaded it: no start-up cost here

    root = workdir.resolve()
    found = []
    for text, where in walk_strings(outputs if isinstance(outputs, dict) else {}, ""):
        if not text or len(text) > 4096 or "\n" in text or not (os.path.isabs(text) or "/" in text or "." in text):
            continue
        try:
            resolved = (workdir / text).resolve()  # an absolute `text` replaces workdir
            inside = resolved != root and resolved.is_relative_to(root) and resolved.exists()
        except (OSError, ValueError):
            continue
        if inside:
            found.append((where.lstrip("."), text))
    return found


def _scope(engine: Engine, job: dict[str, Any], events: EventWriter, hub: HubCalls | None) -> Any:
    """The execution's scope: attachments staged where the runner said and reported as events; calls to the hub
    through the runner."""
    artifacts = job.get("artifacts") or {}
    settings = job.get("settings") or {}
    directory = artifacts.get("dir")
    return engine.execution_scope(
        artifacts_dir=Path(directory) if directory else None,
        artifact_limit_bytes=artifacts.get("limitBytes"),
        report_artifact=lambda event: events.write({**event, "ts": utc_now()}),
        chromium=settings.get("chromium"),
        hub=hub,
    )


class RunnerWatch:
    """Notices the runner's death: its end of the event channel closes (see the module doc)."""

    def __init__(self, events_fd: int, stop: threading.Event) -> None:
        self.orphaned = threading.Event()
        self.finished = threading.Event()
        self._events_fd = events_fd
        self._stop = stop
        threading.Thread(target=self._watch, name="exekra-runner-watch", daemon=True).start()

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(self._events_fd, 0)  # no events asked: only POLLERR/POLLHUP (reader gone) wake us
        while not poller.poll():
            pass
        self.orphaned.set()
        self._stop.set()
        self.finished.wait(ORPHAN_GRACE_SECONDS)
        kill_own_tree()


def kill_own_tree() -> NoReturn:
    """Kill every process carrying this worker's marker, then the worker's group and the worker."""
    marker = os.environ.get(TREE_MARKER_VARIABLE)
    for process in marked_processes(marker) if marker else []:
        if process.pid != os.getpid():
            with contextlib.suppress(Exception):
                process.kill()
    if os.getpgrp() == os.getpid():  # the runner made us a group leader: the group is ours alone
        with contextlib.suppress(OSError):
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def main(engine: Engine | None = None) -> int:
    """Worker entry point: load the engine, read the job from stdin, run it, report, exit 0."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    channel = _take_event_channel()
    replies = _take_reply_channel()
    events = EventWriter(channel)
    watch = RunnerWatch(channel.fileno(), stop)
    load_error = None
    if engine is None:
        try:
            engine = importlib.import_module("exekra.workflow.engine")
        except Exception as exc:
            load_error = f"workflow engine unavailable: {type(exc).__name__}: {exc}"
    raw = replies.readline()
    if not raw.strip():
        return 0  # a pre-started worker that was never used: the runner closed our stdin
    result = _result(raw, engine, load_error, events, stop, RunnerCalls(events.write, replies))
    watch.finished.set()
    if watch.orphaned.is_set():
        kill_own_tree()
    try:
        events.write(result)
    except ValueError as exc:  # e.g. outputs that refer to themselves
        error = f"the outputs cannot be encoded as JSON: {exc}"
        events.write({"type": "result", "status": "FAILED", "outputs": None, "error": error})
    except OSError:  # the runner is gone: nobody will clean up after us
        kill_own_tree()
    return 0


def _result(
    raw: bytes,
    engine: Engine | None,
    load_error: str | None,
    events: EventWriter,
    stop: threading.Event,
    hub: HubCalls,
) -> dict[str, Any]:
    try:
        job = json.loads(raw)
    except ValueError as exc:
        return {"type": "result", "status": "FAILED", "outputs": None, "error": f"bad job: {exc}"}
    if stop.is_set():
        return {"type": "result", "status": "STOPPED", "outputs": None, "error": None}
    if engine is None:
        return {"type": "result", "status": "FAILED", "outputs": None, "error": load_error}
    return run_job(job, engine, events, stop, hub)


def serve(engine: Engine | None = None) -> NoReturn:
    """Run `main` and leave at once: threads a workflow left behind must not keep the worker alive."""
    code = main(engine)
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    serve()
