"""`log.message`: write a line to the execution log."""

from __future__ import annotations

from typing import Any

from exekra.workflow.activities.context import ActivityContext, param
from exekra.workflow.errors import ActivityError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def message(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Log `message` (any value, shown as text) at `level` (DEBUG, INFO (default), WARNING, ERROR)."""
    if "message" not in params:
        raise ActivityError("param 'message' is required")
    level = param(params, "level", str, "INFO").upper()
    if level not in LEVELS:
        raise ActivityError(f"param 'level' must be one of {', '.join(LEVELS)}")
    ctx.emit(level, str(params["message"]))
    return {}
