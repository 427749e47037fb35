"""Control activities: `control.if`, `control.foreach`, `control.delay` and `control.fail`."""

from __future__ import annotations

from typing import Any

from exekra.workflow.activities.context import ActivityContext, param
from exekra.workflow.errors import ActivityError

# Strings that count as false, so a rendered "False" or "0" does not read as true.
_FALSE_WORDS = frozenset({"", "false", "0", "no", "off", "none", "null"})


def if_(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Evaluate `condition`; outputs `result` (true/false), which edges match with `when`.

    Booleans are used as they are; strings are false when empty or one of false, 0, no, off, none,
    null (any case); anything else by Python truthiness (0, empty list and null are false).
    """
    if "condition" not in params:
        raise ActivityError("param 'condition' is required")
    condition = params["condition"]
    if isinstance(condition, str):
        return {"result": condition.strip().lower() not in _FALSE_WORDS}
    return {"result": bool(condition)}


def foreach(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Run the sub-nodes in `nodes` in order once per element of `items`, with `item` and `index` set.

    Outputs `results`: one object per item mapping each sub-node id to its outputs.
    """
    items = param(params, "items", list)
    nodes = param(params, "nodes", list)
    if ctx.run_nodes is None:
        raise ActivityError("control.foreach runs only inside the workflow engine")
    results = []
    for index, item in enumerate(items):
        ctx.emit("INFO", f"node {ctx.node_id}: item {index + 1} of {len(items)}")
        results.append(ctx.run_nodes(nodes, {"item": item, "index": index}))
    return {"results": results}


def delay(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Wait `seconds`; a stop or the node's timeout interrupts the wait at once."""
    seconds = param(params, "seconds", float)
    if seconds < 0:
        raise ActivityError("param 'seconds' must be >= 0")
    if ctx.wait(seconds):
        raise ActivityError("interrupted")
    return {}


def fail(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Fail the node, and so the workflow unless `continueOnError`, with `message`."""
    message = params.get("message")
    raise ActivityError("failed" if message is None else str(message))
