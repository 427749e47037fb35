"""Every `exekra` command answers bad input, missing settings, an unreachable hub or database and HTTP errors
with one clear line on standard error and a non-zero exit code, never a traceback (issue 13, item 1)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exekra import cli
from exekra.client.config import store_login
from exekra.config import get_settings
from exekra.embedded import free_port

# A database nobody listens on: connecting is refused at once.
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/nothing"
SOME_ID = "cae1a064-0000-4000-8000-000000000000"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str


ANSWERS = {
    "server-error": Answer(500, b"<html><body>Internal Server Error</body></html>", "text/html"),
    "not-found": Answer(404, b'{"error": {"code": "not_found", "message": "nothing here", "details": null}}', "application/json"),
    "not-signed-in": Answer(401, b'{"error": {"code": "not_authenticated", "message": "Sign in", "details": null}}', "application/json"),
    "garbage": Answer(200, b"this is not JSON", "text/plain"),
    "forbidden-html": Answer(403, b"<h1>Forbidden</h1>", "text/html"),
}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    answer: Answer

    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(self.answer.status)
        self.send_header("content-type", self.answer.content_type)
        self.send_header("content-length", str(len(self.answer.body)))
        self.end_headers()
        self.wfile.write(self.answer.body)

    do_GET = do_POST = do_PATCH = do_DELETE = _reply

    def log_message(self, *_: object) -> None:
        return


@contextmanager
def _serving(answer: Answer) -> Iterator[str]:
    """A local HTTP server that gives `answer` to every request; yields its URL."""
    handler = type("Handler", (_Handler,), {"answer": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module", params=sorted(ANSWERS))
def error_hub(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A hub that gives the same (error) answer to every request: (its URL, the answer's name)."""
    with _serving(ANSWERS[request.param]) as url:
        yield url, request.param


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No EXEKRA_* settings, no database or Redis, a private config directory, and an empty working directory."""
    for name in list(os.environ):
        if name.startswith("EXEKRA_") or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("EXEKRA_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXEKRA_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "definition.json").write_text(json.dumps({"nodes": [{"id": "a", "activity": "log.message"}]}))
    (tmp_path / "acme.lic").write_text('{"license": {}, "signature": ""}')
    (tmp_path / "export.json").write_text(json.dumps({"format": "exekra.workflow/v1", "name": "wf", "definition": {}}))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix
        return
    for name, sub in actions[0].choices.items():
        yield from _leaf_commands(sub, (*prefix, name))


# Every client command, with arguments that make it talk to the hub.
CLIENT_COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("login",): ["--email", "ada@example.com", "--password-stdin"],
    ("logout",): [],
    ("users", "passwd"): ["--password-stdin"],
    ("workflow", "list"): [],
    ("workflow", "show"): ["wf"],
    ("workflow", "push"): ["definition.json", "--name", "wf"],
    ("workflow", "publish"): ["wf"],
    ("workflow", "set-retry"): ["wf", "--attempts", "2"],
    ("workflow", "set-limit"): ["wf", "--max", "2"],
    ("workflow", "export"): ["wf"],
    ("workflow", "import"): ["export.json"],
    ("run",): ["wf", "--wait"],
    ("executions", "list"): [],
    ("executions", "show"): [SOME_ID],
    ("executions", "logs"): [SOME_ID],
    ("executions", "stop"): [SOME_ID],
    ("runners", "list"): [],
    ("runners", "register"): ["build-7"],
    ("triggers", "list"): [],
    ("triggers", "create"): ["wf", "--name", "nightly", "--cron", "0 2 * * *"],
    ("triggers", "enable"): ["nightly"],
    ("triggers", "disable"): ["nightly"],
    ("triggers", "delete"): ["nightly"],
    ("triggers", "rotate-token"): ["nightly"],
    ("triggers", "set-overlap"): ["nightly", "skip"],
    ("alerts", "channels", "list"): [],
    ("alerts", "channels", "create"): ["pager", "--webhook", "https://alerts.example.com/x"],
    ("alerts", "channels", "delete"): ["pager"],
    ("alerts", "channels", "rotate-secret"): ["pager"],
    ("alerts", "channels", "test"): ["pager"],
    ("alerts", "rules", "list"): [],
    ("alerts", "rules", "create"): ["failures", "--channel", "pager", "--on", "FAILED"],
    ("alerts", "rules", "enable"): ["failures"],
    ("alerts", "rules", "disable"): ["failures"],
    ("alerts", "rules", "delete"): ["failures"],
    ("alerts", "deliveries"): ["--failed"],
    ("alerts", "retry"): [SOME_ID],
    ("license", "show"): [],
    ("license", "install"): ["acme.lic"],
}

# `exekra license issue` arguments (with a private key that does not exist).
ISSUE = [
    "--private-key", "/nonexistent/k.pem", "--licensee", "ACME", "--email", "a@acme.example", "--max-runners", "2",
    "--expires-at", "2027-01-31", "--hub-id", "hub_x", "--out", "/nonexistent/x.lic",
]  # fmt: skip

# The commands that run the system rather than talk to a hub: settings missing or wrong, database unreachable.
SERVER_CASES: list[tuple[tuple[str, ...], dict[str, str], int, str]] = [
    (("hub",), {}, 2, "DATABASE_URL"),
    (("hub",), {"DATABASE_URL": NO_DATABASE}, 3, "cannot connect to the database"),
    (("hub",), {"DATABASE_URL": NO_DATABASE, "EXEKRA_PORT": "eighty"}, 2, "EXEKRA_PORT"),
    (("db", "upgrade"), {}, 2, "DATABASE_URL"),
    (("db", "upgrade"), {"DATABASE_URL": NO_DATABASE}, 3, "cannot connect to the database"),
    (("db", "upgrade"), {"DATABASE_URL": "not a url"}, 2, "DATABASE_URL"),
    (("purge",), {}, 2, "DATABASE_URL"),
    (("purge",), {"DATABASE_URL": NO_DATABASE}, 3, "cannot connect to the database"),
    (("purge", "--older-than-days", "-1"), {"DATABASE_URL": NO_DATABASE}, 2, "--older-than-days"),
    (("runner",), {}, 2, "EXEKRA_MACHINE_SECRET"),
    (("runner", "--hub-url", "hub.local", "--machine-key", "k", "--machine-secret", "s"), {}, 2, "http://"),
    (("hub",), {"DATABASE_URL": NO_DATABASE, "EXEKRA_LICENSE_PUBLIC_KEY": "c2hvcnQ="}, 2, "EXEKRA_LICENSE_PUBLIC_KEY"),
    (("hub",), {"DATABASE_URL": NO_DATABASE, "EXEKRA_SECRET_KEY": "fifteen chars.."}, 2, "at least 16"),
    (
        ("license", "keygen", "--private-key", "/nonexistent/dir/k.pem", "--public-key", "/nonexistent/dir/p.pem"),
        {},
        2,
        "cannot write",
    ),
    (("license", "keygen", "--private-key", "k.pem"), {}, 2, "--public-key"),
    (("license", "issue", *ISSUE[:-2], "--out", "x.lic"), {}, 2, "cannot read the private key"),
    (("license", "issue", *ISSUE[:6], "--max-runners", "0", *ISSUE[8:]), {}, 2, "--max-runners"),
    (("license", "issue", *ISSUE[:8], "--expires-at", "next year", *ISSUE[10:]), {}, 2, "--expires-at"),
]


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main(argv)


def _assert_one_clear_line(code: int, err: str) -> str:
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("exekra"), err
    return lines[0]


def test_every_command_has_an_error_case() -> None:
    covered = set(CLIENT_COMMANDS) | {case[0][: len(case[0])] for case in SERVER_CASES} | {("up",)}
    commands = set(_leaf_commands(cli.build_parser()))
    missing = {c for c in commands if not any(c == k[: len(c)] for k in covered)}
    assert not missing, f"commands without an error case: {sorted(missing)}"


@pytest.mark.parametrize(("argv", "env", "code", "text"), SERVER_CASES, ids=lambda v: str(v))
def test_server_commands_refuse_missing_or_wrong_settings_in_one_line(
    argv: tuple[str, ...],
    env: dict[str, str],
    code: int,
    text: str,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = _main(list(argv), monkeypatch)
    line = _assert_one_clear_line(result, capsys.readouterr().err)
    assert result == code, line
    assert text in line


@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS), ids=" ".join)
def test_client_commands_answer_an_unreachable_hub_in_one_line(
    command: tuple[str, ...], clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_url = f"http://127.0.0.1:{free_port()}"
    store_login(hub_url, "exs_stored")
    result = _main([*command, *CLIENT_COMMANDS[command], "--hub-url", hub_url], monkeypatch, "secret\nnew-secret\n")
    line = _assert_one_clear_line(result, capsys.readouterr().err)
    assert result == 3 and f"cannot reach the hub at {hub_url}" in line


@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS), ids=" ".join)
def test_client_commands_answer_http_errors_in_one_line(
    command: tuple[str, ...],
    error_hub: tuple[str, str],
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub_url, answer = error_hub
    store_login(hub_url, "exs_stored")
    result = _main([*command, *CLIENT_COMMANDS[command], "--hub-url", hub_url], monkeypatch, "secret\nnew-secret\n")
    if command == ("logout",) and answer == "not-signed-in":
        assert result == 0  # the session had ended already: signed out
        return
    _assert_one_clear_line(result, capsys.readouterr().err)
    assert result == 3


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["workflow", "push", "missing.json", "--name", "wf"], "cannot read missing.json"),
        (["workflow", "import", "definition.json", "--hub-url", "ftp://hub"], "http:// or https://"),
        (["run", "wf", "--input", "novalue", "--hub-url", "http://127.0.0.1:1"], "use name=value"),
        (["triggers", "create", "wf", "--name", "x"], "--cron"),
        (
            ["alerts", "channels", "create", "x", "--webhook", "https://a.example", "--slack", "https://b.example"],
            "one of",
        ),
        (["login", "--hub-url", "http://127.0.0.1:1"], "--email"),
        (["workflow", "export", "wf", "-o", "no/such/dir/wf.json", "--hub-url", "http://127.0.0.1:1"], "cannot write"),
        (["login", "--hub-url", "http://127.0.0.1:1", "--email", "a@b.c"], "--password-stdin"),
        (["license", "install", "missing.lic", "--hub-url", "http://127.0.0.1:1"], "cannot read the licence file"),
    ],
)
def test_bad_command_lines_are_refused_in_one_line_with_exit_2_or_3(
    argv: list[str], text: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _main(argv, monkeypatch)
    line = _assert_one_clear_line(result, capsys.readouterr().err)
    assert result in (2, 3) and text in line


def test_runner_without_settings_lists_every_missing_one_and_exits_2(tmp_path: Path) -> None:
    """The issue's report, as a user runs it: a real process, nothing configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXEKRA_")}
    result = subprocess.run(
        [sys.executable, "-m", "exekra.cli", "runner"],
        env={**env, "EXEKRA_CONFIG_DIR": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    line = _assert_one_clear_line(result.returncode, result.stderr)
    for option, variable in (
        ("--hub-url", "EXEKRA_HUB_URL"),
        ("--machine-key", "EXEKRA_MACHINE_KEY"),
        ("--machine-secret", "EXEKRA_MACHINE_SECRET"),
    ):
        assert option in line and variable in line


def test_an_unexpected_error_is_one_line_and_traceback_shows_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_: argparse.Namespace) -> int:
        raise RuntimeError("something broke")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["purge"].set_defaults(func=broken)  # type: ignore[union-attr]
    assert _main(["purge"], monkeypatch) == 1
    assert "RuntimeError: something broke" in _assert_one_clear_line(1, capsys.readouterr().err)
    assert _main(["--traceback", "purge"], monkeypatch) == 1
    assert "Traceback" in capsys.readouterr().err


def _refusal(*problems: str) -> Answer:
    error = {
        "code": "validation_failed",
        "message": f"Invalid definition: {problems[0]}",
        "details": {"problems": problems},
    }
    return Answer(422, json.dumps({"error": error}).encode(), "application/json")


def test_a_refused_definition_names_each_problem_once(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13, item 9: the first problem was printed in the header and again as the first bullet."""
    first, second = "node 'a': unknown activity 'nope'", "edge 1: node 'b' does not exist"
    with _serving(_refusal(first, second)) as hub_url:
        code = _main(["workflow", "push", "definition.json", "--name", "wf", "--hub-url", hub_url], monkeypatch)
    err = capsys.readouterr().err
    assert code == 3 and err.count(first) == 1 and err.count(second) == 1, err
    assert err.splitlines() == [
        "exekra workflow: Invalid definition (2 problems):",
        f"  - {first}",
        f"  - {second}",
    ]
    with _serving(_refusal(first)) as hub_url:
        code = _main(["workflow", "push", "definition.json", "--name", "wf", "--hub-url", hub_url], monkeypatch)
    assert code == 3 and capsys.readouterr().err == f"exekra workflow: Invalid definition: {first}\n"
