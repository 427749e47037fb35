"""How a failed command reaches the person who ran it: one line on standard error and an exit code.

Commands raise `CommandError`s (or let known errors through); `run_command` turns whatever a command raised
into that line, so no command prints a traceback (`exekra --traceback …` shows it, for a bug report).
"""

from __future__ import annotations

import argparse
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn
from urllib.parse import urlsplit

EXIT_FAILED = 1  # an unexpected error; `run --wait`: the execution FAILED
EXIT_USAGE = 2  # a command line or settings that cannot be used as given
EXIT_UNAVAILABLE = 3  # the hub or the database refused the request or could not be reached
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure to report as one line, with the exit code it ends the command with."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CommandError):
    """A command line or setting that cannot be used as given (exit code 2)."""

    exit_code = EXIT_USAGE


class Unavailable(CommandError):
    """The hub or the database could not be reached, or refused (exit code 3)."""

    exit_code = EXIT_UNAVAILABLE


class Parser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line: `exekra purge: argument --older-than-days: … (see …)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def run_command(args: argparse.Namespace, handler: Callable[[argparse.Namespace], int]) -> int:
    """Run a command's handler; every failure becomes one line `exekra <command>: …` and its exit code."""
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        failure = explain(exc)
        print(f"exekra {args.command}: {failure.message}", file=sys.stderr)
        if getattr(args, "traceback", False):
            traceback.print_exc()
        return failure.exit_code


def explain(exc: Exception) -> CommandError:
    """The failure to report for an exception a command raised."""
    from pydantic import ValidationError

    from exekra.runner.config import RunnerConfigError

    if isinstance(exc, ValueError):
        from exekra.config import SecretKeyError
        from exekra.hub.license.envelope import PublicKeyUnusable

        if isinstance(exc, (PublicKeyUnusable, SecretKeyError)):
            return UsageError(str(exc))
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return UsageError(settings_problems(exc))
    if isinstance(exc, RunnerConfigError):
        return UsageError(str(exc))
    return CommandError(f"unexpected error: {type(exc).__name__}: {exc} (`exekra --traceback …` shows where)")


URL_SETTINGS = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}


def settings_problems(exc: Exception) -> str:
    """`EXEKRA_PORT: Input should be a valid integer, got 'eighty'` for each invalid setting, on one line."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    problems = []
    for error in exc.errors():
        field = (str(error["loc"][0]) if error["loc"] else "").lower().removeprefix("exekra_")
        message = str(error["msg"]).removeprefix("Value error, ")
        if field in URL_SETTINGS:  # a URL may hold a password: not repeated
            problems.append(f"{URL_SETTINGS[field]}: {message}")
        else:
            problems.append(f"EXEKRA_{field.upper()}: {message}, got {error.get('input')!r}")
    return "invalid settings: " + "; ".join(problems)


@contextmanager
def database_errors(database_url: str) -> Iterator[None]:
    """Turn a database that cannot be reached or used into one line naming it (its password left out)."""
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from exekra.db.migrate import DatabaseNotMigrated

    where = _database_name(database_url)
    try:
        yield
    except DatabaseNotMigrated as exc:
        raise Unavailable(str(exc)) from None
    except ArgumentError:
        raise UsageError(
            f"DATABASE_URL is not a database URL: {where!r} (postgresql://user:pass@host:port/db)"
        ) from None
    except (OSError, socket.gaierror) as exc:
        raise Unavailable(f"cannot connect to the database at {where}: {exc.strerror or exc}") from None
    except DBAPIError as exc:
        raise Unavailable(f"cannot use the database at {where}: {_first_line(exc.orig or exc)}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):
            raise Unavailable(f"cannot connect to the database at {where}: {_first_line(exc)}") from None
        raise


def _database_name(url: str) -> str:
    """`host:port/db` of a database URL, without user and password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("@")[-1]
    if not parts.scheme or not parts.netloc:
        return url.split("@")[-1]
    return f"{host}{port}{parts.path}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
