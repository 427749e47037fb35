"""`vars.set`: set a workflow variable, read later as `vars.<name>`."""

from __future__ import annotations

from typing import Any

from exekra.workflow.activities.context import ActivityContext, param
from exekra.workflow.errors import ActivityError


def set_var(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Set variable `name` to `value` (any value, null included); outputs `value`."""
    name = param(params, "name", str)
    if "value" not in params:
        raise ActivityError("param 'value' is required")
    ctx.vars[name] = params["value"]
    return {"value": params["value"]}
