"""The workflow engine: runs one definition synchronously inside the runner's worker process.

Parallelism comes from the graph. The start node runs first; when a node ends, each edge leaving it is taken
(the node ran and the edge has no `when`, or its `when` equals the node's `result`, "true"/"false" for
booleans) or not. A node runs once every edge into it is resolved and at least one was taken, so a node with
several outgoing edges starts all its successors and one with several incoming edges waits for all of them
(an implicit join); a node no taken edge leads to is skipped, and so are its successors. A `control.join`
with `mode: "any"` starts as soon as one edge into it is taken; the branches that only lead into it are then
stopped (running nodes) or skipped (the others). The bookkeeping is `schedule.Schedule`.

Each running top-level node has a thread of its own, at most the definition's `maxParallel` (default 4) at a
time; ready nodes start in topological order (ties by position in the definition), so `maxParallel: 1` runs
them one at a time, in the order the engine always did (a skipped node's line now comes as soon as the skip is
decided, not when its turn comes). This thread (the caller's) starts nodes, receives their
ends and is the only writer of `nodes`: a node sees, as `nodes.<id>`, the outputs of the nodes that had
ended when it started (all its predecessors). `vars` is shared and locked; templates read a copy.

A node that fails (without `continueOnError`) fails the run: no node starts any more, the running ones are
cancelled (they end `stopped`), and the first failure is raised once they have ended. A stop request ends
every running node the same way. The worker process holds every thread, so the runner's CPU and memory
metrics of the execution (sampled on the worker's process tree) cover every branch.

Every log line names the top-level node it belongs to, and a node's start and end (completed, failed,
skipped, stopped) are marked with a structured `event`: the hub draws the execution's graph from them.
Lines of concurrent nodes interleave; `emit` is called one line at a time.

Every activity call runs in a worker thread watched by its node's thread: on the node's timeout, a stop
request or a cancellation it sets the call's `cancelled` event (subprocess activities then kill their
process group) and waits up to `CANCEL_GRACE_SECONDS` for the call to end.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exekra.workflow.activities import Activity, ActivityContext, load_activities
from exekra.workflow.activities.context import Emit, LineSink, NodeEvent
from exekra.workflow.artifacts import Artifacts
from exekra.workflow.definition import NodeDefinition, WorkflowDefinition, resolve_inputs, validate_definition
from exekra.workflow.errors import (
    ActivityError,
    DefinitionError,
    ExpressionError,
    WorkflowError,
    WorkflowFailed,
    WorkflowStopped,
)
from exekra.workflow.expressions import render
from exekra.workflow.hubcalls import HubCalls
from exekra.workflow.masking import SecretMasker
from exekra.workflow.schedule import Decisions, Schedule
from exekra.workflow.scope import ActivitySettings, ExecutionScope
from exekra.workflow.validation import FOREACH_ACTIVITY

CANCEL_GRACE_SECONDS = 5.0
"""How long a timed-out or stopped activity gets to wind down before the engine moves on without it."""
_POLL_SECONDS = 0.05

StopCheck = Callable[[], bool]


def run_workflow(
    definition: dict[str, Any],
    inputs: dict[str, Any],
    *,
    execution: dict[str, Any],
    credentials: dict[str, dict[str, str]],
    workdir: Path,
    emit: LineSink,
    should_stop: StopCheck = lambda: False,
    activities: Mapping[str, Activity] | None = None,
    scope: ExecutionScope | None = None,
) -> dict[str, Any]:
    """Run a workflow to its end and return its rendered `outputs`.

    `execution` is `{id, attempt}` as templates see it; `credentials` maps each credential the
    definition references to its fields. `emit(level, message, node=, event=)` receives node start/end
    lines and everything activities log, with every credential value replaced by `***` (the error
    message and the outputs are masked too); it may be called from several threads, one call at a time.
    `should_stop` is called from several threads too (every running node watches it).
    `activities` defaults to `load_activities()`. `scope` (default: a fresh one) carries the artifact
    store and the runner's settings; every resource still open in it (a browser session) is closed
    when the run ends, whatever the outcome.

    Raises `WorkflowFailed` (its message names the failing node) or `WorkflowStopped` once
    `should_stop()` turned true and whatever ran was killed.
    """
    registry = load_activities() if activities is None else activities
    masker = SecretMasker.for_credentials(credentials)
    try:
        workflow = validate_definition(definition, known_activities=set(registry))
        resolved_inputs = resolve_inputs(workflow, inputs)
    except DefinitionError as exc:
        raise WorkflowFailed(masker.text(f"invalid workflow: {exc}")) from None
    workdir.mkdir(parents=True, exist_ok=True)
    run = _Run(
        workflow=workflow,
        activities=registry,
        workdir=workdir,
        emit=_serialised_masked(emit, masker),
        masker=masker,
        scope=ExecutionScope() if scope is None else scope,
        globals={"inputs": resolved_inputs, "credentials": credentials, "execution": execution},
    )
    try:
        run.run_graph(should_stop)
        outputs = render(workflow.outputs, run.names(run.nodes, {}), "outputs")
    except ExpressionError as exc:
        raise WorkflowFailed(masker.text(str(exc))) from None
    finally:
        run.scope.close(run.emit)
    masked: dict[str, Any] = masker.value(outputs)  # masking keeps the shape
    return masked


def execution_scope(
    *,
    artifacts_dir: Path | None,
    artifact_limit_bytes: int | None,
    report_artifact: Callable[[dict[str, Any]], None],
    chromium: str | None,
    hub: HubCalls | None = None,
) -> ExecutionScope:
    """The scope of an execution run by the runner's worker: files attached are copied to `artifacts_dir`
    (within `artifact_limit_bytes` in all) and reported as `artifact` events; `chromium` for `browser.*`; `hub`
    the runner's calls to the hub (`workflow.run`)."""
    artifacts = Artifacts(
        artifacts_dir,
        limit_bytes=artifact_limit_bytes,
        on_attach=lambda attachment: report_artifact(attachment.to_event()),
    )
    return ExecutionScope(artifacts=artifacts, settings=ActivitySettings(chromium=chromium), hub=hub)


def _serialised_masked(emit: LineSink, masker: SecretMasker) -> LineSink:
    lock = threading.Lock()

    def masked(level: str, message: str, *, node: str | None = None, event: NodeEvent | None = None) -> None:
        with lock:
            emit(level, masker.text(message), node=node, event=event)

    return masked


class _Variables(dict[str, Any]):
    """The run's `vars`: set by activities of concurrent nodes, read by templates as a copy."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            super().__delitem__(key)

    def snapshot(self) -> dict[str, Any]:
        """A copy that no other thread changes while a template reads it."""
        with self._lock:
            return dict(self)


class _Stop:
    """When a running node must stop, and why: the run's stop request (`requested`), or the engine cancelling
    this node (another node failed, a `control.join` went on without it). Callable as a `StopCheck`."""

    def __init__(self, requested: StopCheck) -> None:
        self._requested = requested
        self._cancelled = threading.Event()
        self.reason: str | None = None
        """Why the engine cancelled the node; None for a stop request."""

    def cancel(self, reason: str) -> None:
        """Stop the node (once: the first reason stays)."""
        if not self._cancelled.is_set():
            self.reason = reason
            self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """True once the engine cancelled the node (a stop request does not count)."""
        return self._cancelled.is_set()

    def __call__(self) -> bool:
        return self._cancelled.is_set() or self._requested()


@dataclass(frozen=True)
class _Ended:
    """What a node's thread hands back: the node's outputs, or the `WorkflowFailed`/`WorkflowStopped` it ended with."""

    node_id: str
    outputs: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


@dataclass
class _Run:
    """The state of one run: node outputs (`nodes`), variables (`vars`) and the fixed template names."""

    workflow: WorkflowDefinition
    activities: Mapping[str, Activity]
    workdir: Path
    masker: SecretMasker
    scope: ExecutionScope
    globals: dict[str, Any]
    emit: LineSink
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    vars: _Variables = field(default_factory=_Variables)

    def names(self, scope: dict[str, dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
        """What templates see: inputs, credentials, execution, nodes, vars (+ item/index in a loop)."""
        return {**self.globals, "nodes": scope, "vars": self.vars.snapshot(), **extra}

    def run_graph(self, should_stop: StopCheck) -> None:
        """Run the top-level nodes as the graph allows, each in a thread, up to `maxParallel` at a time.

        Raises the first node failure, else `WorkflowStopped` when a stop request ended the run early.
        """
        schedule = Schedule(self.workflow)
        ended: queue.SimpleQueue[_Ended] = queue.SimpleQueue()
        running: dict[str, _Stop] = {}
        failure: BaseException | None = None
        stopped = False
        self._apply(schedule.begin(), running)
        while True:
            if failure is None and not stopped:
                ready = schedule.ready()
                if ready and should_stop():
                    stopped = True
                for node in [] if stopped else ready[: self.workflow.max_parallel - len(running)]:
                    schedule.start(node.id)
                    running[node.id] = _Stop(should_stop)
                    self._start(node, running[node.id], ended)
            if not running:
                break
            end = ended.get()  # every node's thread ends: a cancelled call is given up after the grace period
            stop = running.pop(end.node_id)
            if end.error is None:
                self.nodes[end.node_id] = end.outputs
                self._apply(schedule.ran(end.node_id, _branch(end.outputs)), running)
                continue
            # What follows from a node ending early is not logged: the run is ending (stop, failure), or the node
            # was cancelled by a join that already decided about everything it leads to.
            schedule.ended(end.node_id)
            if isinstance(end.error, WorkflowStopped):
                stopped = stopped or not stop.cancelled
            elif failure is None and not (stop.cancelled and isinstance(end.error, WorkflowFailed)):
                failure = end.error  # (a join's cancelled feeder failing does not fail the run)
                for other in running.values():
                    other.cancel(f"node {end.node_id} failed")
        if failure is not None:
            raise failure
        if stopped:
            raise WorkflowStopped("stopped on request")

    def _start(self, node: NodeDefinition, stop: _Stop, ended: queue.SimpleQueue[_Ended]) -> None:
        """Run a top-level node in a thread of its own, on a copy of `nodes` as they are now."""
        scope = dict(self.nodes)

        def run() -> None:
            try:
                outputs = self._run_node(node, scope, {}, stop, None)
            except BaseException as exc:  # handed to the scheduling thread, which raises it
                ended.put(_Ended(node.id, error=exc))
            else:
                ended.put(_Ended(node.id, outputs=outputs))

        threading.Thread(target=run, name=f"exekra-node-{node.id}", daemon=True).start()

    def _apply(self, decisions: Decisions, running: dict[str, _Stop]) -> None:
        """Log the nodes the schedule skipped and cancel the running ones it no longer needs."""
        for node, reason in decisions.skipped:
            label = f"node {node.id} ({node.activity})"
            self.emit("INFO", f"{label} skipped: {reason}", node=node.id, event="skipped")
        for node_id, reason in decisions.cancel:
            if node_id in running:
                running[node_id].cancel(reason)

    def _run_sequence(
        self, nodes: list[Any], scope: dict[str, dict[str, Any]], extra: dict[str, Any], stop: _Stop, owner: str
    ) -> dict[str, Any]:
        """Run a foreach body once: sub-nodes in order; their outputs are visible only in this pass (their
        lines belong to the foreach node, `owner`)."""
        local = dict(scope)
        for raw in nodes:
            node = NodeDefinition.model_validate(raw)
            self._run_node(node, local, extra, stop, owner)
        return {node_id: outputs for node_id, outputs in local.items() if node_id not in scope}

    def _run_node(
        self,
        node: NodeDefinition,
        scope: dict[str, dict[str, Any]],
        extra: dict[str, Any],
        stop: _Stop,
        owner: str | None,
    ) -> dict[str, Any]:
        """Run one node; a top-level node (no `owner`) marks its start and end with events."""
        label = f"node {node.id} ({node.activity})"
        top, line_owner = owner is None, owner or node.id

        def mark(level: str, message: str, event: NodeEvent) -> None:
            self.emit(level, message, node=line_owner, event=event if top else None)

        if stop():
            if stop.reason is not None:  # cancelled between being started and its thread running: never ran
                mark("INFO", f"{label} skipped: {stop.reason}", "skipped")
            raise WorkflowStopped("stopped before it started")
        mark("INFO", f"{label} started", "started")
        started = time.monotonic()
        try:
            params = self._params(node, self.names(scope, extra))
            outputs = self._attempts(node, label, params, scope, stop, line_owner)
        except (ActivityError, ExpressionError) as exc:
            message = f"{label} failed: {exc}"
            if stop():  # e.g. a control.delay "interrupted": the failure of a node told to stop is its stop
                mark("WARNING", _stopped(label, stop), "stopped")
                raise WorkflowStopped(message) from None
            if not node.continue_on_error:
                mark("ERROR", message, "failed")
                raise WorkflowFailed(self.masker.text(message), node.id) from None
            mark("WARNING", f"{message} (continueOnError)", "failed")
            outputs = {**(exc.outputs if isinstance(exc, ActivityError) else {}), "error": str(exc)}
        except WorkflowStopped:
            mark("WARNING", _stopped(label, stop), "stopped")
            raise
        else:
            mark("INFO", f"{label} completed in {round((time.monotonic() - started) * 1000)} ms", "completed")
        scope[node.id] = outputs
        return outputs

    def _params(self, node: NodeDefinition, names: dict[str, Any]) -> dict[str, Any]:
        """Rendered params; a foreach's `nodes` stay raw, they are rendered per item when they run."""
        return {
            key: value
            if node.activity == FOREACH_ACTIVITY and key == "nodes"
            else render(value, names, f"node '{node.id}': params.{key}")
            for key, value in node.params.items()
        }

    def _attempts(
        self,
        node: NodeDefinition,
        label: str,
        params: dict[str, Any],
        scope: dict[str, dict[str, Any]],
        stop: _Stop,
        owner: str,
    ) -> dict[str, Any]:
        """Call the activity, retrying failures `retries` times with a doubling delay."""
        attempt = 1
        while True:
            try:
                return self._call(node, label, params, scope, stop, owner)
            except ActivityError as exc:
                if attempt > node.retries:
                    raise
                delay = node.retry_delay_seconds * 2 ** (attempt - 1)
                self.emit(
                    "WARNING",
                    f"{label} attempt {attempt} of {node.retries + 1} failed: {exc}; retrying in {delay:g} s",
                    node=owner,
                )
                if _sleep(delay, stop):
                    raise WorkflowStopped("stopped on request") from None
                attempt += 1

    def _call(
        self,
        node: NodeDefinition,
        label: str,
        params: dict[str, Any],
        scope: dict[str, dict[str, Any]],
        stop: _Stop,
        owner: str,
    ) -> dict[str, Any]:
        """One activity call in a worker thread, cancelled on timeout or stop; its lines belong to `owner`."""
        emit = functools.partial(self.emit, node=owner)
        ctx = ActivityContext(
            node_id=node.id,
            workdir=self.workdir,
            emit=emit,
            timeout=node.timeout_seconds,
            vars=self.vars,
            scope=self.scope,
        )

        def run_nodes(nodes: list[Any], names: dict[str, Any], should_stop: StopCheck | None = None) -> dict[str, Any]:
            def must_stop() -> bool:
                return ctx.should_stop() or (should_stop is not None and should_stop())

            return self._run_sequence(nodes, scope, names, _Stop(must_stop), owner)

        ctx.run_nodes = run_nodes
        activity = self.activities[node.activity]
        outcome: list[object] = []
        worker = threading.Thread(
            target=lambda: outcome.append(_outcome(activity, ctx, params)), name=f"exekra-{node.id}", daemon=True
        )
        worker.start()
        deadline = None if node.timeout_seconds is None else time.monotonic() + node.timeout_seconds
        while True:
            remaining = _POLL_SECONDS if deadline is None else deadline - time.monotonic()
            worker.join(max(0.0, min(_POLL_SECONDS, remaining)))
            if not worker.is_alive():
                return _outputs(outcome[0])
            if stop():
                self._cancel(ctx, worker, label, emit)
                raise WorkflowStopped("stopped on request")
            if deadline is not None and time.monotonic() >= deadline:
                self._cancel(ctx, worker, label, emit)
                raise ActivityError(f"timed out after {node.timeout_seconds:g} s")

    def _cancel(self, ctx: ActivityContext, worker: threading.Thread, label: str, emit: Emit) -> None:
        ctx.cancelled.set()
        worker.join(CANCEL_GRACE_SECONDS)
        if worker.is_alive():
            emit("WARNING", f"{label} did not end within {CANCEL_GRACE_SECONDS:g} s of being cancelled")


def _stopped(label: str, stop: _Stop) -> str:
    return f"{label} stopped" if stop.reason is None else f"{label} stopped: {stop.reason}"


def _outcome(activity: Activity, ctx: ActivityContext, params: dict[str, Any]) -> object:
    """The activity's outputs, or the exception it raised (handed to the watching thread)."""
    try:
        return activity(ctx, params)
    except BaseException as exc:  # even SystemExit from a plugin only fails its node
        return exc


def _outputs(outcome: object) -> dict[str, Any]:
    if isinstance(outcome, ActivityError):
        raise outcome
    if isinstance(outcome, WorkflowError):  # a foreach's sub-node failed
        raise ActivityError(str(outcome)) from outcome
    if isinstance(outcome, BaseException):
        raise ActivityError(f"{type(outcome).__name__}: {outcome}") from outcome
    if not isinstance(outcome, dict):
        raise ActivityError(f"activity returned {type(outcome).__name__} instead of an object")
    return outcome


def _branch(outputs: dict[str, Any]) -> str | None:
    """The value edges' `when` is compared with: the node's `result` as text, booleans as true/false."""
    result = outputs.get("result")
    if isinstance(result, bool):
        return "true" if result else "false"
    return None if result is None else str(result)


def _sleep(seconds: float, stop: StopCheck) -> bool:
    """Sleep up to `seconds`; True as soon as `stop()` is true."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if stop():
            return True
        time.sleep(min(remaining, _POLL_SECONDS))
    return stop()
