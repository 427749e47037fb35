"""The `exekra` client commands and the `exekra.client` SDK against a real hub and a real runner (SPEC §11)."""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exekra.client import (
    AsyncExekraClient,
    Conflict,
    ExekraClient,
    HubUnreachable,
    NotAuthenticated,
    NotFound,
    Problem,
    ValidationFailed,
)

from .conftest import PASSWORD, HubProcess, RunnerProcess, wait_status, wait_until

Cli = Callable[..., subprocess.CompletedProcess[str]]

GREETER: dict[str, Any] = {
    "inputs": {"who": {"type": "string", "required": True}, "count": {"type": "integer", "default": 1}},
    "nodes": [
        {"id": "greet", "activity": "log.message", "params": {"message": "hello {{ inputs.who }}"}},
        {"id": "double", "activity": "vars.set", "params": {"name": "n", "value": "{{ inputs.count * 2 }}"}},
    ],
    "edges": [{"from": "greet", "to": "double"}],
    "outputs": {"greeting": "hello {{ inputs.who }}", "doubled": "{{ nodes.double.value }}"},
}
FAILING: dict[str, Any] = {"nodes": [{"id": "boom", "activity": "control.fail", "params": {"message": "no luck"}}]}
SLOW: dict[str, Any] = {"nodes": [{"id": "nap", "activity": "control.delay", "params": {"seconds": 60}}]}


def _env(config_dir: Path, hub_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EXEKRA_TOKEN", "EXEKRA_HUB_URL")}
    return {**env, "EXEKRA_CONFIG_DIR": str(config_dir), "EXEKRA_HUB_URL": hub_url, **extra}


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exekra.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exekra-config")


@pytest.fixture(scope="module")
def cli(hub_process: HubProcess, api: httpx.Client, config_dir: Path) -> Cli:
    """`cli("workflow", "list")`: runs `exekra …` signed in (by `exekra login`) as the e2e admin."""
    env = _env(config_dir, hub_process.url)
    login = _run(env, "login", "--email", "admin@e2e.test", "--password-stdin", stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    return lambda *args, stdin=None: _run(env, *args, stdin=stdin)


@pytest.fixture(scope="module")
def runner(api: httpx.Client, hub_process: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `exekra runner` for the module; its name is the label the module's workflows require."""
    name = f"cli-{secrets.token_hex(4)}"
    body = api.post("/api/runners", json={"name": name, "labels": [name]}).json()
    home = tmp_path_factory.mktemp("cli-runner")
    process = RunnerProcess(
        name, body["runner"]["id"], body["machineKey"], body["machineSecret"], home / "work", home / "runner.log"
    )
    process.start(hub_process.url)
    yield name
    process.stop()


def _push(cli: Cli, tmp_path: Path, definition: dict[str, Any], label: str, name: str | None = None) -> str:
    """Push an export document through the CLI and publish it; returns the workflow name."""
    name = name or f"cli-wf-{secrets.token_hex(4)}"
    document = {"format": "exekra.workflow/v1", "name": name, "labels": [label], "definition": definition}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    result = cli("workflow", "push", str(path), "--publish")
    assert result.returncode == 0, result.stderr
    assert f"{name}: version " in result.stdout and " published" in result.stdout
    return name


def test_login_stores_the_token_for_the_user_only(cli: Cli, config_dir: Path) -> None:
    path = config_dir / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["hubs"][stored["current"]]["token"].startswith("exs_")
    listed = cli("workflow", "list", "--json")
    assert listed.returncode == 0 and isinstance(json.loads(listed.stdout)["workflows"], list)


def test_run_wait_completes_with_outputs_live_logs_and_exit_code_0(cli: Cli, runner: str, tmp_path: Path) -> None:
    name = _push(cli, tmp_path, GREETER, runner)
    result = cli("run", name, "--input", "who=Ada", "--input", "count=3", "--wait", "--timeout", "90")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("COMPLETED")
    assert '"greeting": "hello Ada"' in result.stdout
    assert "hello Ada" in result.stderr  # the live log
    assert "[QUEUED]" in result.stderr  # progress, one line per status change when not on a terminal
    # The runner by its name, shown before the log lines it writes.
    assert f"on runner {runner}" in result.stderr
    assert result.stderr.index(f"on runner {runner}") < result.stderr.index("hello Ada")

    as_json = cli("run", name, "-i", "who=Bob", "-i", "count:=4", "--wait", "--json", "--no-logs")
    assert as_json.returncode == 0, as_json.stderr
    execution = json.loads(as_json.stdout)["execution"]
    assert execution["status"] == "COMPLETED" and execution["inputs"] == {"who": "Bob", "count": 4}
    assert str(execution["outputs"]["doubled"]) == "8"
    assert "hello Bob" not in as_json.stderr

    listed = json.loads(cli("executions", "list", "--workflow", name, "--json").stdout)["executions"]
    assert listed[0]["id"] == execution["id"] and len(listed) == 2
    shown = json.loads(cli("executions", "show", execution["id"], "--json").stdout)["execution"]
    assert shown["outputs"] == execution["outputs"]
    logs = cli("executions", "logs", execution["id"])
    assert logs.returncode == 0 and "hello Bob" in logs.stdout
    described = cli("executions", "show", execution["id"])
    assert "by admin@e2e.test" in described.stdout and f"runner: {runner}" in described.stdout
    assert re.search(r"^    greet +log\.message +COMPLETED +\d+ ms$", described.stdout, re.MULTILINE), described.stdout


def test_run_wait_of_a_failing_workflow_exits_1(cli: Cli, runner: str, tmp_path: Path) -> None:
    name = _push(cli, tmp_path, FAILING, runner)
    result = cli("run", name, "--wait", "--timeout", "90")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("FAILED") and "no luck" in result.stdout


def test_run_wait_of_a_stopped_execution_exits_2(
    cli: Cli, runner: str, tmp_path: Path, api: httpx.Client, hub_process: HubProcess, config_dir: Path
) -> None:
    name = _push(cli, tmp_path, SLOW, runner)
    env = _env(config_dir, hub_process.url)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "exekra.cli", "run", name, "--wait", "--timeout", "90"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        workflow_id = api.get("/api/workflows", params={"q": name}).json()["workflows"][0]["id"]

        def running() -> str | None:
            found = api.get("/api/executions", params={"workflowId": workflow_id}).json()["executions"]
            return found[0]["id"] if found else None

        execution_id = wait_until(running, 30, 0.1, "the execution to be created")
        wait_status(api, execution_id, "RUNNING", 60)
        stopped = cli("executions", "stop", execution_id)
        assert stopped.returncode == 0 and "stop requested" in stopped.stdout
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 2, err
    assert out.startswith("STOPPED")


def test_workflow_show_export_and_import(cli: Cli, runner: str, tmp_path: Path) -> None:
    name = _push(cli, tmp_path, GREETER, runner)
    shown = cli("workflow", "show", name)
    assert shown.returncode == 0 and "published version: 1" in shown.stdout and runner in shown.stdout
    _push(cli, tmp_path, GREETER, runner, name=name)  # version 2, published: version 1 is superseded
    states = [line.split()[:2] for line in cli("workflow", "show", name).stdout.splitlines()[-2:]]
    assert states == [["2", "published"], ["1", "superseded"]]
    rolled = cli("workflow", "publish", name, "--version", "1")  # a rollback
    assert rolled.returncode == 0 and rolled.stdout.strip() == f"{name}: version 1 published", rolled.stderr
    states = [line.split()[:2] for line in cli("workflow", "show", name).stdout.splitlines()[-2:]]
    assert states == [["2", "superseded"], ["1", "published"]]
    again = cli("workflow", "publish", name, "--version", "1")
    assert again.returncode != 0 and len(again.stderr.strip().splitlines()) == 1 and "published one" in again.stderr
    assert cli("workflow", "publish", name, "--version", "2").returncode == 0
    exported = tmp_path / "exported.json"
    assert cli("workflow", "export", name, "-o", str(exported)).returncode == 0
    document = json.loads(exported.read_text())
    assert document["format"] == "exekra.workflow/v1" and document["definition"] == GREETER

    again = cli("workflow", "import", str(exported))
    assert again.returncode == 3 and "already exists" in again.stderr and "Traceback" not in again.stderr
    document["name"] = name + "-copy"
    exported.write_text(json.dumps(document))
    imported = cli("workflow", "import", str(exported), "--json")
    assert imported.returncode == 0
    assert json.loads(imported.stdout)["version"]["published"] is False
    new_version = cli("workflow", "import", str(exported), "--mode", "new-version")
    assert new_version.returncode == 0 and "imported as version 2" in new_version.stdout


def test_workflow_set_retry_shows_refuses_and_clears_the_policy(cli: Cli, runner: str, tmp_path: Path) -> None:
    name = _push(cli, tmp_path, FAILING, runner)
    set_ = cli(
        "workflow", "set-retry", name, "--attempts", "2", "--backoff", "5", "--factor", "3", "--on", "failed,TIMEOUT"
    )
    assert set_.returncode == 0, set_.stderr
    assert set_.stdout.strip() == f"{name}: retry 2 time(s) on FAILED, TIMEOUT, after 5 s (x3 each time)"
    assert "retry: 2 time(s) on FAILED, TIMEOUT" in cli("workflow", "show", name).stdout
    refused = cli("workflow", "set-retry", name, "--attempts", "2", "--on", "STOPPED")
    assert refused.returncode == 3 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert cli("workflow", "set-retry", name).returncode != 0  # neither --attempts nor --off
    off = cli("workflow", "set-retry", name, "--off", "--json")
    assert off.returncode == 0 and json.loads(off.stdout)["workflow"]["retry"] is None


def test_workflow_set_limit_shows_refuses_bad_input_in_one_line_and_clears_it(
    cli: Cli, runner: str, tmp_path: Path
) -> None:
    name = _push(cli, tmp_path, FAILING, runner)
    set_ = cli("workflow", "set-limit", name, "--max", "3", "--key", "{{ inputs.customer }}")
    assert set_.returncode == 0, set_.stderr
    assert set_.stdout.strip() == f"{name}: concurrency limit 3 running at most per value of {{{{ inputs.customer }}}}"
    assert "concurrency limit: 3 running at most" in cli("workflow", "show", name).stdout
    for bad in (["--max", "0"], ["--max", "2", "--key", "{{ inputs.customer"], []):
        refused = cli("workflow", "set-limit", name, *bad)
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr
    off = cli("workflow", "set-limit", name, "--off", "--json")
    assert off.returncode == 0 and json.loads(off.stdout)["workflow"]["maxConcurrent"] is None


def test_runners_register_and_list(cli: Cli) -> None:
    name = f"cli-reg-{secrets.token_hex(3)}"
    registered = cli("runners", "register", name, "--label", "gpu", "--type", "linux")
    assert registered.returncode == 0, registered.stderr
    assert "--machine-secret" in registered.stdout and "shown only now" in registered.stdout
    listed = json.loads(cli("runners", "list", "--json").stdout)["runners"]
    mine = next(r for r in listed if r["name"] == name)
    assert mine["labels"] == ["gpu"] and mine["type"] == "linux" and mine["status"] == "OFFLINE"


def test_license_show_names_the_hub_id_and_install_answers_a_refusal_in_one_line(cli: Cli, tmp_path: Path) -> None:
    shown = cli("license", "show")
    assert shown.returncode == 0, shown.stderr
    hub_id = json.loads(cli("license", "show", "--json").stdout)["license"]["hubId"]
    assert f"hub id: {hub_id}" in shown.stdout and "community edition" in shown.stdout

    private, public = tmp_path / "stranger.pem", tmp_path / "stranger.pub.pem"
    assert cli("license", "keygen", "--private-key", str(private), "--public-key", str(public)).returncode == 0
    issued = cli(
        "license", "issue", "--private-key", str(private), "--licensee", "Stranger", "--email", "admin@e2e.test",
        "--max-runners", "1", "--expires-at", "2099-01-01", "--hub-id", hub_id, "--out", str(tmp_path / "s.lic"),
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    refused = cli("license", "install", str(tmp_path / "s.lic"))
    assert refused.returncode == 3 and refused.stderr.count("\n") == 1
    assert "signature does not verify" in refused.stderr  # the hub trusts its built-in key, not this one


def test_triggers_create_list_enable_disable(cli: Cli, runner: str, tmp_path: Path) -> None:
    name = _push(cli, tmp_path, GREETER, runner)
    schedule = cli(
        "triggers", "create", name, "--name", f"{name}-nightly", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin",
        "-i", "who=night", "--json",
    )  # fmt: skip
    assert schedule.returncode == 0, schedule.stderr
    created = json.loads(schedule.stdout)["trigger"]
    assert created["nextFireAt"] and created["inputs"] == {"who": "night"}

    webhook = cli("triggers", "create", name, "--name", f"{name}-hook", "--webhook")
    assert webhook.returncode == 0 and "/api/webhooks/exw_" in webhook.stdout

    listed = json.loads(cli("triggers", "list", "--workflow", name, "--json").stdout)["triggers"]
    assert sorted(t["type"] for t in listed) == ["SCHEDULE", "WEBHOOK"]

    disabled = cli("triggers", "disable", f"{name}-nightly", "--json")
    assert disabled.returncode == 0 and json.loads(disabled.stdout)["trigger"]["nextFireAt"] is None
    enabled = cli("triggers", "enable", created["id"])
    assert enabled.returncode == 0 and "enabled; next fire" in enabled.stdout

    hourly = cli("triggers", "create", name, "--name", f"{name}-hourly", "--cron", "0 * * * *", "--overlap", "skip")
    assert hourly.returncode == 0 and "overlap skip" in hourly.stdout, hourly.stderr
    changed = cli("triggers", "set-overlap", f"{name}-hourly", "queue_one", "--json")
    assert changed.returncode == 0 and json.loads(changed.stdout)["trigger"]["overlapPolicy"] == "queue_one"
    listed = json.loads(cli("triggers", "list", "--workflow", name, "--json").stdout)["triggers"]
    assert {t["name"]: t["overlapPolicy"] for t in listed if t["type"] == "SCHEDULE"} == {
        f"{name}-nightly": "allow",
        f"{name}-hourly": "queue_one",
    }
    hook_overlap = cli("triggers", "create", name, "--name", "bad", "--webhook", "--overlap", "skip")
    assert hook_overlap.returncode == 2 and hook_overlap.stderr.count("\n") == 1 and "--overlap" in hook_overlap.stderr
    unknown = cli("triggers", "set-overlap", f"{name}-hourly", "sometimes")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "queue_one" in unknown.stderr

    invalid = cli("triggers", "create", name, "--name", "bad", "--cron", "61 * * * *")
    assert invalid.returncode == 3 and "invalid minute field '61'" in invalid.stderr
    neither = cli("triggers", "create", name, "--name", "bad")
    assert neither.returncode == 2 and "--cron" in neither.stderr


def test_errors_are_one_friendly_line_with_exit_code_3(cli: Cli, hub_process: HubProcess, tmp_path: Path) -> None:
    unknown = cli("run", "no-such-workflow")
    assert unknown.returncode == 3 and unknown.stderr.strip() == "exekra run: workflow no-such-workflow not found"

    unreachable = _run(_env(tmp_path, "http://127.0.0.1:9"), "workflow", "list")
    assert unreachable.returncode == 3 and "cannot reach the hub at http://127.0.0.1:9" in unreachable.stderr

    signed_out = _run(_env(tmp_path, hub_process.url), "workflow", "list")
    assert signed_out.returncode == 3 and "run `exekra login`" in signed_out.stderr

    token = _run(_env(tmp_path, hub_process.url, EXEKRA_TOKEN="exk_forged"), "executions", "list")
    assert token.returncode == 3 and "not signed in" in token.stderr

    bad_input = cli("run", "whatever", "--input", "novalue")
    assert bad_input.returncode in (2, 3) and "Traceback" not in bad_input.stderr
    for result in (unknown, unreachable, signed_out, token, bad_input):
        assert "Traceback" not in result.stderr


def _token(api: httpx.Client) -> str:
    return str(api.headers["Authorization"]).removeprefix("Bearer ")


def test_sdk_raises_typed_errors_from_the_api_error_shape(api: httpx.Client, hub_process: HubProcess) -> None:
    with ExekraClient(hub_process.url, _token(api)) as hub:
        assert hub.health().status == "ok"
        with pytest.raises(NotFound) as missing:
            hub.get_workflow("00000000-0000-0000-0000-000000000000")
        assert missing.value.status_code == 404 and missing.value.code == "not_found"
        with pytest.raises(ValidationFailed) as invalid:
            hub.create_workflow(f"sdk-{secrets.token_hex(3)}", {"nodes": [{"id": "x", "activity": "nope"}]})
        assert invalid.value.problems == [Problem("node 'x': unknown activity 'nope'", node="x")]
        name = f"sdk-{secrets.token_hex(3)}"
        hub.create_workflow(name, GREETER, labels=["nobody"])
        with pytest.raises(Conflict):
            hub.create_workflow(name, GREETER)
        assert hub.find_workflow(name).name == name
        page = hub.list_workflows(limit=1)
        assert len(page.items) == 1 and page.total >= 1 and page.limit == 1
    with ExekraClient(hub_process.url, "exk_forged") as stranger, pytest.raises(NotAuthenticated):
        stranger.me()
    with ExekraClient("http://127.0.0.1:9", timeout=2) as nowhere, pytest.raises(HubUnreachable):
        nowhere.health()


def test_sdk_sync_runs_follows_logs_and_waits(api: httpx.Client, hub_process: HubProcess, runner: str) -> None:
    with ExekraClient(hub_process.url, _token(api)) as hub:
        created = hub.create_workflow(f"sdk-{secrets.token_hex(3)}", GREETER, labels=[runner])
        hub.publish_workflow(created.workflow.id)
        started = hub.run(created.workflow.id, {"who": "sync"}, idempotency_key="once")
        again = hub.run(created.workflow.id, {"who": "sync"}, idempotency_key="once")
        assert again.duplicate and again.execution.id == started.execution.id
        followed = list(hub.follow_logs(started.execution.id))
        done = hub.wait(started.execution.id, timeout=60)
        nodes = hub.get_nodes(done.id)
    assert done.status == "COMPLETED" and done.is_terminal and done.outputs == {"greeting": "hello sync", "doubled": 2}
    assert any("hello sync" in line.message for line in followed)
    assert [(line.node, line.event) for line in followed if line.event] == [
        ("greet", "started"),
        ("greet", "completed"),
        ("double", "started"),
        ("double", "completed"),
    ]
    assert [(n.id, n.state) for n in nodes] == [("greet", "COMPLETED"), ("double", "COMPLETED")]
    assert all(n.duration_ms is not None and n.duration_ms >= 0 for n in nodes)


async def test_sdk_async_runs_follows_logs_and_waits(api: httpx.Client, hub_process: HubProcess, runner: str) -> None:
    async with AsyncExekraClient(hub_process.url, _token(api)) as hub:
        created = await hub.create_workflow(f"sdk-{secrets.token_hex(3)}", GREETER, labels=[runner])
        await hub.publish_workflow(created.workflow.id)
        started = await hub.run(created.workflow.id, {"who": "async", "count": 5})
        lines = [line.message async for line in hub.follow_logs(started.execution.id)]
        done = await hub.wait(started.execution.id, timeout=60, poll_interval=0.2)
        listed = await hub.list_executions(workflow_id=created.workflow.id)
    assert done.status == "COMPLETED" and str((done.outputs or {})["doubled"]) == "10"
    assert any("hello async" in line for line in lines)
    assert [e.id for e in listed.items] == [done.id]


def test_short_ids_of_six_or_more_characters_work_and_an_ambiguous_one_names_the_matches(
    cli: Cli, runner: str, tmp_path: Path, api: httpx.Client, e2e_database_url: str
) -> None:
    name = _push(cli, tmp_path, GREETER, runner)
    execution = json.loads(cli("run", name, "-i", "who=Short", "--wait", "--json", "--no-logs").stdout)["execution"]
    logs = cli("executions", "logs", execution["id"][:8])
    assert logs.returncode == 0 and "hello Short" in logs.stdout, logs.stderr
    shown = cli("executions", "show", execution["id"][:6].upper(), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["execution"]["id"] == execution["id"]
    too_short = cli("executions", "logs", execution["id"][:5])
    assert too_short.returncode == 3 and "first 6+ characters" in too_short.stderr

    workflow_id = api.get("/api/workflows", params={"q": name}).json()["workflows"][0]["id"]
    assert cli("workflow", "show", workflow_id[:7]).stdout.startswith(name)

    twins = [api.post("/api/runners", json={"name": f"twin-{secrets.token_hex(3)}"}).json()["runner"] for _ in range(2)]
    prefix = secrets.token_hex(3)
    new_ids = [f"{prefix}{i}0-0000-4000-8000-00000000000{i}" for i in (1, 2)]
    _set_runner_ids(e2e_database_url, {t["id"]: new for t, new in zip(twins, new_ids, strict=True)})
    ambiguous = cli("run", name, "-i", "who=x", "--runner", prefix)
    assert ambiguous.returncode == 2, ambiguous.stderr
    line = ambiguous.stderr.strip()
    assert len(line.splitlines()) == 1 and all(new in line for new in new_ids) and "give more characters" in line
    pinned = cli("run", name, "-i", "who=x", "--runner", new_ids[1][:8], "--json")
    assert pinned.returncode == 0 and json.loads(pinned.stdout)["execution"]["pinnedRunnerId"] == new_ids[1]


def _set_runner_ids(database_url: str, renames: dict[str, str]) -> None:
    """Give fresh runners (nothing refers to them yet) ids of the test's choosing."""
    import asyncio

    import asyncpg

    async def rename() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            for old, new in renames.items():
                await connection.execute("UPDATE runners SET id = $1 WHERE id = $2", uuid.UUID(new), uuid.UUID(old))
        finally:
            await connection.close()

    asyncio.run(rename())


def test_every_json_output_has_the_shape_of_the_api_answer(
    cli: Cli, runner: str, tmp_path: Path, api: httpx.Client
) -> None:
    """A script written against the API reads the CLI's --json the same way (issue 13, item 11)."""
    name = _push(cli, tmp_path, GREETER, runner)
    ran = json.loads(cli("run", name, "-i", "who=Json", "--wait", "--json", "--no-logs").stdout)
    execution_id = ran["execution"]["id"]
    workflow_id = ran["execution"]["workflowId"]
    api_execution = api.get(f"/api/executions/{execution_id}").json()
    assert set(ran) == set(api_execution) and set(ran["execution"]) == set(api_execution["execution"])

    lists = {
        ("executions", "list", "--workflow", name): ("/api/executions", {"workflowId": workflow_id}),
        ("workflow", "list"): ("/api/workflows", {}),
        ("runners", "list"): ("/api/runners", {}),
        ("triggers", "list"): ("/api/triggers", {}),
    }
    for command, (path, params) in lists.items():
        printed = json.loads(cli(*command, "--json").stdout)
        answered = api.get(path, params=params).json()
        assert set(printed) == set(answered), command
        key = path.rsplit("/", 1)[1]
        assert [i["id"] for i in printed[key]] == [i["id"] for i in answered[key]][: len(printed[key])], command
        assert printed["total"] == answered["total"], command

    singles = {
        ("executions", "show", execution_id): f"/api/executions/{execution_id}",
        ("workflow", "show", name): f"/api/workflows/{workflow_id}",
    }
    for command, path in singles.items():
        printed = json.loads(cli(*command, "--json").stdout)
        assert set(printed) == set(api.get(path).json()), command

    logs = json.loads(cli("executions", "logs", execution_id, "--json").stdout)
    assert set(logs) == {"lines", "nextSeq"} and logs["nextSeq"] == logs["lines"][-1]["seq"]
    followed = cli("executions", "logs", execution_id, "--follow", "--json").stdout.splitlines()
    assert [json.loads(line)["seq"] for line in followed] == [line["seq"] for line in logs["lines"]]  # JSON lines


def test_users_passwd_changes_the_own_password_and_keeps_this_login(
    api: httpx.Client, hub_process: HubProcess, tmp_path: Path
) -> None:
    email = f"op-{secrets.token_hex(3)}@e2e.test"
    assert api.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    env = _env(tmp_path, hub_process.url)
    assert _run(env, "login", "--email", email, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    elsewhere = httpx.post(f"{hub_process.url}/api/auth/login", json={"email": email, "password": PASSWORD})
    other_session = {"Authorization": f"Bearer {elsewhere.json()['token']}"}

    wrong = _run(env, "users", "passwd", "--password-stdin", stdin="not-it\nbrand-new-pw\n")
    assert wrong.returncode == 3 and wrong.stderr.strip() == "exekra users: currentPassword: wrong password"
    short = _run(env, "users", "passwd", "--password-stdin", stdin=f"{PASSWORD}\nshort\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr

    changed = _run(env, "users", "passwd", "--password-stdin", stdin=f"{PASSWORD}\nbrand-new-pw\n")
    assert changed.returncode == 0, changed.stderr
    assert f"Password changed for {email}" in changed.stdout
    assert _run(env, "workflow", "list").returncode == 0  # the CLI's own login goes on
    assert httpx.get(f"{hub_process.url}/api/auth/me", headers=other_session).status_code == 401
    old = httpx.post(f"{hub_process.url}/api/auth/login", json={"email": email, "password": PASSWORD})
    new = httpx.post(f"{hub_process.url}/api/auth/login", json={"email": email, "password": "brand-new-pw"})
    assert (old.status_code, new.status_code) == (401, 200)


def test_run_warns_about_inputs_the_workflow_does_not_declare(cli: Cli, runner: str, tmp_path: Path) -> None:
    name = _push(cli, tmp_path, GREETER, runner)
    result = cli("run", name, "-i", "who=Ada", "-i", "lable=x", "-i", "count=2")
    assert result.returncode == 0, result.stderr
    warning = result.stderr.strip()
    assert warning.startswith("exekra run: warning:") and len(warning.splitlines()) == 1
    assert "'lable'" in warning and "who, count" in warning and "'count'" not in warning
    quiet = cli("run", name, "-i", "who=Ada")
    assert quiet.returncode == 0 and quiet.stderr == ""
