"""`shell.run`: run a command, streaming its output into the execution log."""

from __future__ import annotations

import os
import shlex
from typing import Any

from exekra.workflow.activities.context import ActivityContext, param
from exekra.workflow.activities.process import completed, run_process
from exekra.workflow.errors import ActivityError


def run(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Run `command` (string or list) in `cwd` with extra `env`; outputs `exitCode`, `stdout`, `stderr`.

    `shell` defaults to true for a string command (run by /bin/sh) and false for a list (run directly).
    """
    command = param(params, "command", (str, list))
    use_shell = param(params, "shell", bool, isinstance(command, str))
    if isinstance(command, list):
        if not command:
            raise ActivityError("param 'command' must not be empty")
        arguments = [str(argument) for argument in command]
        runnable: str | list[str] = shlex.join(arguments) if use_shell else arguments
    else:
        runnable = command if use_shell else shlex.split(command)
    cwd = ctx.path(param(params, "cwd", str, "."))
    extra_env = param(params, "env", dict, {})
    env = {**os.environ, **{str(name): str(value) for name, value in extra_env.items()}}
    return completed(*run_process(ctx, runnable, shell=use_shell, cwd=cwd, env=env))
