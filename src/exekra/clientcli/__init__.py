"""The client commands of `exekra` (login, users, workflow, run, executions, runners, triggers, alerts), over `exekra.client`."""

from __future__ import annotations

import argparse
from typing import Any

from exekra.clientcli import alerts, executions, login, run, runners, triggers, users, workflows


def add_client_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the client commands to the `exekra` parser's subcommands."""
    for module in (login, users, workflows, run, executions, runners, triggers, alerts):
        module.add_commands(commands)
