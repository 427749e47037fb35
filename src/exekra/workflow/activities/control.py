"""Control activities: `control.if`, `control.foreach`, `control.join`, `control.delay` and `control.fail`."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field

from exekra.workflow.activities.context import ActivityContext, RunNodes
from exekra.workflow.activities.spec import Params, activity
from exekra.workflow.errors import ActivityError, WorkflowStopped
from exekra.workflow.validation import MAX_PARALLEL

CATEGORY = "Flow"
# Strings that count as false, so a rendered "False" or "0" does not read as true.
_FALSE_WORDS = frozenset({"", "false", "0", "no", "off", "none", "null"})


class IfParams(Params):
    condition: Any
    """The value to test, usually an expression such as `{{ nodes.get.status == 200 }}`."""


class IfOutputs(Params):
    result: bool
    """The outcome, matched by the `when` ("true"/"false") of the edges leaving the node."""


@activity("control.if", category=CATEGORY, params=IfParams, outputs=IfOutputs)
def if_(ctx: ActivityContext, params: IfParams) -> dict[str, Any]:
    """Evaluate `condition` and branch on it.

    Booleans are used as they are; strings are false when empty or one of false, 0, no, off, none,
    null (any case); anything else by Python truthiness (0, empty list and null are false).
    """
    condition = params.condition
    if isinstance(condition, str):
        return {"result": condition.strip().lower() not in _FALSE_WORDS}
    return {"result": bool(condition)}


class ForeachParams(Params):
    items: list[Any]
    """The list to loop over; each pass sees `item` and `index` (from 0)."""
    nodes: list[dict[str, Any]]
    """The sub-nodes run in order for each item (node objects, rendered per item)."""
    parallel: int = Field(default=1, ge=1, le=MAX_PARALLEL)
    """How many items run at the same time (1: one after the other); results keep the order of `items`."""


class ForeachOutputs(Params):
    results: list[dict[str, Any]]
    """One object per item mapping each sub-node id to its outputs."""


@activity("control.foreach", category=CATEGORY, params=ForeachParams, outputs=ForeachOutputs)
def foreach(ctx: ActivityContext, params: ForeachParams) -> dict[str, Any]:
    """Run the sub-nodes in `nodes` in order once per element of `items`, with `item` and `index` set.

    With `parallel` above 1, up to that many items run at the same time. The first item that fails fails the
    loop: the items still running are stopped and those not started are not run.
    """
    if ctx.run_nodes is None:
        raise ActivityError("control.foreach runs only inside the workflow engine")
    if params.parallel == 1:
        results = []
        for index, item in enumerate(params.items):
            ctx.emit("INFO", f"node {ctx.node_id}: item {index + 1} of {len(params.items)}")
            results.append(ctx.run_nodes(params.nodes, {"item": item, "index": index}))
        return {"results": results}
    return {"results": _foreach_parallel(ctx, ctx.run_nodes, params)}


def _foreach_parallel(ctx: ActivityContext, run_nodes: RunNodes, params: ForeachParams) -> list[dict[str, Any]]:
    """The results of every item, `params.parallel` items at a time, in item order."""
    abandoned = threading.Event()  # set by the first failure: the other items stop

    def must_stop() -> bool:
        return abandoned.is_set() or ctx.should_stop()

    def run_item(index: int, item: Any) -> dict[str, Any]:
        if must_stop():
            raise WorkflowStopped("not started: the loop is ending")
        ctx.emit("INFO", f"node {ctx.node_id}: item {index + 1} of {len(params.items)}")
        try:
            return run_nodes(params.nodes, {"item": item, "index": index}, must_stop)
        except WorkflowStopped:
            raise
        except BaseException:
            abandoned.set()
            raise

    with ThreadPoolExecutor(params.parallel, thread_name_prefix=f"exekra-{ctx.node_id}") as pool:
        futures = [pool.submit(run_item, index, item) for index, item in enumerate(params.items)]
    failures = [error for future in futures if not isinstance(error := future.exception(), WorkflowStopped | None)]
    if failures:
        # The failure of the first failing item in `items` order; items ended by that failure are not failures.
        raise failures[0]
    return [future.result() for future in futures]


class JoinParams(Params):
    mode: Literal["all", "any"] = "all"
    """`all`: start once every incoming branch has ended (as any node with several incoming edges does).
    `any`: start as soon as one incoming branch has completed; the branches that only lead here are then
    stopped (running nodes) or skipped (nodes not started). Never a template: read before the node runs."""


@activity("control.join", category=CATEGORY, params=JoinParams)
def join(ctx: ActivityContext, params: JoinParams) -> dict[str, Any]:
    """Join parallel branches: the engine starts this node when its `mode` says so; the node itself does
    nothing. Read the branches' outputs as `nodes.<id>` (`nodes.<id> is defined` tells which ran)."""
    return {}


class DelayParams(Params):
    seconds: float = Field(ge=0)
    """How long to wait."""


@activity("control.delay", category=CATEGORY, params=DelayParams)
def delay(ctx: ActivityContext, params: DelayParams) -> dict[str, Any]:
    """Wait `seconds`; a stop or the node's timeout interrupts the wait at once."""
    if ctx.wait(params.seconds):
        raise ActivityError("interrupted")
    return {}


class FailParams(Params):
    message: Any = None
    """The failure message (any value, shown as text); "failed" when absent."""


@activity("control.fail", category=CATEGORY, params=FailParams)
def fail(ctx: ActivityContext, params: FailParams) -> dict[str, Any]:
    """Fail the node, and so the workflow unless `continueOnError`, with `message`."""
    raise ActivityError("failed" if params.message is None else str(params.message))
