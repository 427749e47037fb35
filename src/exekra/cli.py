"""`exekra` command line: thin entry points into the hub, the runner, the database, `up` and the client
commands (`exekra.clientcli`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from exekra import __version__
from exekra.cli_errors import Parser, UsageError, database_errors, run_command
from exekra.cli_help import DATABASE_ENV, add_command, add_group
from exekra.config import get_settings

NO_DATABASE = "DATABASE_URL is not set: set it to postgresql://user:pass@host:port/db (`exekra up` embeds one)"


def _hub(args: argparse.Namespace) -> int:
    from exekra.db.migrate import ensure_migrated
    from exekra.hub.license.envelope import load_public_key
    from exekra.hub.server import serve

    settings = get_settings()
    overrides: dict[str, object] = {
        k: v for k, v in (("host", args.host), ("port", args.port), ("hub_workers", args.workers)) if v is not None
    }
    if args.access_log:
        overrides["access_log"] = True
    if "EXEKRA_LOG_JSON" not in os.environ:
        overrides["log_json"] = True  # a server's logs are read by machines; set EXEKRA_LOG_JSON=false for text
    settings = settings.model_copy(update=overrides)
    if not settings.database_url:
        raise UsageError(NO_DATABASE)
    load_public_key(settings.license_public_key)  # keys that cannot be used are refused before the hub starts
    settings.resolve_secret_key()
    with database_errors(settings.database_url):
        asyncio.run(ensure_migrated(settings.database_url))
    return serve(settings)


def _positive_int(text: str) -> int:
    return _int_from(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_from(text, 0)


def _int_from(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
    return value


def _db_upgrade(_: argparse.Namespace) -> int:
    from exekra.db.migrate import upgrade

    settings = get_settings()
    if not settings.database_url:
        raise UsageError(NO_DATABASE)
    with database_errors(settings.database_url):
        upgrade(settings.database_url)
    print("database is at the latest revision")
    return 0


def _purge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from exekra.hub.retention import purge_once

    settings = get_settings()
    if not settings.database_url:
        raise UsageError(NO_DATABASE)
    with database_errors(settings.database_url):
        report = asyncio.run(
            purge_once(
                settings,
                archive_dir=Path(args.archive) if args.archive else settings.purge_archive_dir,
                retention_days=settings.retention_days if args.older_than_days is None else args.older_than_days,
            )
        )
    if report is None:
        print("exekra purge: another purge is running (a hub's daily purge?); try again later", file=sys.stderr)
        return 1
    print(
        f"purged {report.executions} executions ({report.logs} log lines, {report.keys} idempotency keys) "
        f"and {report.metrics} heartbeat metric rows"
        + (f", and {report.audit} audit entries" if report.audit else "")
        + (f", and {report.alerts} alert deliveries" if report.alerts else "")
        + (f", and {report.slots} empty concurrency slot rows" if report.slots else "")
    )
    if report.archive is not None:
        print(f"archive: {report.archive}")
    return 0


def _runner(args: argparse.Namespace) -> int:
    from exekra.runner.agent import main as runner_main
    from exekra.runner.config import RunnerConfig

    overrides = {
        "hub_url": args.hub_url,
        "machine_key": args.machine_key,
        "machine_secret": args.machine_secret,
        "ca_bundle": args.ca_bundle,
        "insecure": args.insecure or None,
        "workdir": args.workdir,
    }
    config = RunnerConfig.from_env(**{k: v for k, v in overrides.items() if v is not None})
    return runner_main(config)


def _up(args: argparse.Namespace) -> int:
    from exekra.up import run_up

    return run_up(args)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="exekra", description="Exekra workflow automation orchestrator")
    parser.add_argument("--version", action="version", version=f"exekra {__version__}")
    parser.add_argument("--traceback", action="store_true", help="on an unexpected error, print its traceback too")
    commands = parser.add_subparsers(dest="command", required=True)

    hub = add_command(
        commands,
        "hub",
        summary="run the hub (production: external PostgreSQL and Redis)",
        description=(
            "Run the hub, the central server (REST API, dashboard, dispatch, schedules), for production: it "
            "uses the PostgreSQL of DATABASE_URL (migrated first with `exekra db upgrade`) and the Redis of "
            "REDIS_URL (without one it assigns work straight from PostgreSQL). Every setting is an environment "
            "variable (README, Configuration); the main ones are below. Stops on SIGINT or SIGTERM."
        ),
        env={
            **DATABASE_ENV,
            "REDIS_URL": "redis://host:port/db or unix:///path (optional)",
            "EXEKRA_HOST / EXEKRA_PORT": "where to listen (127.0.0.1 / 4545; --host/--port override)",
            "EXEKRA_HUB_WORKERS": "worker processes serving the port (1; --workers overrides)",
            "EXEKRA_SECRET_KEY": "master key: 32 bytes in base64, or a passphrase of 16+ characters "
            "(default: a key file under EXEKRA_HOME)",
            "EXEKRA_TLS_CERT / _KEY": "serve HTTPS with this certificate and key",
        },
        examples=[
            "DATABASE_URL=postgresql://exekra:secret@db:5432/exekra REDIS_URL=redis://cache:6379/0 exekra hub",
            "exekra hub --host 0.0.0.0 --port 8443 --workers 2",
        ],
    )
    hub.add_argument("--host", help="listen address (EXEKRA_HOST, default 127.0.0.1)")
    hub.add_argument("--port", type=int, help="listen port (EXEKRA_PORT, default 4545)")
    hub.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes serving the port, to use N cores (EXEKRA_HUB_WORKERS, default 1)",
    )
    hub.add_argument("--access-log", action="store_true", help="log every request")
    hub.set_defaults(func=_hub)

    db = add_group(commands, "db", "database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    add_command(
        db_commands,
        "upgrade",
        summary="apply schema migrations",
        description=(
            "Bring the database of DATABASE_URL to the schema this version needs (Alembic migrations); run it "
            "before starting hubs of a new version. Safe to run again: an up-to-date database is left as it is."
        ),
        env=DATABASE_ENV,
        examples=["DATABASE_URL=postgresql://exekra:secret@db:5432/exekra exekra db upgrade"],
    ).set_defaults(func=_db_upgrade)

    purge = add_command(
        commands,
        "purge",
        summary="delete finished executions (with their logs) and heartbeat metrics past retention",
        description=(
            "Delete COMPLETED/FAILED/STOPPED executions finished more than EXEKRA_RETENTION_DAYS ago, with their "
            "logs and idempotency keys, and heartbeat metrics older than EXEKRA_METRICS_RETENTION_DAYS, in "
            "batches of EXEKRA_PURGE_BATCH rows. Safe while hubs run."
        ),
        env={
            **DATABASE_ENV,
            "EXEKRA_RETENTION_DAYS": "executions finished longer ago are purged (30)",
            "EXEKRA_METRICS_RETENTION_DAYS": "heartbeat metrics kept (7)",
            "EXEKRA_AUDIT_RETENTION_DAYS": "audit entries kept (unset: forever)",
            "EXEKRA_PURGE_BATCH": "rows per transaction (1000)",
            "EXEKRA_PURGE_ARCHIVE_DIR": "archive here first, as --archive does",
        },
        examples=["exekra purge", "exekra purge --older-than-days 90 --archive /var/backups/exekra"],
    )
    purge.add_argument(
        "--archive", metavar="DIR", help="first write the executions with their logs to DIR (gzip JSON lines)"
    )
    purge.add_argument(
        "--older-than-days",
        type=_non_negative_int,
        metavar="N",
        help="purge executions finished more than N days ago (default EXEKRA_RETENTION_DAYS)",
    )
    purge.set_defaults(func=_purge)

    runner = add_command(
        commands,
        "runner",
        summary="run a runner agent",
        description=(
            "Run a runner agent on this machine: it signs in to the hub with its machine key and secret (from "
            "`exekra runners register NAME`), sends heartbeats, long-polls for work and runs one execution at a "
            "time, talking to the hub over outbound HTTP(S) only. It reconnects by itself after a hub outage; "
            "SIGINT or SIGTERM stop it (a running execution is stopped and reported)."
        ),
        env={
            "EXEKRA_HUB_URL": "the hub (required; or --hub-url)",
            "EXEKRA_MACHINE_KEY": "this runner's machine key (required; or --machine-key)",
            "EXEKRA_MACHINE_SECRET": "its machine secret (required; or --machine-secret)",
            "EXEKRA_CA_BUNDLE": "CA bundle to verify the hub's certificate (or --ca-bundle)",
            "EXEKRA_RUNNER_WORKDIR": "where executions run (or --workdir; default ~/.exekra/runner-work/KEY)",
            "EXEKRA_RUNNER_NAME": "the name its log lines show (default: the machine key)",
        },
        examples=[
            "exekra runner --hub-url https://hub.example.com:4545 --machine-key rk_… --machine-secret …",
            "EXEKRA_HUB_URL=https://hub.example.com:4545 EXEKRA_MACHINE_KEY=rk_… EXEKRA_MACHINE_SECRET=… exekra runner",
        ],
    )
    runner.add_argument("--hub-url", help="hub URL (EXEKRA_HUB_URL)")
    runner.add_argument("--machine-key", help="machine key (EXEKRA_MACHINE_KEY)")
    runner.add_argument("--machine-secret", help="machine secret (EXEKRA_MACHINE_SECRET)")
    runner.add_argument("--ca-bundle", help="CA bundle to verify the hub's certificate")
    runner.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (testing only)")
    runner.add_argument("--workdir", help="working directory for executions")
    runner.set_defaults(func=_runner)

    up = add_command(
        commands,
        "up",
        summary="start everything on this machine: embedded PostgreSQL and Redis, hub, local runners",
        description=(
            "One-command start: embedded PostgreSQL (data under EXEKRA_HOME) unless DATABASE_URL is set, "
            "embedded Redis unless REDIS_URL is set, migrations, a first admin (password printed once, or "
            "EXEKRA_ADMIN_PASSWORD), N local runners and an example workflow. A port that is taken is refused "
            "before anything starts (--port 0 picks a free one). Ctrl-C stops everything."
        ),
        env={
            "EXEKRA_HOME": "data directory (~/.exekra; --home overrides)",
            "EXEKRA_ADMIN_PASSWORD": "the first admin's password (default: a random one, printed once)",
            "EXEKRA_HOST / EXEKRA_PORT": "where the hub listens (127.0.0.1 / 4545; --host/--port override)",
            "DATABASE_URL / REDIS_URL": "use these servers instead of the embedded ones",
        },
        examples=["exekra up", "exekra up --port 0 --runners 4 --home /srv/exekra"],
    )
    up.add_argument("--runners", type=int, default=2, help="local runners to start (default 2)")
    up.add_argument("--host", help="listen address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="listen port (default 4545)")
    up.add_argument("--home", help="data directory (EXEKRA_HOME, default ~/.exekra)")
    up.add_argument(
        "--workers", type=_positive_int, metavar="N", help="hub worker processes (EXEKRA_HUB_WORKERS, default 1)"
    )
    up.set_defaults(func=_up)

    from exekra.clientcli import add_client_commands
    from exekra.license_cli import add_license_commands

    add_license_commands(commands)
    add_client_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `exekra` console script: runs one command, and answers any failure with one line
    on standard error and a non-zero exit code (see `exekra.cli_errors`)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a command line argparse refused (one line, exit 2)
        return exc.code if isinstance(exc.code, int) else 0
    return run_command(args, args.func)


if __name__ == "__main__":
    sys.exit(main())
