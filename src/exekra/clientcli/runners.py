"""`exekra runners list|register`."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from exekra.cli_help import add_group
from exekra.clientcli.common import (
    EXIT_OK,
    client_command,
    client_for,
    command,
    print_json,
    print_page,
    print_table,
)


@command
def list_runners(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        page = hub.list_runners(status=args.status, limit=args.limit)
    if args.json:
        print_page(page, "runners")
        return EXIT_OK
    rows = [
        [r.name, r.status + ("" if r.enabled else " (disabled)"), r.type, r.labels, r.metrics.cpu_percent, r.id]
        for r in page.items
    ]
    print_table(rows, ["NAME", "STATUS", "TYPE", "LABELS", "CPU%", "ID"])
    return EXIT_OK


@command
def register_runner(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        registration = hub.register_runner(args.name, type=args.type, labels=args.label or None)
        hub_url = hub.hub_url
    if args.json:
        print_json(registration)
        return EXIT_OK
    print(f"Registered runner {registration.runner.name} ({registration.runner.id}).")
    print("The machine secret is shown only now. Start the runner on its machine with:\n")
    command_line = [
        "exekra",
        "runner",
        "--hub-url",
        hub_url,
        "--machine-key",
        registration.machine_key,
        "--machine-secret",
        registration.machine_secret,
    ]
    print("  " + shlex.join(command_line))
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    parser = add_group(commands, "runners", "list and register runners")
    sub = parser.add_subparsers(dest="runners_command", required=True)

    p = client_command(
        sub,
        "list",
        "runners with their status",
        ["exekra runners list", "exekra runners list --status ONLINE --json"],
        "Runners with their status (ONLINE, BUSY, OFFLINE), type, labels and last CPU use.",
    )
    p.add_argument("--status", choices=["ONLINE", "BUSY", "OFFLINE"], help="only runners with this status")
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-200, default 50)")
    p.set_defaults(func=list_runners)

    p = client_command(
        sub,
        "register",
        "register a runner (ADMIN); prints its credentials once",
        ["exekra runners register build-07 --type linux --label big --label gpu"],
        "Register a runner (ADMIN) and print the `exekra runner` command line with its machine key and secret; "
        "the secret is shown only now.",
    )
    p.add_argument("name", help="unique runner name")
    p.add_argument("--type", help='runner type, e.g. "windows"')
    p.add_argument("--label", action="append", help="a label; repeatable")
    p.set_defaults(func=register_runner)
