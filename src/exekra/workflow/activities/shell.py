"""`shell.run`: run a command, streaming its output into the execution log."""

from __future__ import annotations

import os
import shlex
from typing import Annotated, Any

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.process import ProcessOutputs, completed, run_process
from exekra.workflow.activities.spec import Params, activity, either
from exekra.workflow.errors import ActivityError


class RunParams(Params):
    command: Annotated[str | list[Any], either("a string", "a list")]
    """The command: a string, or a list of arguments."""
    shell: bool | None = None
    """Run through /bin/sh (default: true for a string, false for a list)."""
    cwd: str = "."
    """The working folder (relative paths are under the workdir)."""
    env: dict[str, Any] = {}
    """Extra environment variables."""


@activity("shell.run", category="Scripts", params=RunParams, outputs=ProcessOutputs)
def run(ctx: ActivityContext, params: RunParams) -> dict[str, Any]:
    """Run `command` and wait for it; its output lines go to the log as they come (stderr at WARNING).

    A non-zero exit code fails the node (outputs kept, for `continueOnError`). A stop or the node's
    timeout kills the command's whole process group.
    """
    command = params.command
    use_shell = isinstance(command, str) if params.shell is None else params.shell
    if isinstance(command, list):
        if not command:
            raise ActivityError("param 'command' must not be empty")
        arguments = [str(argument) for argument in command]
        runnable: str | list[str] = shlex.join(arguments) if use_shell else arguments
    else:
        runnable = command if use_shell else shlex.split(command)
    env = {**os.environ, **{str(name): str(value) for name, value in params.env.items()}}
    return completed(*run_process(ctx, runnable, shell=use_shell, cwd=ctx.path(params.cwd), env=env))
