"""`workflow.run` without a hub: the literal calls publishing follows, the keys of a run's calls, and the activity
refusing to run where no runner stands behind the engine."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from exekra.workflow.activities import BUILTIN, ActivityContext, subworkflow
from exekra.workflow.definition import SubworkflowCall, subworkflow_calls
from exekra.workflow.errors import ActivityError
from exekra.workflow.hubcalls import START_CHILD
from exekra.workflow.scope import ExecutionScope


def test_literal_calls_are_found_in_foreach_bodies_and_templates_are_left_to_run_time() -> None:
    definition = {
        "nodes": [
            {"id": "one", "activity": "workflow.run", "params": {"workflow": "billing", "version": 3}},
            {"id": "two", "activity": "workflow.run", "params": {"workflow": "{{ inputs.name }}"}},
            {
                "id": "each",
                "activity": "control.foreach",
                "params": {
                    "items": [1],
                    "nodes": [
                        {"id": "in", "activity": "workflow.run", "params": {"workflow": "x", "version": "{{ 2 }}"}}
                    ],
                },
            },
            {"id": "log", "activity": "log.message", "params": {"workflow": "not a call"}},
        ]
    }

    found = sorted(subworkflow_calls(definition))

    assert found == [SubworkflowCall("each", "x", None), SubworkflowCall("one", "billing", 3)]


def test_each_call_of_a_node_gets_a_key_of_its_own_even_from_parallel_threads() -> None:
    scope = ExecutionScope()

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: scope.call_key("sub"), range(100)))

    assert sorted(keys, key=lambda k: int(k.split(":")[1])) == [f"sub:{n}" for n in range(1, 101)]
    assert scope.call_key("other") == "other:1"


def test_workflow_run_without_a_runner_fails_with_the_reason(tmp_path: Path) -> None:
    ctx = ActivityContext(node_id="sub", workdir=tmp_path, emit=lambda level, message: None)

    with pytest.raises(ActivityError, match=r"workflow\.run needs a runner"):
        BUILTIN["workflow.run"](ctx, {"workflow": "child"})


class StoppedChild:
    """A hub whose child execution ends STOPPED at the first read."""

    def call(self, op: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        child = {"id": "c1", "workflowName": "child", "versionNumber": 1, "outputs": None, "error": None}
        return {"execution": {**child, "status": "RUNNING" if op == START_CHILD else "STOPPED"}}


def test_a_child_stopped_with_its_parent_lets_the_parent_hear_of_its_own_stop_before_the_node_ends(
    tmp_path: Path,
) -> None:
    # A stop of the parent stops the child in the same step; the parent's runner hears of its own stop up to 2 s
    # later. The node waits for that news (the engine turns the failure of a node told to stop into its stop).
    ctx = ActivityContext(
        node_id="sub", workdir=tmp_path, emit=lambda level, message: None, scope=ExecutionScope(hub=StoppedChild())
    )
    threading.Timer(0.2, ctx.cancelled.set).start()
    began = time.monotonic()

    with pytest.raises(ActivityError, match="ended STOPPED"):
        BUILTIN["workflow.run"](ctx, {"workflow": "child"})

    assert ctx.cancelled.is_set() and 0.15 < time.monotonic() - began < subworkflow.STOP_NEWS_SECONDS


def test_a_child_stopped_alone_fails_the_node_once_no_stop_of_the_parent_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subworkflow, "STOP_NEWS_SECONDS", 0.1)
    ctx = ActivityContext(
        node_id="sub", workdir=tmp_path, emit=lambda level, message: None, scope=ExecutionScope(hub=StoppedChild())
    )

    with pytest.raises(ActivityError, match="ended STOPPED") as failed:
        BUILTIN["workflow.run"](ctx, {"workflow": "child"})

    assert not ctx.cancelled.is_set() and failed.value.outputs == {
        "executionId": "c1",
        "status": "STOPPED",
        "outputs": None,
    }
