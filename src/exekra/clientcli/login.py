"""`exekra login` and `exekra logout`."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys

from exekra.client import ExekraClient
from exekra.client.config import forget_login, resolve_connection, store_login, stored_token
from exekra.client.errors import NotAuthenticated
from exekra.clientcli.common import EXIT_OK, command, common_options, print_json

SESSION_TOKEN_PREFIX = "exs_"


@command
def login(args: argparse.Namespace) -> int:
    hub_url = resolve_connection(args.hub_url).hub_url
    if args.token:
        token = args.token
        with ExekraClient(hub_url, token) as hub:
            user = hub.me()
    else:
        email = args.email or input("Email: ").strip()
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
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
    hub_url = resolve_connection(args.hub_url).hub_url
    token = stored_token(hub_url)
    if token and token.startswith(SESSION_TOKEN_PREFIX):  # an API token stored with --token stays valid
        with ExekraClient(hub_url, token) as hub, contextlib.suppress(NotAuthenticated):
            hub.logout()
    forgotten = forget_login(hub_url)
    if args.json:
        print_json({"hubUrl": hub_url, "signedOut": forgotten})
    else:
        print(f"Signed out of {hub_url}" if forgotten else f"No stored login for {hub_url}")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = common_options()
    parser = commands.add_parser(
        "login",
        parents=[common],
        help="sign in to a hub and store the token (mode 0600) for the client commands",
        description=(
            "Sign in with email and password (the session lasts 7 days), or store an API token with --token. "
            "The token is kept in the user's config directory; EXEKRA_TOKEN overrides it."
        ),
    )
    parser.add_argument("--email", help="account email (asked when missing)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--token", help="store this API token instead of signing in with a password")
    parser.set_defaults(func=login)
    parser = commands.add_parser("logout", parents=[common], help="end the session and forget the stored token")
    parser.set_defaults(func=logout)
