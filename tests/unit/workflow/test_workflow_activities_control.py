"""`control.*`, `log.message` and `vars.set`."""

from __future__ import annotations

import pytest
from workflow_support import ActivityCall

from exekra.workflow.activities import control, log, variables
from exekra.workflow.errors import ActivityError


@pytest.mark.parametrize(
    ("condition", "result"),
    [
        (True, True),
        (False, False),
        ("true", True),
        (" False ", False),
        ("0", False),
        ("no", False),
        ("", False),
        ("null", False),
        ("anything", True),
        (1, True),
        (0, False),
        ([], False),
        (None, False),
        ({"k": 1}, True),
    ],
)
def test_if_truthiness(call: ActivityCall, condition: object, result: bool) -> None:
    assert control.if_(call.ctx, {"condition": condition}) == {"result": result}


def test_if_needs_a_condition(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^param 'condition' is required$"):
        control.if_(call.ctx, {})


def test_delay_zero_returns_and_a_cancelled_delay_is_interrupted(call: ActivityCall) -> None:
    assert control.delay(call.ctx, {"seconds": 0}) == {}
    call.ctx.cancelled.set()
    with pytest.raises(ActivityError, match=r"^interrupted$"):
        control.delay(call.ctx, {"seconds": 30})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "param 'seconds' is required"),
        ({"seconds": -1}, "param 'seconds' must be >= 0"),
        ({"seconds": "1"}, "param 'seconds' must be a number"),
    ],
)
def test_delay_param_errors(call: ActivityCall, params: dict[str, object], message: str) -> None:
    with pytest.raises(ActivityError, match=f"^{message}$"):
        control.delay(call.ctx, params)


def test_fail_raises_its_message(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^got 404$"):
        control.fail(call.ctx, {"message": "got 404"})
    with pytest.raises(ActivityError, match=r"^failed$"):
        control.fail(call.ctx, {})


def test_foreach_needs_the_engine(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^control.foreach runs only inside the workflow engine$"):
        control.foreach(call.ctx, {"items": [1], "nodes": [{"id": "a", "activity": "log.message"}]})


def test_log_message_levels(call: ActivityCall) -> None:
    assert log.message(call.ctx, {"message": "hello"}) == {}
    log.message(call.ctx, {"message": {"k": 1}, "level": "warning"})

    assert call.lines == [("INFO", "hello"), ("WARNING", "{'k': 1}")]
    with pytest.raises(ActivityError, match=r"^param 'level' must be one of DEBUG, INFO, WARNING, ERROR$"):
        log.message(call.ctx, {"message": "x", "level": "LOUD"})


def test_vars_set_stores_any_value(call: ActivityCall) -> None:
    assert variables.set_var(call.ctx, {"name": "total", "value": [1, 2]}) == {"value": [1, 2]}
    variables.set_var(call.ctx, {"name": "empty", "value": None})

    assert call.ctx.vars == {"total": [1, 2], "empty": None}
    with pytest.raises(ActivityError, match=r"^param 'value' is required$"):
        variables.set_var(call.ctx, {"name": "x"})
