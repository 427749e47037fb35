"""`workflow.run` without a hub: the literal calls publishing follows, the keys of a run's calls, and the activity
refusing to run where no runner stands behind the engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from exekra.workflow.activities import BUILTIN, ActivityContext
from exekra.workflow.definition import SubworkflowCall, subworkflow_calls
from exekra.workflow.errors import ActivityError
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
