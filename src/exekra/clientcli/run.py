"""`exekra run WORKFLOW [--input k=v ...] [--wait]`: start an execution and, with --wait, follow it.

While waiting, the execution's log lines are printed as they arrive and its status is shown (a status line
on a terminal, one line per change otherwise), all on standard error; the result goes to standard output.
The exit code says how it ended: 0 COMPLETED, 1 FAILED, 2 STOPPED (or still running at --timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any, TextIO

from exekra.client import AsyncExekraClient, ExekraClient
from exekra.client.models import Execution, LogLine, Workflow
from exekra.clientcli.common import (
    EXIT_FAILED,
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    client_command,
    client_for,
    command,
    input_pairs,
    parse_inputs,
    print_json,
)

STATUS_POLL_SECONDS = 2.0
EXIT_CODES = {"COMPLETED": EXIT_OK, "FAILED": EXIT_FAILED}


def exit_code(execution: Execution) -> int:
    """0 COMPLETED, 1 FAILED, 2 anything else (STOPPED, or not ended)."""
    return EXIT_CODES.get(execution.status, EXIT_NOT_COMPLETED)


def _published_definition(hub: ExekraClient, workflow: Workflow) -> dict[str, Any]:
    if workflow.published_version is None:
        return {}  # the hub refuses the run and says why
    return hub.get_version(workflow.id, workflow.published_version).definition or {}


def _declared_types(definition: dict[str, Any]) -> dict[str, str]:
    """The definition's input types, so that `--input n=3` sends 3 to an integer input."""
    declared = definition.get("inputs") or {}
    return {name: str(spec.get("type")) for name, spec in declared.items() if isinstance(spec, dict)}


def _warn_undeclared(workflow: Workflow, definition: dict[str, Any], inputs: dict[str, Any]) -> None:
    """One line on standard error naming the inputs the published version does not declare (a typo?)."""
    from exekra.workflow.definition import undeclared_inputs  # only when running: the engine is slow to import

    unknown = undeclared_inputs(definition, inputs)
    if not unknown or not definition:
        return
    names = ", ".join(repr(name) for name in unknown)
    declared = ", ".join(definition.get("inputs") or {}) or "none"
    refused = "; it refuses them (strictInputs)" if definition.get("strictInputs") else "; they are passed on as given"
    print(
        f"exekra run: warning: {workflow.name} v{workflow.published_version} does not declare {names} "
        f"(it declares: {declared}){refused}",
        file=sys.stderr,
    )


@command
def run_workflow(args: argparse.Namespace) -> int:
    pairs = input_pairs(args.input)
    with client_for(args) as hub:
        workflow = hub.find_workflow(args.workflow)
        definition = _published_definition(hub, workflow)
        inputs = parse_inputs(pairs, _declared_types(definition))
        _warn_undeclared(workflow, definition, inputs)
        created = hub.run(
            workflow.id,
            inputs,
            priority=args.priority,
            runner_id=hub.find_runner(args.runner).id if args.runner else None,
            idempotency_key=args.idempotency_key,
        )
    execution = created.execution
    if not args.wait:
        if args.json:
            print_json(created)
        else:
            note = " (an earlier execution with this idempotency key)" if created.duplicate else ""
            print(f"{execution.id}  {execution.status}{note}")
        return EXIT_OK
    progress = Progress(sys.stderr, show_logs=not args.no_logs)
    try:
        final = asyncio.run(follow(args, execution, progress))
    except TimeoutError:
        progress.finish()
        print(f"exekra: still not ended after {args.timeout} s: {execution.id}", file=sys.stderr)
        return EXIT_NOT_COMPLETED
    except KeyboardInterrupt:
        progress.finish()
        print(f"\nstopped waiting; the execution goes on: `exekra executions stop {execution.id}`", file=sys.stderr)
        raise
    progress.finish()
    report(final, args.json)
    return exit_code(final)


async def follow(args: argparse.Namespace, execution: Execution, progress: Progress) -> Execution:
    """Stream the log and watch the status until the execution ends; returns it as it ended."""
    async with AsyncExekraClient.from_config(args.hub_url) as hub:
        progress.status(execution)

        async def watch_status() -> None:
            while True:
                await asyncio.sleep(STATUS_POLL_SECONDS)
                progress.status(await hub.get_execution(execution.id))

        async def stream_logs() -> None:
            async for line in hub.follow_logs(execution.id):
                if not progress.runner_shown:  # say which runner runs it before the first line it wrote
                    progress.status(await hub.get_execution(execution.id))
                progress.log(line)

        watcher = asyncio.create_task(watch_status())
        try:
            async with asyncio.timeout(args.timeout):
                await stream_logs()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return await hub.get_execution(execution.id)


def report(execution: Execution, as_json: bool) -> None:
    """The result on standard output."""
    if as_json:
        print_json({"execution": execution})
        return
    took = ""
    if execution.started_at and execution.completed_at:
        took = f" in {(execution.completed_at - execution.started_at).total_seconds():.1f} s"
    print(f"{execution.status}{took}  ({execution.id})")
    if execution.error:
        print(f"error: {execution.error}")
    if execution.outputs:
        print_json({"outputs": execution.outputs})


class Progress:
    """The status display and the live log, on a stream (standard error)."""

    def __init__(self, stream: TextIO, *, show_logs: bool) -> None:
        self.stream = stream
        self.show_logs = show_logs
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.current = ""
        self.runner_shown = False
        self._line_shown = False

    def status(self, execution: Execution) -> None:
        runner = execution.runner_name or execution.runner_id
        text = execution.status + (f" on runner {runner}" if runner else "")
        self.runner_shown = self.runner_shown or runner is not None
        if self.tty:
            self._clear()
            self.stream.write(f"… {text}  {time.monotonic() - self.started:.0f}s")
            self.stream.flush()
            self._line_shown = True
        elif text != self.current:
            self.stream.write(f"[{execution.status}]{text[len(execution.status) :]}\n")
            self.stream.flush()
        self.current = text

    def log(self, line: LogLine) -> None:
        if not self.show_logs:
            return
        self._clear()
        level = "" if line.level == "INFO" else f"{line.level}: "
        self.stream.write(f"{line.ts.strftime('%H:%M:%S')} {level}{line.message}\n")
        self.stream.flush()

    def finish(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._line_shown:
            self.stream.write("\r\033[K")
            self._line_shown = False


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    p = client_command(
        commands,
        "run",
        "start an execution of a workflow's published version (--wait: follow it to the end)",
        [
            "exekra run example-hello",
            "exekra run invoices -i month=2025-01 -i retries=3 --wait",
            'exekra run invoices -i \'tags:=["a","b"]\' --wait --json',
        ],
        "Start an execution of a workflow's published version and print its ID; with --wait, follow it to "
        "the end.\n\n" + (__doc__ or "").split("\n\n", 1)[1].strip(),
    )
    p.add_argument("workflow", help="workflow name, ID, or the ID's first 6+ characters")
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an input: name=value (typed by the workflow's declared inputs) or name:=<json>; repeatable",
    )
    p.add_argument("--priority", type=int, help="0-9 (default: the workflow's)")
    p.add_argument("--runner", help="pin the execution to this runner (name, ID, or the ID's first 6+ characters)")
    p.add_argument("--idempotency-key", help="a repeated key returns the first execution instead of a new one")
    p.add_argument("--wait", action="store_true", help="follow the execution; the exit code says how it ended")
    p.add_argument("--timeout", type=float, help="with --wait: give up waiting after this many seconds")
    p.add_argument("--no-logs", action="store_true", help="with --wait: do not print the log")
    p.set_defaults(func=run_workflow)
