"""`exekra workflow list|show|push|publish|set-retry|set-limit|export|import`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from exekra.cli_errors import UsageError
from exekra.cli_help import add_group
from exekra.client import ExekraClient
from exekra.client.errors import NotFound
from exekra.client.models import RetryPolicy, Workflow, WorkflowWithVersion
from exekra.clientcli.common import (
    EXIT_OK,
    client_command,
    client_for,
    command,
    print_json,
    print_page,
    print_table,
    shown_of_total,
)

EXPORT_FORMAT = "exekra.workflow/v1"


def _read_json(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return data


def _summary(workflow: Workflow) -> list[Any]:
    return [workflow.name, workflow.published_version, workflow.latest_version, workflow.labels, workflow.id]


@command
def list_workflows(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        page = hub.list_workflows(q=args.search, archived=args.archived, limit=args.limit)
    if args.json:
        print_page(page, "workflows")
    else:
        print_table([_summary(w) for w in page.items], ["NAME", "PUBLISHED", "LATEST", "LABELS", "ID"])
        shown = shown_of_total(page)
        if shown:
            print(f"({shown}; use --limit or --search)")
    return EXIT_OK


@command
def show_workflow(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        workflow = hub.find_workflow(args.workflow)
    if args.json:
        print_json({"workflow": workflow})
        return EXIT_OK
    print(f"{workflow.name}  ({workflow.id})")
    if workflow.description:
        print(workflow.description)
    settings = {
        "published version": workflow.published_version,
        "runner type": workflow.runner_type,
        "labels": ", ".join(workflow.labels) or None,
        "priority": workflow.priority,
        "timeout": f"{workflow.timeout_seconds} s" if workflow.timeout_seconds else None,
        "retry": _retry_text(workflow.retry),
        "concurrency limit": _limit_text(workflow),
        "archived": "yes" if workflow.archived else None,
    }
    for name, value in settings.items():
        if value is not None:
            print(f"  {name}: {value}")
    print()
    rows = [[v.number, v.state, v.created_at] for v in workflow.versions or []]
    print_table(rows, ["VERSION", "STATE", "CREATED"])
    return EXIT_OK


def _retry_text(policy: RetryPolicy | None) -> str | None:
    if policy is None:
        return None
    return (
        f"{policy.attempts} time(s) on {', '.join(policy.on)}, after {policy.backoff_seconds:g} s "
        f"(x{policy.backoff_factor:g} each time)"
    )


@command
def set_retry(args: argparse.Namespace) -> int:
    if args.off:
        policy = None
    elif args.attempts is None:
        raise UsageError("give --attempts (and --backoff, --factor, --on), or --off")
    else:
        on = [kind.strip().upper() for kind in args.on.split(",") if kind.strip()]
        policy = {"attempts": args.attempts, "backoffSeconds": args.backoff, "backoffFactor": args.factor, "on": on}
    with client_for(args) as hub:
        workflow = hub.update_workflow(hub.find_workflow(args.workflow).id, retry=policy)
    if args.json:
        print_json({"workflow": workflow})
    else:
        print(f"{workflow.name}: retry {_retry_text(workflow.retry) or 'off'}")
    return EXIT_OK


def _limit_text(workflow: Workflow) -> str | None:
    if workflow.max_concurrent is None:
        return None
    per_key = f" per value of {workflow.concurrency_key}" if workflow.concurrency_key else ""
    return f"{workflow.max_concurrent} running at most{per_key}"


@command
def set_limit(args: argparse.Namespace) -> int:
    if args.off:
        changes: dict[str, Any] = {"maxConcurrent": None, "concurrencyKey": None}
    elif args.max is None:
        raise UsageError("give --max (and --key), or --off")
    elif args.max < 1:
        raise UsageError(f"--max must be 1 or more, not {args.max}")
    else:
        changes = {"maxConcurrent": args.max, "concurrencyKey": args.key or None}
    with client_for(args) as hub:
        workflow = hub.update_workflow(hub.find_workflow(args.workflow).id, **changes)
    if args.json:
        print_json({"workflow": workflow})
    else:
        print(f"{workflow.name}: concurrency limit {_limit_text(workflow) or 'off'}")
    return EXIT_OK


def _push(hub: ExekraClient, document: dict[str, Any], name: str | None) -> WorkflowWithVersion:
    """An export document is imported (a new version of the same-named workflow, or a new workflow);
    a bare definition becomes a new version of workflow `name`, or creates it."""
    if "format" in document or "export" in document:
        if name:
            body = document.get("export", document)
            document = {**body, "name": name}
        return hub.import_workflow(document, mode="new-version")
    if not name:
        raise UsageError("a bare definition needs --name (or push an export document, which names itself)")
    try:
        workflow = hub.find_workflow(name)
    except NotFound:
        return hub.create_workflow(name, document)
    version = hub.save_version(workflow.id, document)
    return WorkflowWithVersion(workflow=hub.get_workflow(workflow.id), version=version)


@command
def push_workflow(args: argparse.Namespace) -> int:
    document = _read_json(args.file)
    with client_for(args) as hub:
        result = _push(hub, document, args.name)
        if args.publish:
            result = hub.publish_workflow(result.workflow.id)
    if args.json:
        print_json(result)
    else:
        state = "published" if result.version.published else "saved as a draft"
        print(f"{result.workflow.name}: version {result.version.number} {state} ({result.workflow.id})")
    return EXIT_OK


@command
def publish_workflow(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        result = hub.publish_workflow(hub.find_workflow(args.workflow).id, args.version)
    if args.json:
        print_json(result)
    else:
        print(f"{result.workflow.name}: version {result.version.number} published")
    return EXIT_OK


@command
def export_workflow(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output and args.output != "-" else None
    if output is not None and not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: {output.parent} is not a directory")
    with client_for(args) as hub:
        document = hub.export_workflow(hub.find_workflow(args.workflow).id)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is not None:
        try:
            output.write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror}") from None
        if not args.json:
            print(f"exported {document['name']} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


@command
def import_workflow(args: argparse.Namespace) -> int:
    document = _read_json(args.file)
    with client_for(args) as hub:
        result = hub.import_workflow(document, mode=args.mode)
    if args.json:
        print_json(result)
    else:
        print(f"{result.workflow.name}: imported as version {result.version.number} (a draft) ({result.workflow.id})")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    workflow = add_group(
        commands, "workflow", "list, show, push, publish, set-retry, set-limit, export and import workflows"
    )
    sub = workflow.add_subparsers(dest="workflow_command", required=True)

    p = client_command(
        sub,
        "list",
        "list workflows",
        ["exekra workflow list", "exekra workflow list --search invoice --json"],
        "Workflows by name, with their published and latest version numbers, labels and IDs.",
    )
    p.add_argument("--search", help="text to find in name or description")
    p.add_argument("--archived", action="store_true", help="list archived workflows instead")
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-200, default 50)")
    p.set_defaults(func=list_workflows)

    p = client_command(
        sub,
        "show",
        "a workflow's settings and versions",
        ["exekra workflow show invoices"],
        "A workflow's settings and its versions with their state (draft, published, superseded).",
    )
    p.add_argument("workflow", help="name, ID, or the ID's first 6+ characters")
    p.set_defaults(func=show_workflow)

    p = client_command(
        sub,
        "push",
        "save a definition or export document as a new version (creating the workflow if needed)",
        ["exekra workflow push invoices.json --publish", "exekra workflow push definition.json --name invoices"],
        "Save a definition (with --name) or an export document as a new draft version, creating the workflow "
        "when it does not exist yet; --publish publishes it.",
    )
    p.add_argument("file", help="JSON file: a definition, or an export document (`-` for standard input)")
    p.add_argument("--name", help="workflow name (required for a bare definition)")
    p.add_argument("--publish", action="store_true", help="publish the new version")
    p.set_defaults(func=push_workflow)

    p = client_command(
        sub,
        "publish",
        "publish the latest draft, or roll back to an earlier version",
        ["exekra workflow publish invoices", "exekra workflow publish invoices --version 3"],
        "Publish the workflow's latest draft, or with --version any version that is not the published one (an "
        "earlier one: a rollback): new executions run it; the version published before is superseded; executions "
        "already created keep their version.",
    )
    p.add_argument("workflow", help="name, ID, or the ID's first 6+ characters")
    p.add_argument("--version", type=int, help="the version number to publish (default: the latest draft)")
    p.set_defaults(func=publish_workflow)

    p = client_command(
        sub,
        "set-retry",
        "set or clear the automatic retry of failed executions",
        [
            "exekra workflow set-retry invoices --attempts 3 --backoff 30 --factor 2 --on FAILED,TIMEOUT",
            "exekra workflow set-retry invoices --off",
        ],
        "Set the workflow's retry policy: a failed execution of a kind in --on (FAILED, TIMEOUT, RUNNER_LOST) is "
        "run again by the hub, as a new execution of the same version with the same inputs, up to --attempts "
        "times; the n-th retry (from 0) waits --backoff * --factor^n seconds. A stopped execution is never retried.",
    )
    p.add_argument("workflow", help="name, ID, or the ID's first 6+ characters")
    p.add_argument("--attempts", type=int, help="retries at most (1-10)")
    p.add_argument("--backoff", type=float, default=0, help="seconds before the first retry (0-86400, default 0)")
    p.add_argument("--factor", type=float, default=1, help="each further retry waits this much longer (1-10)")
    p.add_argument(
        "--on", default="FAILED", help="comma-separated kinds: FAILED, TIMEOUT, RUNNER_LOST (default FAILED)"
    )
    p.add_argument("--off", action="store_true", help="clear the policy: no automatic retries")
    p.set_defaults(func=set_retry)

    p = client_command(
        sub,
        "set-limit",
        "set or clear the workflow's concurrency limit",
        [
            "exekra workflow set-limit nightly-sync --max 1",
            "exekra workflow set-limit invoices --max 3 --key '{{ inputs.customer }}'",
            "exekra workflow set-limit invoices --off",
        ],
        "At most --max executions of the workflow are ASSIGNED or RUNNING at once (per value of --key, a template "
        "over the inputs evaluated when an execution is created); the others stay QUEUED, with the reason shown, "
        "and start by priority, then age, when one ends. A limit set now counts what already runs; a new --key "
        "applies to executions created from now on.",
    )
    p.add_argument("workflow", help="name, ID, or the ID's first 6+ characters")
    p.add_argument("--max", type=int, help="executions running at once at most (1-10000)")
    p.add_argument("--key", help="concurrency key: a template over the inputs, e.g. '{{ inputs.customer }}'")
    p.add_argument("--off", action="store_true", help="clear the limit and the key: no limit")
    p.set_defaults(func=set_limit)

    p = client_command(
        sub,
        "export",
        f"write the portable document ({EXPORT_FORMAT})",
        ["exekra workflow export invoices -o invoices.json"],
        f"Write the workflow's settings and latest definition as a portable document ({EXPORT_FORMAT}), for "
        "`exekra workflow import` or `push` on another hub.",
    )
    p.add_argument("workflow", help="name, ID, or the ID's first 6+ characters")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.set_defaults(func=export_workflow)

    p = client_command(
        sub,
        "import",
        "create a workflow (or a new version) from an export",
        ["exekra workflow import invoices.json", "exekra workflow import invoices.json --mode new-version"],
        "Create a workflow from an export document, or (--mode new-version) add it as a draft of the same-named "
        "workflow.",
    )
    p.add_argument("file", help="export document (`-` for standard input)")
    p.add_argument(
        "--mode",
        choices=["create", "new-version"],
        default="create",
        help="create: a new workflow (default); new-version: a draft of the same-named workflow",
    )
    p.set_defaults(func=import_workflow)
