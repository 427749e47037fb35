"""`log.message`: write a line to the execution log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class MessageParams(Params):
    message: Any
    """The line to log (any value, shown as text)."""
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
    """The log level, in any case."""


@activity("log.message", category="Flow", params=MessageParams)
def message(ctx: ActivityContext, params: MessageParams) -> dict[str, Any]:
    """Log `message` at `level` (DEBUG, INFO, WARNING or ERROR)."""
    ctx.emit(params.level, str(params.message))
    return {}
