"""Parallel branches: fan-out, maxParallel, joins (implicit, control.join all/any), failure, stop, foreach parallel."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from workflow_support import Probe, WorkflowRun, process_gone

from exekra.runner.metrics import ProcessTreeSampler
from exekra.workflow import WorkflowFailed, WorkflowStopped
from exekra.workflow.activities import BUILTIN, ActivityContext
from exekra.workflow.scope import ExecutionScope


def node(node_id: str, activity: str = "probe", **params: Any) -> dict[str, Any]:
    return {"id": node_id, "activity": activity, "params": params}


def fan(*branches: dict[str, Any], join: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """`start` -> every branch (-> `join` when given)."""
    nodes = [node("start", "log.message", message="go"), *branches, *([join] if join else [])]
    edges = [{"from": "start", "to": branch["id"]} for branch in branches]
    if join:
        edges += [{"from": branch["id"], "to": join["id"]} for branch in branches]
    return {"nodes": nodes, "edges": edges, **fields}


def started_and_ended(run: WorkflowRun, *node_ids: str) -> list[tuple[str, str]]:
    return [(node_id, event) for node_id, event in run.events if node_id in node_ids]


def test_two_branches_of_a_node_run_at_the_same_time(run: WorkflowRun) -> None:
    run(fan(node("a", "control.delay", seconds=0.3), node("b", "control.delay", seconds=0.3)))

    # Each lasts 0.3 s, so both starting before either ends means they overlapped (the total wall time,
    # about 0.3 s instead of 0.6, is measured by `python -m bench.parallel_branches`, not asserted here).
    events = started_and_ended(run, "a", "b")
    assert sorted(events[:2]) == [("a", "started"), ("b", "started")]
    assert sorted(events[2:]) == [("a", "completed"), ("b", "completed")]


def test_max_parallel_bounds_how_many_nodes_run_at_once(run: WorkflowRun) -> None:
    probe = Probe()
    branches = [node(f"b{index}", meet=2, value=index) for index in range(4)]
    run(fan(*branches, maxParallel=2), activities=probe.activities)

    assert probe.peak == 2
    assert sorted(probe.started) == ["b0", "b1", "b2", "b3"]


def test_max_parallel_defaults_to_four(run: WorkflowRun) -> None:
    probe = Probe()
    run(fan(*(node(f"b{index}", meet=4) for index in range(6))), activities=probe.activities)

    assert probe.peak == 4


def test_max_parallel_one_runs_the_nodes_in_topological_order_one_at_a_time(run: WorkflowRun) -> None:
    probe = Probe()
    branches = [node("b", value=1), node("a", value=2), node("c", value=3)]
    run(fan(*branches, join=node("end", "log.message", message="done"), maxParallel=1), activities=probe.activities)

    assert probe.peak == 1
    assert [event for event in run.events if event[1] == "started"] == [
        ("start", "started"),
        ("b", "started"),
        ("a", "started"),
        ("c", "started"),
        ("end", "started"),
    ]


def test_a_node_with_several_incoming_edges_waits_for_all_of_them(run: WorkflowRun) -> None:
    definition = fan(
        node("slow", "control.delay", seconds=0.2),
        node("fast", "vars.set", name="fast", value="fast"),
        join=node("join", "log.message", message="{{ nodes.slow is defined }} and {{ nodes.fast.value }}"),
    )
    run(definition)

    join_started = run.events.index(("join", "started"))
    assert run.events.index(("slow", "completed")) < join_started
    assert run.events.index(("fast", "completed")) < join_started
    assert "True and fast" in run.messages


def test_join_all_waits_for_every_branch_that_runs(run: WorkflowRun) -> None:
    definition = fan(
        node("slow", "control.delay", seconds=0.2),
        node("fast", "vars.set", name="fast", value=1),
        join=node("join", "control.join", mode="all"),
        outputs={"slow": "{{ nodes.slow is defined }}", "fast": "{{ nodes.fast.value }}"},
    )
    assert run(definition) == {"slow": True, "fast": 1}
    assert run.events.index(("slow", "completed")) < run.events.index(("join", "started"))


WAIT_FOR_SLOW = "while [ ! -s slow.pid ]; do sleep 0.01; done"
"""A shell command's wait until the node `slow` has written its process id."""
WHILE_SLOW_RUNS = "while kill -0 $(cat slow.pid) 2>/dev/null; do sleep 0.01; done"


def any_join_race() -> dict[str, Any]:
    """`fast` wins the race into `first` (mode any); `slow` -> `slower` lose; `shared`, running until `slow` is
    stopped, leads to `first` and to `log`."""
    return {
        "nodes": [
            node("start", "log.message", message="go"),
            node("fast", "shell.run", command=f"{WAIT_FOR_SLOW}; echo fast"),
            node("slow", "shell.run", command="echo $$ > slow.pid; sleep 30"),
            node("slower", "log.message", message="never"),
            node("shared", "shell.run", command=f"{WAIT_FOR_SLOW}; {WHILE_SLOW_RUNS}"),
            node("log", "log.message", message="shared went on to log"),
            node("first", "control.join", mode="any"),
            node("after", "log.message", message="after the race"),
        ],
        "edges": [
            {"from": "start", "to": "fast"},
            {"from": "start", "to": "slow"},
            {"from": "slow", "to": "slower"},
            {"from": "slower", "to": "first"},
            {"from": "fast", "to": "first"},
            {"from": "shared", "to": "first"},
            {"from": "shared", "to": "log"},
            {"from": "start", "to": "shared"},
            {"from": "first", "to": "after"},
        ],
        "outputs": {"fast": "{{ nodes.fast.stdout | trim }}", "slow": "{{ nodes.slow is defined }}"},
    }


def test_join_any_goes_on_with_the_first_branch_and_stops_the_branches_that_only_lead_to_it(
    run: WorkflowRun,
) -> None:
    started = time.monotonic()
    outputs = run(any_join_race())

    assert time.monotonic() - started < 5
    assert outputs == {"fast": "fast", "slow": False}
    assert process_gone(int((run.workdir / "slow.pid").read_text()))
    assert ("slow", "stopped") in run.events
    assert ("WARNING", "node slow (shell.run) stopped: join first went on without it") in run.lines
    assert ("slower", "skipped") in run.events
    assert ("INFO", "node slower (log.message) skipped: join first went on without it") in run.lines
    assert ("after", "completed") in run.events
    assert run.events.index(("fast", "completed")) < run.events.index(("first", "started"))
    # `shared` was running when the join went on (it runs until `slow`, stopped by the join, is gone); it also leads
    # elsewhere, so it was not stopped and went on too. (Its end and the join's start race: no order between them.)
    assert ("shared", "completed") in run.events and ("shared", "stopped") not in run.events
    assert ("log", "completed") in run.events


def test_join_any_is_skipped_when_no_edge_into_it_is_taken(run: WorkflowRun) -> None:
    definition = {
        "nodes": [
            node("check", "control.if", condition=False),
            node("a", "log.message", message="a"),
            node("b", "log.message", message="b"),
            node("first", "control.join", mode="any"),
            node("other", "log.message", message="other"),
        ],
        "edges": [
            {"from": "check", "to": "a", "when": "true"},
            {"from": "check", "to": "b", "when": "true"},
            {"from": "a", "to": "first"},
            {"from": "b", "to": "first"},
            {"from": "check", "to": "other", "when": "false"},
        ],
    }
    run(definition)
    assert {node_id for node_id, event in run.events if event == "skipped"} == {"a", "b", "first"}
    assert ("other", "completed") in run.events


def test_a_failing_branch_fails_the_run_and_stops_the_others(run: WorkflowRun) -> None:
    definition = fan(
        node("boom", "shell.run", command=f"{WAIT_FOR_SLOW}; exit 3"),
        node("slow", "shell.run", command="echo $$ > slow.pid; sleep 30"),
        node("waiting", meet=2),
        join=node("after", "log.message", message="never"),
    )
    started = time.monotonic()
    with pytest.raises(WorkflowFailed) as caught:
        run(definition, activities=Probe().activities)

    assert time.monotonic() - started < 5
    assert str(caught.value) == "node boom (shell.run) failed: exit code 3" and caught.value.node_id == "boom"
    assert process_gone(int((run.workdir / "slow.pid").read_text()))
    assert ("boom", "failed") in run.events and ("slow", "stopped") in run.events
    assert ("WARNING", "node slow (shell.run) stopped: node boom failed") in run.lines
    assert ("waiting", "stopped") in run.events  # its own failure ("interrupted") counts as its stop
    assert not any(node_id == "after" for node_id, _ in run.events)


def test_continue_on_error_in_one_branch_lets_the_others_and_the_join_go_on(run: WorkflowRun) -> None:
    definition = fan(
        {**node("boom", meet=2, fail="broken"), "continueOnError": True},
        node("other", meet=2, value="other"),
        join=node("after", "log.message", message="boom said {{ nodes.boom.error }}"),
        outputs={"other": "{{ nodes.other.value }}"},
    )
    assert run(definition, activities=Probe().activities) == {"other": "other"}
    assert ("boom", "failed") in run.events and ("other", "completed") in run.events
    assert "boom said broken" in run.messages


def test_a_branch_timing_out_fails_only_its_node_under_continue_on_error(run: WorkflowRun) -> None:
    definition = fan(
        {**node("late", "control.delay", seconds=30), "timeoutSeconds": 0.2, "continueOnError": True},
        node("ok", "control.delay", seconds=1),
        join=node("after", "log.message", message="{{ nodes.late.error }}"),
    )
    run(definition)

    assert "timed out after 0.2 s" in run.messages
    assert run.events.index(("late", "failed")) < run.events.index(("ok", "completed"))


def test_stop_during_a_parallel_run_stops_every_running_branch(run: WorkflowRun) -> None:
    definition = fan(
        node("one", "shell.run", command="echo $$ > one.pid; echo ready; sleep 30"),
        node("two", "shell.run", command="echo $$ > two.pid; echo ready; sleep 30"),
        join=node("after", "log.message", message="never"),
    )
    stop = threading.Event()
    pids = [run.workdir / "one.pid", run.workdir / "two.pid"]
    run.on_emit = lambda level, message: stop.set() if all(pid.exists() for pid in pids) else None

    with pytest.raises(WorkflowStopped):
        run(definition, should_stop=stop.is_set)

    assert {("one", "stopped"), ("two", "stopped")} <= set(run.events)
    assert all(process_gone(int(pid.read_text())) for pid in pids)
    assert not any(node_id == "after" for node_id, _ in run.events)


def test_after_control_if_only_the_chosen_branch_runs_its_nodes_in_parallel(run: WorkflowRun) -> None:
    probe = Probe()
    definition = {
        "nodes": [
            node("check", "control.if", condition=True),
            node("yes1", meet=2),
            node("yes2", meet=2),
            node("no", "control.fail", message="wrong branch"),
            node("no_after", "control.fail", message="wrong branch"),
        ],
        "edges": [
            {"from": "check", "to": "yes1", "when": "true"},
            {"from": "check", "to": "yes2", "when": "true"},
            {"from": "check", "to": "no", "when": "false"},
            {"from": "no", "to": "no_after"},
        ],
    }
    run(definition, activities=probe.activities)

    assert probe.peak == 2
    assert ("no", "skipped") in run.events and ("no_after", "skipped") in run.events


def test_lines_of_concurrent_nodes_each_name_their_node(run: WorkflowRun) -> None:
    def chatty(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
        for index in range(50):
            ctx.emit("INFO", f"{ctx.node_id} line {index}")
        return {}

    definition = fan(*(node(f"n{index}", "chatty") for index in range(4)))
    run(definition, activities={**BUILTIN, "chatty": chatty})

    lines = [(owner, message) for owner, event, message in run.marks if event is None and "line" in message]
    assert len(lines) == 200
    assert all(message.startswith(f"{owner} line ") for owner, message in lines)


def test_concurrent_nodes_set_variables_safely(run: WorkflowRun) -> None:
    branches = [node(f"set{index}", "vars.set", name=f"v{index}", value=index) for index in range(16)]
    definition = fan(*branches, join=node("sum", "log.message", message="{{ vars.values() | sum }}"), maxParallel=16)
    run(definition)
    assert str(sum(range(16))) in run.messages


def test_the_cpu_of_every_branch_thread_counts_in_the_process_metrics(run: WorkflowRun) -> None:
    """The runner samples the worker's process tree; the engine's branches are threads of that process."""
    burned: dict[str, float] = {}

    def burn(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
        start = time.thread_time()
        while time.thread_time() - start < 0.3:
            sum(range(1000))
        burned[ctx.node_id] = time.thread_time() - start
        return {}

    started = time.monotonic()
    sampler = ProcessTreeSampler(os.getpid())
    sampler.sample()
    run(fan(node("a", "burn"), node("b", "burn")), activities={**BUILTIN, "burn": burn})
    sampler.sample()
    elapsed = time.monotonic() - started

    assert set(burned) == {"a", "b"}
    # CPU seconds measured for the process over the run >= the CPU both branch threads used.
    assert sampler.metrics().cpu_avg / 100 * elapsed >= sum(burned.values()) * 0.95


def foreach(items: Any, *body: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"id": "each", "activity": "control.foreach", "params": {"items": items, "nodes": list(body), **params}}


def test_foreach_parallel_runs_items_at_once_within_the_bound_and_keeps_their_order(run: WorkflowRun) -> None:
    probe = Probe()
    body = node("work", meet=2, value="{{ item * 10 }}")
    definition = {"nodes": [foreach(list(range(6)), body, parallel=2)], "outputs": {"r": "{{ nodes.each.results }}"}}
    outputs = run(definition, activities=probe.activities)

    assert outputs == {"r": [{"work": {"value": item * 10}} for item in range(6)]}
    assert probe.peak == 2
    assert {f"node each: item {index} of 6" for index in range(1, 7)} <= set(run.messages)


def test_foreach_parallel_one_is_sequential(run: WorkflowRun) -> None:
    probe = Probe()
    definition = {"nodes": [foreach([1, 2, 3], node("work", value="{{ item }}"))]}
    run(definition, activities=probe.activities)
    assert probe.peak == 1


def test_a_failing_item_fails_a_parallel_foreach_and_stops_the_other_items(run: WorkflowRun) -> None:
    probe = Probe()
    body = node("work", meet=2, hold="{{ 30 if item != 2 else 0 }}", fail="{{ 'bad item 2' if item == 2 else '' }}")
    definition = {"nodes": [foreach([1, 2, 3, 4, 5], body, parallel=2)]}
    started = time.monotonic()
    with pytest.raises(WorkflowFailed) as caught:
        run(definition, activities=probe.activities)

    assert time.monotonic() - started < 5
    assert str(caught.value) == "node each (control.foreach) failed: node work (probe) failed: bad item 2"
    assert len(probe.started) == 2  # items 3 to 5 never started


def test_continue_on_error_in_a_parallel_foreach_body_records_the_failure_and_goes_on(run: WorkflowRun) -> None:
    body = {**node("work", fail="{{ 'bad' if item == 1 else '' }}", value="{{ item }}"), "continueOnError": True}
    definition = {"nodes": [foreach([0, 1, 2], body, parallel=3)], "outputs": {"r": "{{ nodes.each.results }}"}}
    outputs = run(definition, activities=Probe().activities)

    assert outputs == {"r": [{"work": {"value": 0}}, {"work": {"error": "bad"}}, {"work": {"value": 2}}]}


def test_foreach_parallel_must_be_a_bounded_integer_when_rendered(run: WorkflowRun) -> None:
    definition = {
        "inputs": {"n": {"type": "integer"}},
        "nodes": [foreach([1], node("say", "log.message", message="x"), parallel="{{ inputs.n }}")],
    }
    with pytest.raises(WorkflowFailed, match=r"param 'parallel' must be >= 1"):
        run(definition, {"n": 0})


def test_concurrent_nodes_asking_for_the_same_cached_resource_share_one() -> None:
    scope = ExecutionScope()
    made: list[int] = []
    gate = threading.Barrier(8, timeout=5)

    def create() -> tuple[list[int], Callable[[], None]]:
        made.append(1)
        time.sleep(0.1)  # a slow creation: the other threads ask meanwhile
        return made, lambda: None

    def ask() -> None:
        gate.wait()
        scope.cached("sql:one", "sql", create, list)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert made == [1]
