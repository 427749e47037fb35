"""`shell.run` and `python.run`: outputs, live streaming, exit codes, process-group kill."""

from __future__ import annotations

import os
import threading

import pytest
from workflow_support import ActivityCall, process_gone

from exekra.workflow.activities import python, shell
from exekra.workflow.errors import ActivityError


def cancel_after(call: ActivityCall, seconds: float) -> threading.Timer:
    """Guard against a hang: cancel the call after `seconds` if the test's event never comes."""
    timer = threading.Timer(seconds, call.ctx.cancelled.set)
    timer.start()
    return timer


def test_shell_string_command_runs_in_a_shell(call: ActivityCall) -> None:
    outputs = shell.run(call.ctx, {"command": "echo out; echo err >&2; echo $((1 + 2))"})

    assert outputs == {"exitCode": 0, "stdout": "out\n3\n", "stderr": "err\n"}
    assert ("INFO", "out") in call.lines and ("WARNING", "err") in call.lines and ("INFO", "3") in call.lines


def test_shell_list_command_runs_without_a_shell(call: ActivityCall) -> None:
    outputs = shell.run(call.ctx, {"command": ["printf", "%s|", "a b", "$HOME", 7]})
    assert outputs["stdout"] == "a b|$HOME|7|"


def test_shell_cwd_and_env(call: ActivityCall) -> None:
    (call.ctx.workdir / "sub").mkdir()
    outputs = shell.run(
        call.ctx, {"command": "pwd; echo $GREETING $PATH_SET", "cwd": "sub", "env": {"GREETING": "hi", "PATH_SET": 1}}
    )

    assert outputs["stdout"] == f"{call.ctx.workdir / 'sub'}\nhi 1\n"


def test_shell_string_without_shell_is_split_into_arguments(call: ActivityCall) -> None:
    outputs = shell.run(call.ctx, {"command": "printf '%s|' 'a b' c", "shell": False})
    assert outputs["stdout"] == "a b|c|"


def test_shell_non_zero_exit_fails_and_keeps_the_outputs(call: ActivityCall) -> None:
    with pytest.raises(ActivityError) as caught:
        shell.run(call.ctx, {"command": "echo before; exit 4"})

    assert str(caught.value) == "exit code 4"
    assert caught.value.outputs == {"exitCode": 4, "stdout": "before\n", "stderr": ""}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "param 'command' is required"),
        ({"command": []}, "param 'command' must not be empty"),
        ({"command": 5}, "param 'command' must be a string or a list"),
        ({"command": "true", "shell": "yes"}, "param 'shell' must be a boolean"),
    ],
)
def test_shell_param_errors(call: ActivityCall, params: dict[str, object], message: str) -> None:
    with pytest.raises(ActivityError, match=f"^{message}$"):
        shell.run(call.ctx, params)


def test_shell_missing_program_fails_to_start(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^cannot start"):
        shell.run(call.ctx, {"command": ["definitely-not-a-program-xyz"]})


def test_shell_streams_lines_as_they_are_produced(call: ActivityCall) -> None:
    # The command only finishes after the test saw its first line and answered by creating `go`.
    go = call.ctx.workdir / "go"
    call.on_emit = lambda level, message: go.touch() if message == "first" else None
    timer = cancel_after(call, 10)
    outputs = shell.run(call.ctx, {"command": "echo first; while [ ! -f go ]; do sleep 0.01; done; echo second"})
    timer.cancel()

    assert outputs["stdout"] == "first\nsecond\n"


def test_shell_cancel_kills_the_process_group(call: ActivityCall) -> None:
    call.on_emit = lambda level, message: call.ctx.cancelled.set()
    with pytest.raises(ActivityError, match=r"^interrupted: process killed$"):
        shell.run(call.ctx, {"command": "sleep 30 & echo $!; wait"})

    assert process_gone(int(call.lines[0][1]))


def test_shell_background_leftovers_are_killed_when_the_command_ends(call: ActivityCall) -> None:
    outputs = shell.run(call.ctx, {"command": "sleep 30 >/dev/null 2>&1 & echo $!"})
    assert process_gone(int(outputs["stdout"]))


def test_python_result_args_and_output(call: ActivityCall) -> None:
    script = "import sys\nprint('hello', flush=False)\nprint('oops', file=sys.stderr)\nresult = {'args': sys.argv[1:], 'n': 2}\n"
    outputs = python.run(call.ctx, {"script": script, "args": ["a", 2]})

    assert outputs == {"exitCode": 0, "stdout": "hello\n", "stderr": "oops\n", "result": {"args": ["a", "2"], "n": 2}}
    assert ("INFO", "hello") in call.lines and ("WARNING", "oops") in call.lines


def test_python_runs_in_the_workdir_as_main(call: ActivityCall) -> None:
    outputs = python.run(call.ctx, {"script": "import os\nresult = [os.getcwd(), __name__]"})
    assert outputs["result"] == [str(call.ctx.workdir), "__main__"]


def test_python_without_result_gives_null(call: ActivityCall) -> None:
    assert python.run(call.ctx, {"script": "x = 1"})["result"] is None


def test_python_exception_fails_with_the_traceback_on_stderr(call: ActivityCall) -> None:
    with pytest.raises(ActivityError) as caught:
        python.run(call.ctx, {"script": "result = 1\nraise ValueError('bad input')"})

    assert str(caught.value) == "exit code 1"
    assert caught.value.outputs["result"] is None
    assert 'step.py", line 2' in caught.value.outputs["stderr"]
    assert "ValueError: bad input" in caught.value.outputs["stderr"]


def test_python_exit_code_is_reported(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^exit code 3$"):
        python.run(call.ctx, {"script": "import sys\nsys.exit(3)"})


def test_python_result_must_be_json_serialisable(call: ActivityCall) -> None:
    with pytest.raises(ActivityError) as caught:
        python.run(call.ctx, {"script": "result = object()"})
    assert "is not JSON serializable" in caught.value.outputs["stderr"]


def test_python_streams_output_as_printed(call: ActivityCall) -> None:
    go = call.ctx.workdir / "go"
    call.on_emit = lambda level, message: go.touch() if message == "first" else None
    timer = cancel_after(call, 10)
    script = "import os, time\nprint('first')\nwhile not os.path.exists('go'):\n    time.sleep(0.01)\nresult = 'done'"
    outputs = python.run(call.ctx, {"script": script})
    timer.cancel()

    assert outputs["result"] == "done"


def test_python_leaves_no_temporary_files(call: ActivityCall) -> None:
    outputs = python.run(call.ctx, {"script": "import sys\nresult = sys.argv[0]"})
    assert not os.path.exists(outputs["result"])
