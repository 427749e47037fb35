"""Every command's help says what it does, which environment variables it reads and how to use it (issue 13,
item 12)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from exekra import cli


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix, parser
        return
    for name, sub in actions[0].choices.items():
        yield from _commands(sub, (*prefix, name))


LEAVES = dict(_commands(cli.build_parser()))


@pytest.mark.parametrize("command", sorted(LEAVES), ids=" ".join)
def test_help_says_what_the_command_does_its_environment_and_an_example(command: tuple[str, ...]) -> None:
    text = LEAVES[command].format_help()
    description = LEAVES[command].description
    assert description and len(description) > 20, f"{command}: no description"
    assert "environment:" in text, f"{command}: no environment variables"
    assert re.search(r"EXEKRA_[A-Z_]+|DATABASE_URL", text.split("environment:", 1)[1]), command
    examples = text.split("example", 1)
    assert len(examples) == 2, f"{command}: no example"
    assert f"exekra {' '.join(command)}" in examples[1], f"{command}: the example does not run the command"


def test_the_hub_and_the_runner_describe_themselves() -> None:
    """The two commands the issue found without a description."""
    assert "production" in (LEAVES[("hub",)].description or "")
    assert "EXEKRA_MACHINE_SECRET" in LEAVES[("runner",)].format_help()
