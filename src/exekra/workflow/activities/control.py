"""Control activities: `control.if`, `control.foreach`, `control.delay` and `control.fail`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity
from exekra.workflow.errors import ActivityError

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


class ForeachOutputs(Params):
    results: list[dict[str, Any]]
    """One object per item mapping each sub-node id to its outputs."""


@activity("control.foreach", category=CATEGORY, params=ForeachParams, outputs=ForeachOutputs)
def foreach(ctx: ActivityContext, params: ForeachParams) -> dict[str, Any]:
    """Run the sub-nodes in `nodes` in order once per element of `items`, with `item` and `index` set."""
    if ctx.run_nodes is None:
        raise ActivityError("control.foreach runs only inside the workflow engine")
    results = []
    for index, item in enumerate(params.items):
        ctx.emit("INFO", f"node {ctx.node_id}: item {index + 1} of {len(params.items)}")
        results.append(ctx.run_nodes(params.nodes, {"item": item, "index": index}))
    return {"results": results}


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
