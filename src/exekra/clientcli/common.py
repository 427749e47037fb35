"""What every client command shares: options, the client, output (tables or `--json`), friendly errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from exekra.client import ExekraClient
from exekra.client.config import resolve_connection
from exekra.client.errors import ExekraClientError, HubUnreachable, NotAuthenticated, ValidationFailed
from exekra.client.models import Page

EXIT_OK = 0
EXIT_FAILED = 1  # `run --wait`: the execution FAILED
EXIT_NOT_COMPLETED = 2  # `run --wait`: STOPPED, or still running at --timeout; also bad command-line usage
EXIT_ERROR = 3  # the hub refused the request, or could not be reached
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command line that cannot be carried out as given (exit code 2)."""


def common_options() -> argparse.ArgumentParser:
    """`--hub-url` and `--json`, accepted by every client command."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--hub-url", help="hub URL (default: EXEKRA_HUB_URL, else the hub of `exekra login`)")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    return parser


def client_for(args: argparse.Namespace) -> ExekraClient:
    return ExekraClient.from_config(args.hub_url)


def command(handler: Handler) -> Handler:
    """Wrap a command: API and connection errors become one readable line on stderr and exit code 3."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except UsageError as exc:
            print(f"exekra: {exc}", file=sys.stderr)
            return EXIT_NOT_COMPLETED
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except ExekraClientError as exc:
            print(f"exekra: {explain(exc, args)}", file=sys.stderr)
            return EXIT_ERROR

    return run


def explain(exc: ExekraClientError, args: argparse.Namespace) -> str:
    """A message for a person: what went wrong and, where it helps, what to do."""
    hub_url = resolve_connection(getattr(args, "hub_url", None)).hub_url
    if isinstance(exc, HubUnreachable):
        return f"{exc.message}. Is the hub running? Point to it with --hub-url or EXEKRA_HUB_URL."
    if isinstance(exc, NotAuthenticated):
        return f"not signed in to {hub_url} ({exc.message}): run `exekra login` or set EXEKRA_TOKEN."
    if isinstance(exc, ValidationFailed) and exc.problems:
        problems = "".join(f"\n  - {p.message}" for p in exc.problems)
        return f"{exc.message}{problems}"
    return exc.message


def fail(message: str) -> int:
    print(f"exekra: {message}", file=sys.stderr)
    return EXIT_ERROR


def to_data(value: Any) -> Any:
    """JSON-ready data (camelCase, as the API has it) of models, lists of models and plain values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=False)
    if isinstance(value, list):
        return [to_data(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_data(value), indent=2, ensure_ascii=False))


def shown_of_total(page: Page[Any]) -> str | None:
    """`50 of 1,234` (`50 of 10,000+` past the hub's count cap) when the page does not show every match."""
    if page.total is None or (page.total <= len(page.items) and not page.total_capped):
        return None
    return f"{len(page.items)} of {page.total:,}{'+' if page.total_capped else ''}"


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Left-aligned columns; `-` for empty cells."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    return str(value)


def parse_inputs(pairs: Sequence[str], types: dict[str, str] | None = None) -> dict[str, Any]:
    """`name=value` (a string, or the declared input type's JSON value) and `name:=json` (always JSON)."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--input {pair!r}: use name=value or name:=json")
        if name.endswith(":"):
            name = name[:-1]
            try:
                inputs[name] = json.loads(value)
            except ValueError:
                raise UsageError(f"--input {pair!r}: the value is not valid JSON") from None
            continue
        inputs[name] = _typed(value, (types or {}).get(name))
    return inputs


def _typed(value: str, declared: str | None) -> Any:
    if declared in ("integer", "number", "boolean", "object", "array"):
        try:
            return json.loads(value)
        except ValueError:
            return value  # the hub names the problem
    return value
