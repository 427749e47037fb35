"""The engine: branching, joins, retries, continueOnError, timeouts, stop, masking, foreach."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from workflow_support import WorkflowRun, chain, process_gone

from exekra.workflow import WorkflowFailed, WorkflowStopped, run_workflow
from exekra.workflow.activities import BUILTIN, ActivityContext


def log(node_id: str, message: str) -> dict[str, Any]:
    return {"id": node_id, "activity": "log.message", "params": {"message": message}}


def branching(condition: str) -> dict[str, Any]:
    return {
        "inputs": {"ok": {"type": "boolean", "required": True}},
        "nodes": [
            {"id": "check", "activity": "control.if", "params": {"condition": condition}},
            log("yes", "took the true branch"),
            {"id": "fail", "activity": "control.fail", "params": {"message": "took the false branch"}},
        ],
        "edges": [{"from": "check", "to": "yes", "when": "true"}, {"from": "check", "to": "fail", "when": "false"}],
        "outputs": {"branch": "{{ nodes.check.result }}", "yes": "{{ nodes.yes is defined }}"},
    }


def test_control_if_true_follows_the_true_edge_only(run: WorkflowRun) -> None:
    outputs = run(branching("{{ inputs.ok }}"), {"ok": True})

    assert outputs == {"branch": True, "yes": True}
    assert "took the true branch" in run.messages
    assert run.events == [
        ("check", "started"),
        ("check", "completed"),
        ("fail", "skipped"),  # as soon as the branch is chosen
        ("yes", "started"),
        ("yes", "completed"),
    ]
    assert ("INFO", "node fail (control.fail) skipped: no edge into it was taken") in run.lines


def test_control_if_false_follows_the_false_edge_and_the_failure_names_the_node(run: WorkflowRun) -> None:
    with pytest.raises(WorkflowFailed) as caught:
        run(branching("{{ inputs.ok }}"), {"ok": False})

    assert str(caught.value) == "node fail (control.fail) failed: took the false branch"
    assert caught.value.node_id == "fail"
    assert ("ERROR", "node fail (control.fail) failed: took the false branch") in run.lines
    assert "took the true branch" not in run.messages


def test_node_start_and_end_lines(run: WorkflowRun) -> None:
    run(chain(log("hello", "hi")))

    assert run.lines[0] == ("INFO", "node hello (log.message) started")
    assert run.lines[1] == ("INFO", "hi")
    assert re.fullmatch(r"node hello \(log\.message\) completed in \d+ ms", run.lines[2][1])


def test_every_line_names_its_node_and_the_start_and_end_are_marked(run: WorkflowRun) -> None:
    run(chain(log("hello", "hi"), log("bye", "ciao")))

    assert [(node, event) for node, event, _ in run.marks] == [
        ("hello", "started"),
        ("hello", None),  # the activity's own line belongs to its node, without an event
        ("hello", "completed"),
        ("bye", "started"),
        ("bye", None),
        ("bye", "completed"),
    ]


def test_a_failed_node_is_marked_failed_and_the_nodes_after_it_get_no_event(run: WorkflowRun) -> None:
    definition = chain({"id": "boom", "activity": "control.fail", "params": {"message": "no"}}, log("after", "never"))
    with pytest.raises(WorkflowFailed):
        run(definition)

    assert run.events == [("boom", "started"), ("boom", "failed")]


def test_continue_on_error_marks_the_node_failed_and_goes_on(run: WorkflowRun) -> None:
    failing = {"id": "boom", "activity": "control.fail", "params": {"message": "no"}, "continueOnError": True}
    run(chain(failing, log("after", "still here")))

    assert run.events == [("boom", "started"), ("boom", "failed"), ("after", "started"), ("after", "completed")]


def test_a_foreach_body_logs_under_the_foreach_node_without_events_of_its_own(run: WorkflowRun) -> None:
    loop = {
        "id": "each",
        "activity": "control.foreach",
        "params": {"items": [1, 2], "nodes": [log("say", "item {{ item }}")]},
    }
    run(chain(loop))

    assert run.events == [("each", "started"), ("each", "completed")]
    body = [(node, message) for node, event, message in run.marks if event is None]
    assert ("each", "item 1") in body and ("each", "item 2") in body
    assert {node for node, _ in body} == {"each"}


def test_a_join_runs_after_all_its_predecessors(run: WorkflowRun) -> None:
    definition = {
        "nodes": [
            log("d", "d sees {{ nodes.c.value }}"),
            log("a", "a"),
            log("b", "b"),
            {"id": "c", "activity": "vars.set", "params": {"name": "c", "value": "c-value"}},
        ],
        "edges": [
            {"from": "a", "to": "b"},
            {"from": "b", "to": "c"},
            {"from": "c", "to": "d"},
            {"from": "a", "to": "d"},
        ],
    }
    run(definition)

    started = [message.split()[1] for message in run.messages if message.endswith("started")]
    assert started == ["a", "b", "c", "d"]
    assert "d sees c-value" in run.messages


def test_inputs_vars_and_execution_reach_templates(run: WorkflowRun) -> None:
    definition = chain(
        {"id": "set", "activity": "vars.set", "params": {"name": "greeting", "value": "hello {{ inputs.who }}"}},
        log("say", "{{ vars.greeting }} from {{ execution.id }} attempt {{ execution.attempt }}"),
        inputs={"who": {"type": "string", "default": "world"}},
        outputs={"greeting": "{{ vars.greeting }}", "count": "{{ inputs.n }}"},
    )
    outputs = run(definition, {"n": 4})

    assert outputs == {"greeting": "hello world", "count": 4}
    assert "hello world from exec-1 attempt 2" in run.messages


def test_invalid_definition_and_inputs_fail_before_anything_runs(run: WorkflowRun) -> None:
    with pytest.raises(WorkflowFailed, match=r"^invalid workflow: node 'a': unknown activity 'nope'$"):
        run({"nodes": [{"id": "a", "activity": "nope"}]})
    with pytest.raises(WorkflowFailed, match=r"^invalid workflow: input 'n' is required$"):
        run(chain(log("a", "x"), inputs={"n": {"type": "integer", "required": True}}))
    assert run.lines == []


def test_an_output_expression_error_fails_the_workflow(run: WorkflowRun) -> None:
    with pytest.raises(WorkflowFailed) as caught:
        run(chain(log("a", "x"), outputs={"x": "{{ nodes.a.missing }}"}))
    assert (
        str(caught.value)
        == "outputs.x: cannot evaluate '{{ nodes.a.missing }}': 'dict object' has no attribute 'missing'"
    )


def test_a_param_expression_error_fails_the_node(run: WorkflowRun) -> None:
    with pytest.raises(WorkflowFailed) as caught:
        run(chain(log("a", "{{ inputs.nope }}")))
    assert str(caught.value) == (
        "node a (log.message) failed: node 'a': params.message: cannot evaluate '{{ inputs.nope }}': "
        "'dict object' has no attribute 'nope'"
    )


def flaky_script(failures: int) -> str:
    """A shell command failing `failures` times (counted in a file in the workdir), then succeeding."""
    return f'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ "$n" -ge {failures} ] && echo ok'


def test_retries_back_off_exponentially_then_succeed(run: WorkflowRun) -> None:
    node = {
        "id": "flaky",
        "activity": "shell.run",
        "params": {"command": flaky_script(2)},
        "retries": 3,
        "retryDelaySeconds": 0.01,
    }
    outputs = run(chain(node, outputs={"out": "{{ nodes.flaky.stdout }}"}))

    assert outputs == {"out": "ok\n"}
    retries = [message for level, message in run.lines if level == "WARNING"]
    assert retries == [
        "node flaky (shell.run) attempt 1 of 4 failed: exit code 1; retrying in 0.01 s",
        "node flaky (shell.run) attempt 2 of 4 failed: exit code 1; retrying in 0.02 s",
    ]


def test_retries_exhausted_fail_the_workflow(run: WorkflowRun) -> None:
    node = {
        "id": "flaky",
        "activity": "shell.run",
        "params": {"command": flaky_script(5)},
        "retries": 1,
        "retryDelaySeconds": 0,
    }

    with pytest.raises(WorkflowFailed, match=r"^node flaky \(shell.run\) failed: exit code 1$"):
        run(chain(node))
    assert (run.workdir / "count").read_text().strip() == "2"


def test_continue_on_error_records_the_error_and_outputs_and_goes_on(run: WorkflowRun) -> None:
    failing = {
        "id": "bad",
        "activity": "shell.run",
        "params": {"command": "echo partial; exit 3"},
        "continueOnError": True,
    }
    definition = chain(
        failing,
        log("after", "bad said {{ nodes.bad.stdout | trim }} and {{ nodes.bad.error }}"),
        outputs={"exitCode": "{{ nodes.bad.exitCode }}"},
    )
    outputs = run(definition)

    assert outputs == {"exitCode": 3}
    assert ("WARNING", "node bad (shell.run) failed: exit code 3 (continueOnError)") in run.lines
    assert "bad said partial and exit code 3" in run.messages


def test_a_subprocess_timeout_fails_fast_and_leaves_no_process(run: WorkflowRun) -> None:
    node = {
        "id": "slow",
        "activity": "shell.run",
        "params": {"command": "sleep 30 & echo $! > sleep.pid; wait"},
        "timeoutSeconds": 1,
    }
    started = time.monotonic()
    with pytest.raises(WorkflowFailed, match=r"^node slow \(shell.run\) failed: timed out after 1 s$"):
        run(chain(node))

    assert time.monotonic() - started < 5
    assert process_gone(int((run.workdir / "sleep.pid").read_text()))


def test_a_thread_activity_timeout_fails_the_node(run: WorkflowRun) -> None:
    node = {"id": "wait", "activity": "control.delay", "params": {"seconds": 30}, "timeoutSeconds": 0.1}

    with pytest.raises(WorkflowFailed, match=r"^node wait \(control.delay\) failed: timed out after 0.1 s$"):
        run(chain(node))


def stop_when_started(run: WorkflowRun, node_id: str) -> threading.Event:
    stop = threading.Event()
    run.on_emit = lambda level, message: stop.set() if message.startswith(f"node {node_id} ") else None
    return stop


def test_stop_kills_the_running_process_and_raises_stopped(run: WorkflowRun) -> None:
    node = {"id": "slow", "activity": "shell.run", "params": {"command": "echo $$ > shell.pid; sleep 30"}}
    stop = stop_when_started(run, "slow")

    with pytest.raises(WorkflowStopped):
        run(chain(node, log("never", "not reached")), should_stop=stop.is_set)

    assert process_gone(int((run.workdir / "shell.pid").read_text()))
    assert ("WARNING", "node slow (shell.run) stopped") in run.lines
    assert "not reached" not in run.messages
    assert run.events == [("slow", "started"), ("slow", "stopped")]


def test_stop_interrupts_a_delay(run: WorkflowRun) -> None:
    stop = stop_when_started(run, "wait")
    started = time.monotonic()

    with pytest.raises(WorkflowStopped):
        run(chain({"id": "wait", "activity": "control.delay", "params": {"seconds": 30}}), should_stop=stop.is_set)
    assert time.monotonic() - started < 5


def test_a_stop_requested_before_the_run_runs_nothing(run: WorkflowRun) -> None:
    with pytest.raises(WorkflowStopped):
        run(chain(log("a", "x")), should_stop=lambda: True)
    assert run.lines == []


def test_credential_values_are_masked_in_logs_errors_and_outputs(run: WorkflowRun) -> None:
    credentials = {"api": {"user": "robot", "token": "s3cr3t-token"}, "key": {"pem": "-----BEGIN-----\nAAAA1111\n"}}
    definition = chain(
        {
            "id": "echo",
            "activity": "shell.run",
            "params": {"command": "echo {{ credentials.api.token }}; printf 'x\\nAAAA1111\\n' >&2"},
        },
        log("say", "as {{ credentials.api.user }}"),
        {"id": "boom", "activity": "control.fail", "params": {"message": "bad token {{ credentials.api.token }}"}},
        outputs={"t": "{{ credentials.api.token }}"},
    )
    with pytest.raises(WorkflowFailed) as caught:
        run(definition, credentials=credentials)

    assert str(caught.value) == "node boom (control.fail) failed: bad token ***"
    assert ("INFO", "***") in run.lines and ("WARNING", "***") in run.lines and ("INFO", "as ***") in run.lines
    assert not any("s3cr3t" in message or "robot" in message or "AAAA1111" in message for message in run.messages)

    definition["nodes"] = definition["nodes"][:2]
    definition["edges"] = definition["edges"][:1]
    assert run(definition, credentials=credentials) == {"t": "***"}


def foreach(items: str, *nodes: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"id": "each", "activity": "control.foreach", "params": {"items": items, "nodes": list(nodes)}, **options}


def test_foreach_runs_the_sub_nodes_per_item_and_collects_results(run: WorkflowRun) -> None:
    definition = chain(
        {"id": "prefix", "activity": "vars.set", "params": {"name": "prefix", "value": ">"}},
        foreach(
            "{{ inputs.names }}",
            {"id": "greet", "activity": "vars.set", "params": {"name": "last", "value": "{{ vars.prefix }}{{ item }}"}},
            log("say", "{{ index }}: {{ nodes.greet.value }}"),
        ),
        outputs={
            "results": "{{ nodes.each.results }}",
            "last": "{{ vars.last }}",
            "inner": "{{ nodes.greet is defined }}",
        },
    )
    outputs = run(definition, {"names": ["ada", "bob"]})

    assert outputs == {
        "results": [{"greet": {"value": ">ada"}, "say": {}}, {"greet": {"value": ">bob"}, "say": {}}],
        "last": ">bob",
        "inner": False,
    }
    assert "0: >ada" in run.messages and "1: >bob" in run.messages
    assert "node each: item 2 of 2" in run.messages


def test_a_failing_sub_node_fails_the_foreach(run: WorkflowRun) -> None:
    definition = chain(
        foreach(
            "{{ [1, 2, 3] }}", {"id": "check", "activity": "control.fail", "params": {"message": "bad item {{ item }}"}}
        )
    )
    with pytest.raises(WorkflowFailed) as caught:
        run(definition)

    assert str(caught.value) == "node each (control.foreach) failed: node check (control.fail) failed: bad item 1"
    assert caught.value.node_id == "each"


def test_a_foreach_timeout_stops_its_running_sub_node(run: WorkflowRun) -> None:
    body = {"id": "slow", "activity": "shell.run", "params": {"command": "echo $$ > shell.pid; sleep 30"}}
    started = time.monotonic()

    with pytest.raises(WorkflowFailed, match=r"timed out after 0.5 s"):
        run(chain(foreach("{{ [1] }}", body, timeoutSeconds=0.5)))
    assert time.monotonic() - started < 5
    assert process_gone(int((run.workdir / "shell.pid").read_text()))


def test_plugin_activities_and_unexpected_exceptions(tmp_path: Path) -> None:
    def explode(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("surprise")

    def answer(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
        return {"answer": params["question"] * 2}

    def run_with(definition: dict[str, Any]) -> dict[str, Any]:
        return run_workflow(
            definition,
            {},
            execution={"id": "e", "attempt": 1},
            credentials={},
            workdir=tmp_path,
            emit=lambda level, message, **_: None,
            activities={**BUILTIN, "acme.answer": answer, "acme.explode": explode},
        )

    answered = chain(
        {"id": "q", "activity": "acme.answer", "params": {"question": 21}}, outputs={"a": "{{ nodes.q.answer }}"}
    )
    assert run_with(answered) == {"a": 42}
    with pytest.raises(WorkflowFailed, match=r"^node boom \(acme.explode\) failed: KeyError: 'surprise'$"):
        run_with(chain({"id": "boom", "activity": "acme.explode"}))
