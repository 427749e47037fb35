"""`exekra login` and `exekra logout`."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from typing import Any

from exekra.cli_errors import Unavailable, UsageError
from exekra.client import ExekraClient
from exekra.client.config import forget_login, store_login, stored_token
from exekra.client.errors import ExekraClientError, NotAuthenticated
from exekra.clientcli.common import EXIT_OK, client_command, command, hub_url_of, print_json

SESSION_TOKEN_PREFIX = "exs_"


def _ask(prompt: str, what: str, option: str, *, secret: bool = False) -> str:
    """Ask on the terminal; without one (a script), say which option gives the value."""
    if not sys.stdin.isatty():
        raise UsageError(f"no terminal to ask the {what} on: pass {option}")
    try:
        answer = getpass.getpass(prompt) if secret else input(prompt)
    except EOFError:
        answer = ""
    if not answer.strip():
        raise UsageError(f"no {what} given")
    return answer if secret else answer.strip()


@command
def login(args: argparse.Namespace) -> int:
    hub_url = hub_url_of(args)
    if args.token:
        token = args.token
        with ExekraClient(hub_url, token) as hub:
            user = hub.me()
    else:
        email = args.email or _ask("Email: ", "email", "--email")
        password = (
            sys.stdin.readline().rstrip("\n")
            if args.password_stdin
            else _ask("Password: ", "password", "--password-stdin", secret=True)
        )
        with ExekraClient(hub_url) as hub:
            session = hub.login(email, password)
        token, user = session.token, session.user
    path = store_login(hub_url, token, user.email)
    if args.json:
        print_json({"hubUrl": hub_url, "user": user, "configFile": str(path)})
    else:
        print(f"Signed in to {hub_url} as {user.email} ({user.role}); token stored in {path}")
    return EXIT_OK


@command
def logout(args: argparse.Namespace) -> int:
    hub_url = hub_url_of(args)
    token = stored_token(hub_url)
    failure: ExekraClientError | None = None
    if token and token.startswith(SESSION_TOKEN_PREFIX):  # an API token stored with --token stays valid
        try:
            with ExekraClient(hub_url, token) as hub, contextlib.suppress(NotAuthenticated):  # already ended
                hub.logout()
        except ExekraClientError as exc:
            failure = exc
    forgotten = forget_login(hub_url)
    if failure is not None:
        raise Unavailable(f"forgot the stored token, but the session on the hub could not be ended: {failure.message}")
    if args.json:
        print_json({"hubUrl": hub_url, "signedOut": forgotten})
    else:
        print(f"Signed out of {hub_url}" if forgotten else f"No stored login for {hub_url}")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    parser = client_command(
        commands,
        "login",
        "sign in to a hub and store the token (mode 0600) for the client commands",
        [
            "exekra login --hub-url http://127.0.0.1:4545 --email admin@exekra.local",
            'echo "$PASSWORD" | exekra login --email ci@example.com --password-stdin',
            "exekra login --token exk_…",
        ],
        "Sign in with email and password (the session lasts 7 days), or store an API token with --token. "
        "The token is kept in the user's config directory; EXEKRA_TOKEN overrides it.",
    )
    parser.add_argument("--email", help="account email (asked when missing)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--token", help="store this API token instead of signing in with a password")
    parser.set_defaults(func=login)
    parser = client_command(
        commands,
        "logout",
        "end the session and forget the stored token",
        ["exekra logout", "exekra logout --hub-url https://hub.example.com:4545"],
        "End the session on the hub and forget the token `exekra login` stored for it (an API token stored "
        "with --token is only forgotten, not revoked).",
    )
    parser.set_defaults(func=logout)
