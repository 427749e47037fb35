"""`workflow.run`: run another workflow as a child execution, wait for it, and return its outputs."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from pydantic import Field

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity
from exekra.workflow.errors import ActivityError
from exekra.workflow.hubcalls import START_CHILD, STOP_CHILD, WAIT_FOR_CHILD, CallInterrupted, HubCalls

WAIT_SECONDS = 25.0
"""How long one read of the child waits on the hub for its end (the hub holds at most 30 s)."""
STOP_ANSWER_SECONDS = 3.0
"""How long a cancelled call waits for the hub to confirm the child's stop (the engine gives it 5 s in all)."""
STOP_NEWS_SECONDS = 5.0
"""How long a node whose child was STOPPED waits to hear that this execution is being stopped too: a stop of a
parent stops its children in the same step, and the parent's runner hears of it at its next log upload (every 2 s).
Heard in time, the node stops rather than fails (the parent ends STOPPED, not FAILED)."""
_ENDED = frozenset({"COMPLETED", "FAILED", "STOPPED"})


class RunParams(Params):
    workflow: str = Field(min_length=1, max_length=200)
    """The workflow to run: its name or id."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """The child's inputs, checked against the inputs its version declares."""
    version: int | None = Field(default=None, ge=1)
    """A version number to run (a version once published); absent: the published version."""


class RunOutputs(Params):
    execution_id: str
    """The child execution's id (its page links back to this execution)."""
    status: Literal["COMPLETED", "FAILED", "STOPPED"]
    """How the child ended; the node fails unless it COMPLETED (with `continueOnError` these outputs remain)."""
    outputs: dict[str, Any] | None
    """The child's outputs when it COMPLETED, else null."""


@activity("workflow.run", category="Flow", params=RunParams, outputs=RunOutputs)
def run(ctx: ActivityContext, params: RunParams) -> dict[str, Any]:
    """Run another workflow's published version (or `version`) with `inputs` as a child execution, wait for it,
    and return its outputs.

    The child is a real execution, queued for a runner of its own (never this one, which waits for it), linked to
    this one by `parentId`. A stop of this execution, or its end in any way, stops the child; a timeout of this
    node stops it too. The hub refuses a child that would nest deeper than `EXEKRA_MAX_SUBWORKFLOW_DEPTH`, whose
    workflow already runs above it, or that no runner but those running its parents could run.
    """
    hub = ctx.scope.hub
    if hub is None:
        raise ActivityError("workflow.run needs a runner: the child is started through the hub")
    request: dict[str, Any] = {"key": ctx.scope.call_key(ctx.node_id), "workflow": params.workflow}
    request |= {"inputs": params.inputs} | ({"version": params.version} if params.version is not None else {})
    child = hub.call(START_CHILD, request, cancelled=ctx.cancelled)["execution"]
    label = f"child execution {child['id']} (workflow {child['workflowName']} version {child['versionNumber']})"
    ctx.emit("INFO", f"node {ctx.node_id}: started {label}")
    try:
        child = _wait_for_end(ctx, hub, child, label)
    except CallInterrupted:
        _stop(hub, child["id"])
        raise
    status = child["status"]
    outputs = {
        "executionId": child["id"],
        "status": status,
        "outputs": child["outputs"] if status == "COMPLETED" else None,
    }
    if status == "STOPPED":
        ctx.wait(STOP_NEWS_SECONDS)  # at once when this execution is being stopped: the engine then stops the node
    if status != "COMPLETED":
        raise ActivityError(f"{label} ended {status}: {child.get('error') or 'no error given'}", outputs)
    ctx.emit("INFO", f"node {ctx.node_id}: {label} COMPLETED")
    return outputs


def _wait_for_end(ctx: ActivityContext, hub: HubCalls, child: dict[str, Any], label: str) -> dict[str, Any]:
    """The child once it has ended; each change of its state is logged (a QUEUED child says why it waits)."""
    said = None
    while child["status"] not in _ENDED:
        state = _state(child)
        if state != said:
            ctx.emit("INFO", f"node {ctx.node_id}: waiting for {label}: {state}")
            said = state
        answer = hub.call(WAIT_FOR_CHILD, {"id": child["id"], "wait": WAIT_SECONDS}, cancelled=ctx.cancelled)
        child = answer["execution"]
    return child


def _state(child: dict[str, Any]) -> str:
    status = child["status"]
    if status == "QUEUED":
        return f"QUEUED: {child.get('waitingReason') or 'no free runner'}"
    runner = child.get("runnerName") or child.get("runnerId")
    return f"{status} on runner {runner}" if runner else status


def _stop(hub: HubCalls, child_id: str) -> None:
    """Ask the hub to stop the child this node no longer waits for (the parent's end would stop it anyway)."""
    # A refusal (the child ended meanwhile) or no answer (the hub is out of reach): the parent's end stops it.
    with contextlib.suppress(ActivityError):
        hub.call(STOP_CHILD, {"id": child_id}, timeout=STOP_ANSWER_SECONDS)
