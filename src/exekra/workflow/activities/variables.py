"""`vars.set`: set a workflow variable, read later as `vars.<name>`."""

from __future__ import annotations

from typing import Any

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity


class SetParams(Params):
    name: str
    """The variable's name."""
    value: Any
    """Its value (any value, null included)."""


class SetOutputs(Params):
    value: Any
    """The value set."""


@activity("vars.set", category="Flow", params=SetParams, outputs=SetOutputs)
def set_var(ctx: ActivityContext, params: SetParams) -> dict[str, Any]:
    """Set variable `name` to `value`, read by later nodes as `vars.<name>`."""
    ctx.vars[params.name] = params.value
    return {"value": params.value}
