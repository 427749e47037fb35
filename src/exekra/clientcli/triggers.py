"""`exekra triggers list|create|set-overlap|enable|disable|delete|rotate-token`."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from exekra.cli_errors import UsageError
from exekra.cli_help import add_group
from exekra.client.models import OverlapPolicy, Trigger, TriggerWithToken
from exekra.clientcli.common import (
    EXIT_OK,
    client_command,
    client_for,
    command,
    input_pairs,
    parse_inputs,
    print_json,
    print_page,
    print_table,
)

OVERLAP_POLICIES = get_args(OverlapPolicy)


def _schedule(t: Trigger) -> str:
    if t.type != "SCHEDULE":
        return "webhook"
    return f"{t.cron_expression} ({t.timezone}, overlap {t.overlap_policy})"


def _print_created(result: TriggerWithToken) -> None:
    trigger = result.trigger
    print(f"Trigger {trigger.name} ({trigger.id}): {_schedule(trigger)}")
    if trigger.next_fire_at:
        print(f"  next fire: {trigger.next_fire_at:%Y-%m-%d %H:%M:%S} UTC")
    if result.url:
        print("  webhook URL (shown only now; rotate the token to get a new one):")
        print(f"  {result.url}")


@command
def list_triggers(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        workflow_id = hub.find_workflow(args.workflow).id if args.workflow else None
        page = hub.list_triggers(workflow_id=workflow_id, type=args.type, limit=args.limit)
    if args.json:
        print_page(page, "triggers")
        return EXIT_OK
    rows: list[list[Any]] = [
        [
            t.name,
            _schedule(t),
            "yes" if t.enabled else "no",
            t.next_fire_at,
            t.last_fired_at,
            f"{t.last_skipped_at:%Y-%m-%d %H:%M:%S}: {t.last_skip_reason}" if t.last_skipped_at else None,
            t.last_error,
            t.id,
        ]
        for t in page.items
    ]
    print_table(rows, ["NAME", "SCHEDULE", "ENABLED", "NEXT FIRE", "LAST FIRED", "LAST SKIPPED", "LAST ERROR", "ID"])
    return EXIT_OK


@command
def create_trigger(args: argparse.Namespace) -> int:
    if bool(args.cron) == bool(args.webhook):
        raise UsageError("give either --cron EXPRESSION (a schedule) or --webhook")
    if args.timezone and not args.cron:
        raise UsageError("--timezone goes with --cron")
    if args.overlap and not args.cron:
        raise UsageError("--overlap goes with --cron")
    inputs = parse_inputs(input_pairs(args.input))
    with client_for(args) as hub:
        workflow = hub.find_workflow(args.workflow)
        result = hub.create_trigger(
            workflow.id,
            "SCHEDULE" if args.cron else "WEBHOOK",
            args.name,
            cron_expression=args.cron,
            timezone=args.timezone,
            overlap_policy=args.overlap,
            inputs=inputs,
            enabled=not args.disabled,
        )
    if args.json:
        print_json(result)
    else:
        _print_created(result)
    return EXIT_OK


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    with client_for(args) as hub:
        trigger = hub.update_trigger(hub.find_trigger(args.trigger).id, enabled=enabled)
    if args.json:
        print_json({"trigger": trigger})
    else:
        state = "enabled" if trigger.enabled else "disabled"
        following = f"; next fire {trigger.next_fire_at:%Y-%m-%d %H:%M:%S} UTC" if trigger.next_fire_at else ""
        print(f"Trigger {trigger.name} {state}{following}")
    return EXIT_OK


@command
def set_overlap(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        trigger = hub.update_trigger(hub.find_trigger(args.trigger).id, overlapPolicy=args.policy)
    if args.json:
        print_json({"trigger": trigger})
    else:
        print(f"Trigger {trigger.name}: overlap policy {trigger.overlap_policy}")
    return EXIT_OK


@command
def enable_trigger(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


@command
def disable_trigger(args: argparse.Namespace) -> int:
    return _set_enabled(args, False)


@command
def delete_trigger(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        trigger = hub.find_trigger(args.trigger)
        hub.delete_trigger(trigger.id)
    if args.json:
        print_json({"ok": True})
    else:
        print(f"Trigger {trigger.name} deleted")
    return EXIT_OK


@command
def rotate_token(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        result = hub.rotate_trigger_token(hub.find_trigger(args.trigger).id)
    if args.json:
        print_json(result)
    else:
        _print_created(result)
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    parser = add_group(commands, "triggers", "schedule and webhook triggers")
    sub = parser.add_subparsers(dest="triggers_command", required=True)

    p = client_command(
        sub,
        "list",
        "triggers with their next and last fire",
        ["exekra triggers list --workflow invoices", "exekra triggers list --type WEBHOOK --json"],
        "Triggers with their schedule, whether enabled, their next and last fire and last error.",
    )
    p.add_argument("--workflow", help="only this workflow's (name or ID)")
    p.add_argument("--type", choices=["SCHEDULE", "WEBHOOK"], help="only this type")
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-200, default 50)")
    p.set_defaults(func=list_triggers)

    p = client_command(
        sub,
        "create",
        "create a schedule (--cron) or a webhook (--webhook)",
        [
            'exekra triggers create invoices --name nightly --cron "30 2 * * *" --timezone Europe/Berlin',
            'exekra triggers create invoices --name hourly --cron "0 * * * *" --overlap skip',
            "exekra triggers create invoices --name erp-hook --webhook",
        ],
        "Create a schedule trigger (5-field cron with a timezone and an overlap policy) or a webhook trigger "
        "(its URL is printed once).",
    )
    p.add_argument("workflow", help="workflow name or ID")
    p.add_argument("--name", required=True, help="trigger name")
    p.add_argument("--cron", metavar="EXPRESSION", help='5-field cron expression, e.g. "30 2 * * *"')
    p.add_argument("--timezone", help="IANA timezone of the expression (default UTC)")
    p.add_argument(
        "--overlap",
        choices=OVERLAP_POLICIES,
        help="while the schedule's last run is live: allow (fire anyway, the default), skip (record the skip), "
        "queue_one (one fire waits and starts when the run ends; further fires are skipped)",
    )
    p.add_argument("--webhook", action="store_true", help="a webhook trigger; prints its URL once")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="a default input")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.set_defaults(func=create_trigger)

    p = client_command(
        sub,
        "set-overlap",
        "change a schedule's overlap policy",
        ["exekra triggers set-overlap nightly skip"],
        "Change what a schedule's fire does while its last run is still live: allow, skip or queue_one.",
    )
    p.add_argument("trigger", help="trigger name, ID, or the ID's first 6+ characters")
    p.add_argument("policy", choices=OVERLAP_POLICIES, help="allow, skip or queue_one")
    p.set_defaults(func=set_overlap)

    for name, func, text in (
        ("enable", enable_trigger, "enable a trigger (a schedule restarts from now)"),
        ("disable", disable_trigger, "disable a trigger (a webhook then answers 403)"),
        ("delete", delete_trigger, "delete a trigger (its executions stay)"),
        ("rotate-token", rotate_token, "give a webhook a new token (and URL); the old one stops working"),
    ):
        p = client_command(sub, name, text, [f"exekra triggers {name} nightly"], text[0].upper() + text[1:] + ".")
        p.add_argument("trigger", help="trigger name, ID, or the ID's first 6+ characters")
        p.set_defaults(func=func)
