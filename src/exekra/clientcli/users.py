"""`exekra users passwd`: change one's own password."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from exekra.cli_errors import UsageError
from exekra.cli_help import add_group
from exekra.clientcli.common import EXIT_OK, client_command, client_for, command, print_json

MIN_PASSWORD_CHARS = 8


def _read_passwords(from_stdin: bool) -> tuple[str, str]:
    """The current and the new password: two lines of standard input, or asked on the terminal (the new one
    twice)."""
    if from_stdin:
        current, new = sys.stdin.readline().rstrip("\n"), sys.stdin.readline().rstrip("\n")
        if not current or not new:
            raise UsageError("--password-stdin reads two lines: the current password, then the new one")
        return current, new
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask the passwords on: pass --password-stdin (two lines: current, new)")
    current = getpass.getpass("Current password: ")
    new = getpass.getpass("New password: ")
    if new != getpass.getpass("New password again: "):
        raise UsageError("the two new passwords differ; nothing was changed")
    return current, new


@command
def change_password(args: argparse.Namespace) -> int:
    current, new = _read_passwords(args.password_stdin)
    if len(new) < MIN_PASSWORD_CHARS:
        raise UsageError(f"the new password needs at least {MIN_PASSWORD_CHARS} characters")
    with client_for(args) as hub:
        user = hub.change_password(current, new)
    if args.json:
        print_json({"user": user})
    else:
        print(f"Password changed for {user.email}; your other sessions have ended (this login and API tokens stay)")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    parser = add_group(commands, "users", "your account: change your password")
    sub = parser.add_subparsers(dest="users_command", required=True)
    p = client_command(
        sub,
        "passwd",
        "change your own password (any role)",
        ["exekra users passwd", 'printf \'%s\\n%s\\n\' "$OLD" "$NEW" | exekra users passwd --password-stdin'],
        "Change your own password: asks for the current one and the new one (twice). Your other sessions end; "
        "this login and your API tokens stay.",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read two lines from standard input, the current password and the new one, instead of asking",
    )
    p.set_defaults(func=change_password)
