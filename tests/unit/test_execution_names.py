"""The names shown beside an execution: a waiting reason only while it is QUEUED."""

from __future__ import annotations

import uuid

from exekra.hub import lifecycle
from exekra.hub.executions.names import ExecutionNames


def test_a_waiting_reason_read_while_queued_is_not_shown_once_the_execution_left_the_queue() -> None:
    # A held `?wait=` read takes the names when it starts (the execution perhaps QUEUED behind a full group) and
    # answers, when it ends, with those names: the reason must not outlive the wait.
    runner_id, execution_id = uuid.uuid4(), uuid.uuid4()
    names = ExecutionNames(waiting={execution_id: "concurrency limit reached: 1 of 1 running"})
    queued = lifecycle.execution_from({"id": execution_id, "status": "QUEUED", "runner_id": None, "triggered_by": None})
    assert names.of(queued)["waiting_reason"] == "concurrency limit reached: 1 of 1 running"

    ended = lifecycle.execution_from(
        {"id": execution_id, "status": "COMPLETED", "runner_id": runner_id, "triggered_by": None}
    )
    named = names.with_runner(runner_id, "r1")
    assert named.of(ended) == {"runner_name": "r1", "triggered_by_name": None, "waiting_reason": None}
    assert names.runners == {}  # `with_runner` leaves the names it was given as they were
