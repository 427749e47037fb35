"""`exekra alerts channels|rules|deliveries|retry`: alert channels, rules and their deliveries (docs/alerts.md)."""

from __future__ import annotations

import argparse
from typing import Any

from exekra.cli_errors import UsageError
from exekra.cli_help import add_group
from exekra.client.models import AlertChannel, AlertChannelWithSecret, AlertDelivery, AlertRule
from exekra.clientcli.common import EXIT_OK, client_command, client_for, command, print_json, print_page, print_table

EVENTS = ("FAILED", "TIMEOUT", "STOPPED", "RUNNER_OFFLINE")


def _address(channel: AlertChannel) -> str:
    return ", ".join(channel.to) if channel.to else channel.url or ""


def _print_channel(result: AlertChannelWithSecret) -> None:
    channel = result.channel
    print(f"Alert channel {channel.name} ({channel.id}): {channel.type} {_address(channel)}")
    if result.secret:
        print("  signing secret (shown only now; rotate-secret makes a new one):")
        print(f"  {result.secret}")


@command
def list_channels(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        page = hub.list_alert_channels(limit=args.limit)
    if args.json:
        print_page(page, "channels")
        return EXIT_OK
    rows = [[c.name, c.type, _address(c), "yes" if c.enabled else "no", c.id] for c in page.items]
    print_table(rows, ["NAME", "TYPE", "ADDRESS", "ENABLED", "ID"])
    return EXIT_OK


@command
def create_channel(args: argparse.Namespace) -> int:
    kinds = [k for k, given in (("EMAIL", args.email), ("WEBHOOK", args.webhook), ("SLACK", args.slack)) if given]
    if len(kinds) != 1:
        raise UsageError("give one of --email ADDRESS (repeatable), --webhook URL or --slack URL")
    with client_for(args) as hub:
        result = hub.create_alert_channel(
            args.name, kinds[0], url=args.webhook or args.slack, to=args.email or None, enabled=not args.disabled
        )
    if args.json:
        print_json(result)
    else:
        _print_channel(result)
    return EXIT_OK


@command
def delete_channel(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        channel = hub.find_alert_channel(args.channel)
        hub.delete_alert_channel(channel.id)
    if args.json:
        print_json({"ok": True})
    else:
        print(f"Alert channel {channel.name} deleted")
    return EXIT_OK


@command
def rotate_secret(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        result = hub.rotate_alert_channel_secret(hub.find_alert_channel(args.channel).id)
    if args.json:
        print_json(result)
    else:
        _print_channel(result)
    return EXIT_OK


@command
def test_channel(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        channel = hub.find_alert_channel(args.channel)
        delivery = hub.test_alert_channel(channel.id)
    if args.json:
        print_json({"delivery": delivery})
    else:
        print(f"Test message to {channel.name} queued: exekra alerts deliveries --channel {channel.name}")
    return EXIT_OK


def _subject(rule: AlertRule, workflows: dict[str, str]) -> str:
    return "all workflows" if rule.workflow_id is None else workflows.get(rule.workflow_id, rule.workflow_id)


@command
def list_rules(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        workflow_id = hub.find_workflow(args.workflow).id if args.workflow else None
        page = hub.list_alert_rules(workflow_id=workflow_id, limit=args.limit)
        channels = {c.id: c.name for c in hub.list_alert_channels(limit=200).items}
        workflows = {r.workflow_id: hub.find_workflow(r.workflow_id).name for r in page.items if r.workflow_id}
    if args.json:
        print_page(page, "rules")
        return EXIT_OK
    rows: list[list[Any]] = [
        [
            r.name,
            ",".join(r.events),
            _subject(r, workflows),
            channels.get(r.channel_id, r.channel_id),
            f"{r.cooldown_seconds}s",
            "yes" if r.enabled else "no",
            r.id,
        ]
        for r in page.items
    ]
    print_table(rows, ["NAME", "EVENTS", "OF", "CHANNEL", "COOL-DOWN", "ENABLED", "ID"])
    return EXIT_OK


@command
def create_rule(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        channel = hub.find_alert_channel(args.channel)
        workflow_id = hub.find_workflow(args.workflow).id if args.workflow else None
        rule = hub.create_alert_rule(
            args.name,
            channel.id,
            args.on,
            workflow_id=workflow_id,
            cooldown_seconds=args.cooldown,
            offline_minutes=args.offline_minutes,
            enabled=not args.disabled,
        )
    if args.json:
        print_json({"rule": rule})
    else:
        subject = args.workflow or "all workflows"
        print(f"Alert rule {rule.name} ({rule.id}): {','.join(rule.events)} of {subject} to {channel.name}")
    return EXIT_OK


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    with client_for(args) as hub:
        rule = hub.update_alert_rule(hub.find_alert_rule(args.rule).id, enabled=enabled)
    if args.json:
        print_json({"rule": rule})
    else:
        print(f"Alert rule {rule.name} {'enabled' if rule.enabled else 'disabled'}")
    return EXIT_OK


@command
def enable_rule(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


@command
def disable_rule(args: argparse.Namespace) -> int:
    return _set_enabled(args, False)


@command
def delete_rule(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        rule = hub.find_alert_rule(args.rule)
        hub.delete_alert_rule(rule.id)
    if args.json:
        print_json({"ok": True})
    else:
        print(f"Alert rule {rule.name} deleted")
    return EXIT_OK


def _outcome(d: AlertDelivery) -> str:
    if d.status == "SENT":
        return f"sent {d.sent_at:%Y-%m-%d %H:%M:%S}" if d.sent_at else "sent"
    if d.last_error:
        return d.last_error
    return f"due {d.next_attempt_at:%Y-%m-%d %H:%M:%S}" if d.next_attempt_at else ""


@command
def list_deliveries(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        rule_id = hub.find_alert_rule(args.rule).id if args.rule else None
        channel_id = hub.find_alert_channel(args.channel).id if args.channel else None
        status = "FAILED" if args.failed else args.status
        page = hub.list_alert_deliveries(status=status, rule_id=rule_id, channel_id=channel_id, limit=args.limit)
    if args.json:
        print_page(page, "deliveries")
        return EXIT_OK
    rows = [[d.created_at, d.kind, d.event_count, d.status, d.attempts, _outcome(d), d.id] for d in page.items]
    print_table(rows, ["CREATED", "KIND", "EVENTS", "STATUS", "ATTEMPTS", "OUTCOME", "ID"])
    return EXIT_OK


@command
def retry_delivery(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        delivery = hub.retry_alert_delivery(args.delivery)
    if args.json:
        print_json({"delivery": delivery})
    else:
        print(f"Alert delivery {delivery.id} is due again")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    parser = add_group(commands, "alerts", "alert channels, rules and deliveries")
    groups = parser.add_subparsers(dest="alerts_command", required=True)
    _add_channel_commands(add_group(groups, "channels", "where alerts go: email, webhook, Slack"))
    _add_rule_commands(add_group(groups, "rules", "which events alert which channel"))

    p = client_command(
        groups,
        "deliveries",
        "alert messages and their attempts, newest first",
        ["exekra alerts deliveries --failed", "exekra alerts deliveries --rule on-failure --json"],
        "Alert messages with their status (PENDING, SENDING, SENT, FAILED), attempts and last error.",
    )
    p.add_argument("--failed", action="store_true", help="only those that gave up (same as --status FAILED)")
    p.add_argument("--status", choices=["PENDING", "SENDING", "SENT", "FAILED"], help="only this status")
    p.add_argument("--rule", help="only this rule's (name or ID)")
    p.add_argument("--channel", help="only this channel's (name or ID)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-200, default 50)")
    p.set_defaults(func=list_deliveries)

    p = client_command(
        groups,
        "retry",
        "send a FAILED delivery again",
        ["exekra alerts retry 3f2c9a1e-…"],
        "Make a delivery that gave up due again, with a fresh set of attempts.",
    )
    p.add_argument("delivery", help="delivery ID")
    p.set_defaults(func=retry_delivery)


def _add_channel_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="channels_command", required=True)
    p = client_command(
        sub,
        "list",
        "alert channels",
        ["exekra alerts channels list"],
        "Alert channels with their type, address (recipients, webhook URL, Slack host) and whether enabled.",
    )
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-200, default 50)")
    p.set_defaults(func=list_channels)

    p = client_command(
        sub,
        "create",
        "create an email, webhook or Slack channel (ADMIN)",
        [
            "exekra alerts channels create ops-mail --email ops@example.com --email lead@example.com",
            "exekra alerts channels create pager --webhook https://alerts.example.com/exekra",
            "exekra alerts channels create team-slack --slack https://hooks.slack.com/services/T0/B0/XXXX",
        ],
        "Create a channel. A webhook's signing secret is printed once; mail goes through the hub's SMTP settings "
        "(EXEKRA_SMTP_HOST …).",
    )
    p.add_argument("name", help="channel name")
    p.add_argument("--email", action="append", metavar="ADDRESS", help="a recipient (repeatable)")
    p.add_argument("--webhook", metavar="URL", help="a URL that gets signed JSON")
    p.add_argument("--slack", metavar="URL", help="a Slack-compatible incoming-webhook URL (kept secret)")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.set_defaults(func=create_channel)

    for name, summary, func in (
        ("delete", "delete a channel no rule uses (ADMIN)", delete_channel),
        ("rotate-secret", "a new signing secret for a webhook channel, printed once (ADMIN)", rotate_secret),
        ("test", "send a test message (ADMIN)", test_channel),
    ):
        p = client_command(sub, name, summary, [f"exekra alerts channels {name} pager"])
        p.add_argument("channel", help="channel name or ID")
        p.set_defaults(func=func)


def _add_rule_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rules_command", required=True)
    p = client_command(
        sub,
        "list",
        "alert rules",
        ["exekra alerts rules list --workflow invoices"],
        "Alert rules with their events, workflow (or all), channel, cool-down and whether enabled.",
    )
    p.add_argument("--workflow", help="the rules that apply to this workflow (its own and the global ones)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-200, default 50)")
    p.set_defaults(func=list_rules)

    p = client_command(
        sub,
        "create",
        "create a rule (ADMIN, DEVELOPER)",
        [
            "exekra alerts rules create invoice-failures --channel pager --on FAILED --on TIMEOUT --workflow invoices",
            "exekra alerts rules create runners-down --channel ops-mail --on RUNNER_OFFLINE --offline-minutes 10",
        ],
        "Alert a channel on events of one workflow (--workflow) or of all; within --cooldown seconds after a "
        "message, further events are gathered into one digest sent when the cool-down ends.",
    )
    p.add_argument("name", help="rule name")
    p.add_argument("--channel", required=True, help="channel name or ID")
    p.add_argument("--on", action="append", required=True, choices=EVENTS, help="an event (repeatable)")
    p.add_argument("--workflow", help="only this workflow (name or ID); default: all")
    p.add_argument("--cooldown", type=int, metavar="SECONDS", help="cool-down window (default 300; 0: no digest)")
    p.add_argument("--offline-minutes", type=int, help="RUNNER_OFFLINE: offline longer than this (default 5)")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.set_defaults(func=create_rule)

    for name, summary, func in (
        ("enable", "enable a rule: its events alert again", enable_rule),
        ("disable", "disable a rule: its events are not collected", disable_rule),
        ("delete", "delete a rule (its deliveries stay in the history)", delete_rule),
    ):
        p = client_command(sub, name, summary, [f"exekra alerts rules {name} invoice-failures"])
        p.add_argument("rule", help="rule name or ID")
        p.set_defaults(func=func)
