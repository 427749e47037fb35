"""Runs one execution in a child process group: spawn, feed, watch, measure, stop, clean up.

The child is `python -m exekra.runner.worker` in a new session (its own process group). It gets the job as
one JSON line on stdin and answers with JSON-lines events on stdout (see `exekra.runner.worker`); its calls to
the hub come as events too, and are answered on its stdin (`exekra.runner.calls`);
anything it writes to stderr goes to the execution log at WARNING. One idle worker is kept spawned ahead
(the next one starts as soon as one is taken) so Python's start-up and the engine's imports stay out of
the pick-up latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import re
import secrets
import shutil
import signal
import sys
from asyncio.subprocess import PIPE, Process, SubprocessStreamProtocol
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from exekra.runner import calls
from exekra.runner.artifacts import ArtifactCollector, ArtifactFile, ArtifactSender
from exekra.runner.client import Rejected
from exekra.runner.config import RunnerConfig
from exekra.runner.logstream import LogSender, LogStream
from exekra.runner.metrics import TREE_MARKER_VARIABLE, ExecutionMetrics, ProcessTreeSampler, marked_processes
from exekra.workflow.masking import SecretMasker

WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "exekra.runner.worker")
KILL_GRACE_SECONDS = 2.0
EXIT_WAIT_SECONDS = 5.0
READER_DRAIN_SECONDS = 2.0
STREAM_LIMIT_BYTES = 64 * 1024 * 1024  # one event line; a result can carry large outputs
MAX_ERROR_CHARS = 10_000  # the hub accepts 20,000
ARTIFACT_SHIPPING_SECONDS = 300.0  # for the last files to reach the hub once the worker is done
TERMINAL_STATUSES = {"COMPLETED", "FAILED", "STOPPED"}


@dataclass(frozen=True)
class Job:
    """One attempt of one execution, with everything the worker needs."""

    execution_id: str
    attempt: int
    definition: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What the runner reports with `complete`."""

    status: str
    error: str | None = None
    outputs: dict[str, Any] | None = None
    metrics: ExecutionMetrics = field(default_factory=ExecutionMetrics)
    artifacts: tuple[ArtifactFile, ...] = ()
    lines: tuple[dict[str, str], ...] = ()  # the last log lines, not sent yet: the final report carries them


CallHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Makes one of the worker's calls to the hub (`exekra.runner.calls`): `(op, body)` → the hub's answer. Raises
`Rejected` when the hub refuses it."""


class _CallAnswerer:
    """The runner's end of the worker's calls: each is made by `handler` in a task of its own, and answered on
    the worker's stdin as soon as it returns."""

    def __init__(self, handler: CallHandler | None, stdin: asyncio.StreamWriter) -> None:
        self._handler = handler
        self._stdin = stdin
        self._tasks: set[asyncio.Task[None]] = set()

    def take(self, event: dict[str, Any]) -> None:
        task = asyncio.create_task(self._answer(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, event: dict[str, Any]) -> None:
        call_id, op, body = event.get("id"), str(event.get("op")), event.get("body")
        if self._handler is None:
            reply = calls.refusal(call_id, f"{op}: this runner makes no calls to the hub for a workflow")
        else:
            try:
                reply = calls.answer(call_id, await self._handler(op, body if isinstance(body, dict) else {}))
            except Rejected as exc:
                reply = calls.refusal(call_id, exc.message, status=exc.status, code=exc.code)
            except Exception as exc:
                reply = calls.refusal(call_id, f"{op}: {type(exc).__name__}: {exc}")
        if self._stdin.is_closing():
            return  # the worker is gone: nobody waits for the answer
        self._stdin.write(json.dumps(reply, default=str).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await self._stdin.drain()

    async def close(self) -> None:
        """Give up the calls still being made (the execution is over), and close the worker's stdin."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._stdin.close()


class ExecutionAbandoned(Exception):
    """The hub refused the attempt while it ran (e.g. 409): the tree was killed and nothing is reported."""


class _End(enum.Enum):
    RESULT = "result"
    EXITED = "exited"
    STOP = "stop"
    TIMEOUT = "timeout"
    ABANDONED = "abandoned"


class _WorkerProtocol(SubprocessStreamProtocol):
    """Signals the worker's exit as it happens: `Process.wait()` may also wait for every inherited copy
    of its pipes to close, which a detached grandchild can delay forever."""

    def __init__(self, exited: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=STREAM_LIMIT_BYTES, loop=loop)
        self._exited = exited

    def process_exited(self) -> None:
        super().process_exited()
        self._exited.set()


@dataclass(frozen=True)
class _Worker:
    process: Process
    exited: asyncio.Event
    marker: str  # value of TREE_MARKER_VARIABLE in the environment the worker passes on

    async def wait_exit(self, seconds: float) -> bool:
        """Wait up to `seconds` for the worker to exit; True if it has."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), seconds)
        return self.exited.is_set()


@dataclass
class _WorkerOutput:
    result: dict[str, Any] | None = None
    result_seen: asyncio.Event = field(default_factory=asyncio.Event)


class Executor:
    """Runs executions one at a time, each in a fresh child process group."""

    def __init__(
        self,
        config: RunnerConfig,
        *,
        worker_command: Sequence[str] = WORKER_COMMAND,
        prestart: bool = True,
        kill_grace_seconds: float = KILL_GRACE_SECONDS,
    ) -> None:
        self._config = config
        self._command = tuple(worker_command)
        self._prestart = prestart
        self._grace = kill_grace_seconds
        self._warm: asyncio.Task[_Worker] | None = None

    def prestart(self) -> None:
        """Spawn an idle worker now (if enabled and none is waiting) so the next execution starts faster."""
        if self._prestart and self._warm is None:
            self._warm = asyncio.create_task(self._spawn())

    async def aclose(self) -> None:
        """Dismiss the idle worker, if any: closing its stdin makes it exit; it is killed if it lingers."""
        warm, self._warm = self._warm, None
        if warm is None:
            return
        try:
            worker = await warm
        except OSError:
            return
        if worker.process.stdin is not None:
            worker.process.stdin.close()
        if not await worker.wait_exit(self._grace):
            _signal_tree(worker.process.pid, [], signal.SIGKILL)
            await worker.wait_exit(EXIT_WAIT_SECONDS)

    async def run(
        self,
        job: Job,
        send_logs: LogSender,
        *,
        stop: asyncio.Event,
        report_interval: float,
        send_artifact: ArtifactSender | None = None,
        lines_with_outcome: bool = False,
        hub_calls: CallHandler | None = None,
    ) -> Outcome:
        """Run the job to its end and return the outcome; setting `stop` stops it (→ STOPPED).

        The worker's calls to the hub (`workflow.run`) are made by `hub_calls` (none: each is refused).
        Files the workflow attaches go to `send_artifact` as they come (none: they are dropped with the
        execution's staging folder); the outcome lists them. With `lines_with_outcome` (the hub takes log lines
        with `complete`), the last batch of log lines is not sent but returned with the outcome. Raises `ExecutionAbandoned` when a log or
        artifact upload is refused by the hub (the tree is killed first).
        """
        mask = SecretMasker.for_credentials(job.credentials).text
        stream = LogStream(send_logs, report_interval=report_interval, on_stop=stop.set, mask=mask)
        shipping = asyncio.create_task(stream.run())
        name = _safe_name(f"{job.execution_id}-{job.attempt}")
        workdir = self._config.work_root / "executions" / name
        collector = ArtifactCollector(
            self._config.work_root / "artifacts" / name, self._config.artifact_max_bytes, send_artifact, stream
        )
        uploading = asyncio.create_task(collector.run())
        try:
            channels = _Channels(shipping, uploading)
            outcome = await self._execute(job, workdir, stream, channels, stop, collector, hub_calls)
            collector.finish()
            await asyncio.wait_for(uploading, ARTIFACT_SHIPPING_SECONDS)
            stream.finish(keep_last=lines_with_outcome)
            await shipping
        except Rejected as exc:
            raise ExecutionAbandoned(exc.message) from exc
        finally:
            for task in (uploading, shipping):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await asyncio.to_thread(shutil.rmtree, workdir, True)
            await asyncio.to_thread(shutil.rmtree, collector.directory, True)
        error = outcome.error
        if error:
            error = mask(error)
            if len(error) > MAX_ERROR_CHARS:
                error = error[:MAX_ERROR_CHARS] + " … [truncated]"
        return Outcome(
            outcome.status, error, outcome.outputs, outcome.metrics, collector.accepted, tuple(stream.take_rest())
        )

    async def _execute(
        self,
        job: Job,
        workdir: Path,
        stream: LogStream,
        channels: _Channels,
        stop: asyncio.Event,
        collector: ArtifactCollector,
        hub_calls: CallHandler | None,
    ) -> Outcome:
        if stop.is_set():
            stream.add("WARNING", "stop requested before the execution started")
            return Outcome("STOPPED")
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        try:
            worker = await self._take_worker()
        except OSError as exc:
            reason = f"could not start the worker: {exc}"
            stream.add("ERROR", reason)
            return Outcome("FAILED", reason)
        process = worker.process
        stream.add("INFO", f"runner {self._config.name} started attempt {job.attempt}")
        sampler = ProcessTreeSampler(process.pid)
        await asyncio.to_thread(sampler.sample)
        output = _WorkerOutput()
        assert process.stdout is not None and process.stderr is not None and process.stdin is not None
        answerer = _CallAnswerer(hub_calls, process.stdin)
        readers = [
            asyncio.create_task(_read_events(process.stdout, stream, output, collector, answerer)),
            asyncio.create_task(_read_stderr(process.stderr, stream)),
        ]
        sampling = asyncio.create_task(self._sample_every(sampler))
        ended_cleanly = False
        try:
            await _send_job(process, job, workdir, self._job_settings(collector))
            end = await _wait_for_end(worker, output, stop, channels, job.timeout_seconds)
            await asyncio.to_thread(sampler.sample)
            if end is _End.ABANDONED:
                channels.raise_refusal()  # `finally` kills the tree
            elif end is _End.STOP:
                stream.add("WARNING", "stop requested: stopping the process tree")
            elif end is _End.TIMEOUT:
                stream.add("ERROR", f"timed out after {job.timeout_seconds:g} s: killing the process tree")
            elif end is _End.RESULT:
                ended_cleanly = await worker.wait_exit(self._grace)
            if not worker.exited.is_set():
                await self._terminate(worker, sampler)
        finally:
            sampling.cancel()
            await answerer.close()
            # After a crash, stop or timeout, also hunt processes that detached from the tree.
            await _kill_tree(worker, sampler, None if ended_cleanly else worker.marker)
            await _drain(readers)
        return _outcome(end, output, process.returncode, sampler.metrics(), job, stream)

    def _job_settings(self, collector: ArtifactCollector) -> dict[str, Any]:
        """What the worker needs from the runner's settings (it does not see the runner's environment)."""
        return {
            "artifacts": {"dir": str(collector.directory), "limitBytes": self._config.artifact_max_bytes},
            "settings": {"chromium": self._config.chromium},
        }

    async def _take_worker(self) -> _Worker:
        """The idle worker if it is alive, else a fresh one; the next idle worker starts right away."""
        warm, self._warm = self._warm, None
        worker = None
        if warm is not None:
            with contextlib.suppress(OSError):
                worker = await warm
        if worker is None or worker.process.returncode is not None:
            worker = await self._spawn()
        self.prestart()  # it imports while this execution runs
        return worker

    async def _spawn(self) -> _Worker:
        root = self._config.work_root
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        marker = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()
        transport, protocol = await loop.subprocess_exec(
            lambda: _WorkerProtocol(exited, loop),
            *self._command,
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            cwd=root,
            env={**worker_environment(), TREE_MARKER_VARIABLE: marker},
            start_new_session=True,
        )
        return _Worker(Process(transport, protocol, loop), exited, marker)

    async def _sample_every(self, sampler: ProcessTreeSampler) -> None:
        while True:
            await asyncio.sleep(self._config.sample_interval_seconds)
            await asyncio.to_thread(sampler.sample)

    async def _terminate(self, worker: _Worker, sampler: ProcessTreeSampler) -> None:
        """SIGTERM to the group (and to descendants that left it), then wait up to the grace period."""
        members = await asyncio.to_thread(sampler.survivors)
        _signal_tree(worker.process.pid, members, signal.SIGTERM)
        await worker.wait_exit(self._grace)


def worker_environment() -> dict[str, str]:
    """The runner's environment without its `EXEKRA_*` settings (the machine secret among them):
    workflows never see them (SPEC §10)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("EXEKRA_")}


@dataclass(frozen=True)
class _Channels:
    """The uploads running beside the worker: a refusal by the hub abandons the execution."""

    logs: asyncio.Task[None]
    artifacts: asyncio.Task[None]

    def raise_refusal(self) -> None:
        for task in (self.logs, self.artifacts):
            if task.done():
                task.result()


async def _kill_tree(worker: _Worker, sampler: ProcessTreeSampler, marker: str | None) -> None:
    """SIGKILL whatever is left of the tree; always runs, also after a normal exit (stray background jobs).

    With `marker`, processes that inherited the worker's marker variable count too, even if they left
    the tree (a new session, then their parent died) before a sample saw them.
    """
    members = await asyncio.to_thread(sampler.survivors)
    if marker is not None:
        members += await asyncio.to_thread(marked_processes, marker)
    _signal_tree(worker.process.pid, members, signal.SIGKILL)
    await worker.wait_exit(EXIT_WAIT_SECONDS)


def _signal_tree(group_id: int, members: list[psutil.Process], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group_id, signum)
    for member in members:  # descendants that started their own session are not in the group
        with contextlib.suppress(psutil.Error):
            member.send_signal(signum)


async def _send_job(process: Process, job: Job, workdir: Path, settings: dict[str, Any]) -> None:
    document = {
        "definition": job.definition,
        "inputs": job.inputs,
        "execution": {"id": job.execution_id, "attempt": job.attempt},
        "credentials": job.credentials,
        "workdir": str(workdir),
        **settings,
    }
    assert process.stdin is not None
    try:
        # One line: the rest of stdin carries the answers to the worker's calls (`exekra.runner.calls`).
        process.stdin.write(json.dumps(document, default=str).encode() + b"\n")
        await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the worker is already gone; its exit status tells why


async def _wait_for_end(
    worker: _Worker,
    output: _WorkerOutput,
    stop: asyncio.Event,
    channels: _Channels,
    limit_seconds: float | None,
) -> _End:
    exited = asyncio.create_task(worker.exited.wait())
    result = asyncio.create_task(output.result_seen.wait())
    stopped = asyncio.create_task(stop.wait())
    helpers = (exited, result, stopped)
    uploads = {channels.logs, channels.artifacts}
    try:
        done, _ = await asyncio.wait(
            {*helpers, *uploads}, timeout=limit_seconds or None, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for helper in helpers:
            helper.cancel()
    if done & uploads:
        return _End.ABANDONED
    if result in done:
        return _End.RESULT
    if exited in done:
        return _End.EXITED
    return _End.STOP if stopped in done else _End.TIMEOUT


async def _read_events(
    reader: asyncio.StreamReader,
    stream: LogStream,
    output: _WorkerOutput,
    collector: ArtifactCollector,
    answerer: _CallAnswerer,
) -> None:
    async for text in _lines(reader, stream):
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            stream.add("INFO", text)
        elif event.get("type") == "result":
            output.result = event
            output.result_seen.set()
        elif event.get("type") == "artifact":
            collector.add(event)
        elif event.get("type") == calls.CALL_EVENT:
            answerer.take(event)
        else:
            stream.add(
                str(event.get("level", "INFO")),
                event.get("message", ""),
                event.get("ts"),
                node=event.get("node"),
                event=event.get("event"),
            )


async def _read_stderr(reader: asyncio.StreamReader, stream: LogStream) -> None:
    async for text in _lines(reader, stream):
        stream.add("WARNING", text)


async def _lines(reader: asyncio.StreamReader, stream: LogStream) -> AsyncIterator[str]:
    while True:
        try:
            raw = await reader.readline()
        except ValueError:
            stream.add("WARNING", f"dropped a worker output line longer than {STREAM_LIMIT_BYTES} bytes")
            continue
        if not raw:
            return
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if text.strip():
            yield text


async def _drain(readers: list[asyncio.Task[None]]) -> None:
    """Let the readers consume what the worker wrote; give up on pipes held open by escaped processes."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), READER_DRAIN_SECONDS)


def _outcome(
    end: _End, output: _WorkerOutput, returncode: int | None, metrics: ExecutionMetrics, job: Job, stream: LogStream
) -> Outcome:
    if end is _End.STOP:
        return Outcome("STOPPED", metrics=metrics)
    if end is _End.TIMEOUT:
        return Outcome("FAILED", f"timed out after {job.timeout_seconds:g} s", metrics=metrics)
    result = output.result
    if result is not None and result.get("status") in TERMINAL_STATUSES:
        status = str(result["status"])
        outputs = result.get("outputs") if status == "COMPLETED" else None
        error = result.get("error") if status == "FAILED" else None
        return Outcome(
            status,
            str(error) if error else ("workflow failed" if status == "FAILED" else None),
            outputs if isinstance(outputs, dict) else None,
            metrics,
        )
    reason = _exit_reason(returncode)
    stream.add("ERROR", reason)
    return Outcome("FAILED", reason, metrics=metrics)


def _exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "worker did not exit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"worker killed by signal {name}"
    if returncode > 0:
        return f"worker exited with code {returncode}"
    return "worker exited without reporting a result"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120] or "execution"
