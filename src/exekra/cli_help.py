"""Every command's help in one shape: what it does, the environment variables it reads, examples."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TypeVar

ParserT = TypeVar("ParserT", bound=argparse.ArgumentParser)

# What every client command reads (exekra.client.config).
CLIENT_ENV: Mapping[str, str] = {
    "EXEKRA_HUB_URL": "the hub (default: the hub of the last `exekra login`, else http://127.0.0.1:4545)",
    "EXEKRA_TOKEN": "an API or session token, instead of the one `exekra login` stored",
    "EXEKRA_CONFIG_DIR": "where `exekra login` keeps its tokens (default: the user's config directory)",
}
DATABASE_ENV: Mapping[str, str] = {
    "DATABASE_URL": "postgresql://user:pass@host:port/db (required)",
}


def add_command(
    commands: argparse._SubParsersAction[ParserT],
    name: str,
    *,
    summary: str,
    env: Mapping[str, str],
    examples: Sequence[str],
    description: str | None = None,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> ParserT:
    """A subcommand whose `--help` says what it does (`description`, else `summary`), its environment
    variables and examples; `summary` is its line in the parent's list of commands."""
    width = max(len(variable) for variable in env)
    epilog = "environment:\n" + "\n".join(f"  {v.ljust(width)}  {text}" for v, text in env.items())
    epilog += "\n\nexamples:\n" + "\n".join(f"  {example}" for example in examples)
    return commands.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        # typeshed wants the parents to be of the subparsers' class; argparse copies options from any parser.
        parents=list(parents),  # type: ignore[arg-type]
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_group(commands: argparse._SubParsersAction[ParserT], name: str, summary: str) -> ParserT:
    """A command that only groups subcommands (`exekra workflow …`)."""
    return commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
