"""`exekra executions list|show|logs|stop`."""

from __future__ import annotations

import argparse
from typing import Any

from exekra.cli_help import add_group
from exekra.client.models import Execution, LogLine
from exekra.clientcli.common import (
    EXIT_OK,
    client_command,
    client_for,
    command,
    print_json,
    print_json_line,
    print_page,
    print_table,
    shown_of_total,
)

CHILDREN_SHOWN = 20  # `executions show` lists at most this many sub-workflows; `list --parent` lists them all


def _row(e: Execution) -> list[Any]:
    return [e.id, e.workflow_name or e.workflow_id, e.status, e.trigger_type, e.created_at]


def _print_line(line: LogLine) -> None:
    print(f"{line.ts.strftime('%Y-%m-%d %H:%M:%S')} {line.level:<7} {line.message}")


@command
def list_executions(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        workflow_id = hub.find_workflow(args.workflow).id if args.workflow else None
        parent_id = hub.find_execution(args.parent).id if args.parent else None
        page = hub.list_executions(workflow_id=workflow_id, parent_id=parent_id, status=args.status, limit=args.limit)
    if args.json:
        print_page(page, "executions")
    else:
        print_table([_row(e) for e in page.items], ["ID", "WORKFLOW", "STATUS", "TRIGGER", "CREATED"])
        shown = shown_of_total(page)
        if shown:
            print(f"({shown}, newest first)")
    return EXIT_OK


@command
def show_execution(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        execution = hub.find_execution(args.execution)
        nodes = [] if args.json else hub.get_nodes(execution.id)  # --json prints the API's answer, as it is
        retried_as = None if args.json else hub.list_executions(retry_of=execution.id, limit=1).items
        children = [] if args.json else hub.list_executions(parent_id=execution.id, limit=CHILDREN_SHOWN).items
    if args.json:
        print_json({"execution": execution})
        return EXIT_OK
    fields = {
        "workflow": f"{execution.workflow_name} v{execution.version_number}",
        "status": execution.status,
        "trigger": f"{execution.trigger_type} by {execution.triggered_by_name or execution.triggered_by}",
        "runner": f"{execution.runner_name} ({execution.runner_id})" if execution.runner_name else execution.runner_id,
        "attempt": execution.attempt,
        "retry of": f"{execution.retry_of} (retry {execution.retry_attempt})" if execution.retry_of else None,
        "retried as": retried_as[0].id if retried_as else None,
        "parent": execution.parent_id,
        "concurrency key": execution.concurrency_key or None,
        "waiting": execution.waiting_reason,
        "queued": execution.queued_at,
        "started": execution.started_at,
        "completed": execution.completed_at,
        "error": execution.error,
    }
    print(execution.id)
    for name, value in fields.items():
        if value is not None:
            print(f"  {name}: {value}")
    metrics = execution.metrics
    if metrics.cpu_avg is not None:
        print(f"  cpu: avg {metrics.cpu_avg:.1f}% peak {metrics.cpu_peak or 0:.1f}%")
        print(f"  memory: avg {metrics.mem_avg_mb or 0:.0f} MB peak {metrics.mem_peak_mb or 0:.0f} MB")
    if children:
        print("  children:" + (f" (the newest {CHILDREN_SHOWN})" if len(children) == CHILDREN_SHOWN else ""))
        print_table([_row(e) for e in children], ["ID", "WORKFLOW", "STATUS", "TRIGGER", "CREATED"], indent="    ")
    print("  nodes:")
    print_table(
        [[n.id, n.activity, n.state, "" if n.duration_ms is None else f"{n.duration_ms} ms"] for n in nodes],
        ["NODE", "ACTIVITY", "STATE", "TOOK"],
        indent="    ",
    )
    print_json({"inputs": execution.inputs, "outputs": execution.outputs})
    return EXIT_OK


@command
def execution_logs(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        execution_id = hub.find_execution(args.execution).id
        if args.follow:
            for line in hub.follow_logs(execution_id):
                if args.json:
                    print_json_line(line)
                else:
                    _print_line(line)
            return EXIT_OK
        lines: list[LogLine] = []
        after = 0
        while True:
            page = hub.get_logs(execution_id, after_seq=after)
            lines.extend(page.lines)
            if not page.lines:
                break
            after = page.next_seq
    if args.json:
        print_json({"lines": lines, "nextSeq": after})
    else:
        for line in lines:
            _print_line(line)
    return EXIT_OK


@command
def stop_execution(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        execution = hub.stop_execution(hub.find_execution(args.execution).id)
    if args.json:
        print_json({"execution": execution})
    elif execution.status == "STOPPED":
        print(f"{execution.id} stopped")
    else:
        print(f"{execution.id}: stop requested; its runner stops it within a few seconds")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    parser = add_group(commands, "executions", "list, show, read the log of and stop executions")
    sub = parser.add_subparsers(dest="executions_command", required=True)

    p = client_command(
        sub,
        "list",
        "executions, newest first",
        [
            "exekra executions list --workflow invoices --status FAILED,STOPPED --limit 10",
            "exekra executions list --parent cae1a064",
            "exekra executions list --json",
        ],
        "Executions, newest first, with their workflow, status and trigger; --json prints the API's answer.",
    )
    p.add_argument("--workflow", help="only this workflow (name or ID)")
    p.add_argument("--status", help="only these statuses, comma-separated (e.g. FAILED,STOPPED)")
    p.add_argument("--parent", help="only the sub-workflows this execution started (ID or its first 6+ characters)")
    p.add_argument("--limit", type=int, default=20, help="at most this many (1-200, default 20)")
    p.set_defaults(func=list_executions)

    p = client_command(
        sub,
        "show",
        "an execution's details, inputs and outputs",
        ["exekra executions show cae1a064"],
        "An execution's status, who started it (a sub-workflow: its parent), the runner that ran it, times, "
        "metrics, the sub-workflows it started, inputs and outputs.",
    )
    p.add_argument("execution", help="execution ID, or its first 6+ characters")
    p.set_defaults(func=show_execution)

    p = client_command(
        sub,
        "logs",
        "an execution's log",
        ["exekra executions logs cae1a064", "exekra executions logs cae1a064 --follow"],
        "Print an execution's log; --follow keeps printing new lines until the execution ends.",
    )
    p.add_argument("execution", help="execution ID, or its first 6+ characters")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until it ends")
    p.set_defaults(func=execution_logs)

    p = client_command(
        sub,
        "stop",
        "stop an execution",
        ["exekra executions stop cae1a064"],
        "Stop an execution: at once when it waits for a runner, else its runner stops it within seconds.",
    )
    p.add_argument("execution", help="execution ID, or its first 6+ characters")
    p.set_defaults(func=stop_execution)
