"""What every client command shares: options, the client, output (tables or `--json`), friendly errors."""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from exekra.cli_errors import Unavailable, UsageError
from exekra.cli_help import CLIENT_ENV, ParserT, add_command
from exekra.client import ExekraClient
from exekra.client.config import resolve_connection
from exekra.client.errors import AmbiguousId, ExekraClientError, HubUnreachable, NotAuthenticated, ValidationFailed
from exekra.client.models import Page

EXIT_OK = 0
EXIT_FAILED = 1  # `run --wait`: the execution FAILED
EXIT_NOT_COMPLETED = 2  # `run --wait`: STOPPED, or still running at --timeout; also bad command-line usage

Handler = Callable[[argparse.Namespace], int]


def common_options() -> argparse.ArgumentParser:
    """`--hub-url` and `--json`, accepted by every client command."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--hub-url", help="hub URL (default: EXEKRA_HUB_URL, else the hub of `exekra login`)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")
    return parser


def client_command(
    commands: argparse._SubParsersAction[ParserT],
    name: str,
    summary: str,
    examples: Sequence[str],
    description: str | None = None,
) -> ParserT:
    """A client command with `--hub-url` and `--json`, whose help names the client's environment variables."""
    return add_command(
        commands,
        name,
        summary=summary,
        description=description,
        env=CLIENT_ENV,
        examples=examples,
        parents=[common_options()],
    )


def hub_url_of(args: argparse.Namespace) -> str:
    """The hub this command talks to (see `exekra.client.config`); a URL that is not http(s) is refused."""
    hub_url = resolve_connection(getattr(args, "hub_url", None)).hub_url
    if not hub_url.startswith(("http://", "https://")):
        raise UsageError(f"the hub URL must start with http:// or https://, got {hub_url!r}")
    return hub_url


def client_for(args: argparse.Namespace) -> ExekraClient:
    return ExekraClient.from_config(hub_url_of(args))


def command(handler: Handler) -> Handler:
    """Wrap a client command: API and connection errors become one readable line and exit code 3."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except AmbiguousId as exc:
            raise UsageError(exc.message) from None
        except ExekraClientError as exc:
            raise Unavailable(explain(exc, args)) from None

    return run


def explain(exc: ExekraClientError, args: argparse.Namespace) -> str:
    """A message for a person: what went wrong and, where it helps, what to do."""
    if isinstance(exc, HubUnreachable):
        return f"{exc.message}. Is the hub running? Point to it with --hub-url or EXEKRA_HUB_URL."
    if isinstance(exc, NotAuthenticated) and args.command != "login":
        hub_url = resolve_connection(getattr(args, "hub_url", None)).hub_url
        return f"not signed in to {hub_url} ({exc.message}): run `exekra login` or set EXEKRA_TOKEN."
    if isinstance(exc, ValidationFailed) and exc.problems:
        return with_problems(exc.message, exc.problems)
    return exc.message


def with_problems(message: str, problems: Sequence[Any]) -> str:
    """The hub's message and every problem it listed, each once: the message often quotes the first one."""
    texts = [problem_text(p) for p in problems]
    if len(texts) == 1 and texts[0] in message:
        return message
    head = message[: -len(texts[0])].rstrip(": ") if message.endswith(texts[0]) else message
    count = f" ({len(texts)} problems)" if len(texts) > 1 else ""
    return f"{head}{count}:" + "".join(f"\n  - {text}" for text in texts)


def problem_text(problem: Any) -> str:
    """One problem of an error's details: a string, or `{message|msg, loc?}`."""
    if isinstance(problem, dict):
        text = str(problem.get("message") or problem.get("msg") or problem)
        where = ".".join(str(part) for part in problem.get("loc") or [] if part != "body")
        return f"{where}: {text}" if where else text
    return str(problem)


def to_data(value: Any) -> Any:
    """JSON-ready data (camelCase, as the API has it) of models, and of lists and dicts holding them."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=False)
    if isinstance(value, list):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: to_data(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_data(value), indent=2, ensure_ascii=False))


def print_json_line(value: Any) -> None:
    """One compact JSON document per line (JSON lines), for output that streams."""
    print(json.dumps(to_data(value), ensure_ascii=False), flush=True)


def print_page(page: Page[Any], key: str) -> None:
    """A list as the API answers it: `{"<key>": [...], "total", "page", "limit", "nextCursor"}` (and
    `totalCapped` where the API gives it)."""
    data: dict[str, Any] = {key: page.items, "total": page.total}
    if "total_capped" in page.model_fields_set:
        data["totalCapped"] = page.total_capped
    data.update(page=page.page, limit=page.limit, nextCursor=page.next_cursor)
    print_json(data)


def shown_of_total(page: Page[Any]) -> str | None:
    """`50 of 1,234` (`50 of 10,000+` past the hub's count cap) when the page does not show every match."""
    if page.total is None or (page.total <= len(page.items) and not page.total_capped):
        return None
    return f"{len(page.items)} of {page.total:,}{'+' if page.total_capped else ''}"


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], indent: str = "") -> None:
    """Left-aligned columns; `-` for empty cells."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    return str(value)


@dataclass(frozen=True)
class InputPair:
    """One `--input`: `name=value` (typed by the declared input) or `name:=json` (`value` already read)."""

    name: str
    value: Any
    is_json: bool


def input_pairs(pairs: Sequence[str]) -> list[InputPair]:
    """Read `--input` options; a malformed one is a usage error (before anything is sent to the hub)."""
    read: list[InputPair] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or name == ":":
            raise UsageError(f"--input {pair!r}: use name=value or name:=json")
        if name.endswith(":"):
            try:
                read.append(InputPair(name[:-1], json.loads(value), True))
            except ValueError:
                raise UsageError(f"--input {pair!r}: the value is not valid JSON") from None
        else:
            read.append(InputPair(name, value, False))
    return read


def parse_inputs(pairs: Sequence[InputPair], types: dict[str, str] | None = None) -> dict[str, Any]:
    """The inputs to send: `name=value` is a string, or the declared input type's JSON value."""
    return {p.name: p.value if p.is_json else _typed(p.value, (types or {}).get(p.name)) for p in pairs}


def _typed(value: str, declared: str | None) -> Any:
    if declared in ("integer", "number", "boolean", "object", "array"):
        try:
            return json.loads(value)
        except ValueError:
            return value  # the hub names the problem
    return value
