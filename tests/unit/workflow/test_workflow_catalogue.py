"""The activity catalogue: schemas from the declarations, plugins, and what a runner declares."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from exekra.workflow.activities import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    ActivityContext,
    Params,
    activity,
    installed_activities,
)
from exekra.workflow.catalogue import (
    CAPABILITIES,
    EVERY_RUNNER,
    catalogue,
    detect_capabilities,
    required_activities,
    runner_catalogue,
)
from exekra.workflow.errors import ActivityError
from exekra.workflow.scope import ActivitySettings

ENTRY_KEYS = {"name", "category", "description", "params", "outputs", "capability", "package", "version"}


def walk(schema: Any) -> list[dict[str, Any]]:
    """Every schema object inside `schema`, itself included."""
    found = []
    if isinstance(schema, dict):
        found.append(schema)
        for key, value in schema.items():
            if key == "properties":
                for sub in value.values():
                    found.extend(walk(sub))
            elif key in ("items", "additionalProperties", "anyOf"):
                found.extend(walk(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(walk(item))
    return found


def test_every_builtin_is_listed_with_a_described_schema() -> None:
    entries = catalogue()
    assert [entry["name"] for entry in entries] == sorted(BUILTIN)
    for entry in entries:
        assert set(entry) == ENTRY_KEYS
        assert entry["category"] and entry["description"], entry["name"]
        assert entry["package"] == "exekra"
        for side in ("params", "outputs"):
            schema = entry[side]
            assert schema["type"] == "object", (entry["name"], side)
            for name, prop in schema.get("properties", {}).items():
                assert prop.get("description"), f"{entry['name']} {side}.{name} has no description"
            for node in walk(schema):
                assert "$ref" not in node and "title" not in node and node.get("type") != "null", entry["name"]
    assert json.loads(json.dumps(entries)) == entries  # plain JSON


def test_schemas_carry_types_defaults_enums_and_required_params() -> None:
    specs = {name: installed.spec for name, installed in installed_activities().items()}
    browser_open = specs["browser.open"]
    assert browser_open.capability == "browser" and browser_open.category == "Browser"
    assert browser_open.params["properties"]["headless"] == {
        "default": True,
        "description": "Run without a window; a visible window needs a display on the runner.",
        "type": "boolean",
    }
    assert browser_open.params["properties"]["viewport"]["properties"]["width"]["default"] == 1280
    assert browser_open.outputs["required"] == ["url", "title", "session"]
    send = specs["email.send"]
    assert send.params["required"] == ["smtp", "from", "to", "subject"]
    smtp = send.params["properties"]["smtp"]
    assert smtp["type"] == "object" and smtp["required"] == ["host"]
    assert smtp["properties"]["security"]["enum"] == ["none", "starttls", "tls"]
    query = specs["sql.query"]
    assert query.params["required"] == ["url", "sql"]
    assert set(query.outputs["properties"]) == {"rows", "rowCount", "columns", "truncated"}
    assert specs["sql.execute"].params["properties"]["params"]["anyOf"] == [
        {"additionalProperties": True, "type": "object"},
        {"items": {"additionalProperties": True, "type": "object"}, "type": "array"},
    ]
    assert specs["excel.read"].params["properties"]["header"]["default"] is True
    assert {specs[name].capability for name in ("excel.write", "pdf.read_text", "email.read", "shell.run")} == {
        "excel",
        "pdf",
        "email",
        None,
    }


def test_param_errors_name_the_param_path_and_what_it_must_be() -> None:
    send, execute = BUILTIN["email.send"], BUILTIN["sql.execute"]
    ctx = ActivityContext(node_id="n", workdir=Path("."), emit=lambda level, message, **_: None)
    with pytest.raises(ActivityError) as raised:
        send(ctx, {"smtp": {"port": "twenty-five", "security": "ssl"}, "from": "a@x", "to": 5, "subject": "s"})
    assert str(raised.value) == (
        "param 'smtp.host' is required; param 'smtp.port' must be an integer; "
        "param 'smtp.security' must be one of none, starttls, tls; param 'to' must be a string or a list of strings"
    )  # a port given as the text "25" is fine: credential fields are text (tests/activities/test_email.py)
    with pytest.raises(ActivityError, match=r"^param 'params' must be an object or a list of objects$"):
        execute(ctx, {"url": "sqlite://", "sql": "x", "params": [{"a": 1}, 2]})
    with pytest.raises(ActivityError, match=r"^param 'maxRows' must be >= 1$"):
        BUILTIN["sql.query"](ctx, {"url": "sqlite://", "sql": "x", "maxRows": 0})


class GreetParams(Params):
    who: str
    """Who to greet."""


@activity("acme.greet", category="Examples", params=GreetParams, capability="acme-desk")
def greet(ctx: ActivityContext, params: GreetParams) -> dict[str, Any]:
    """Say hello."""
    return {"greeting": f"hello {params.who}"}


def bare(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """A plugin activity without a declaration."""
    return {}


class FakeDistribution:
    name = "acme-exekra"
    version = "2.3.0"


class FakeEntryPoint:
    def __init__(self, name: str, loaded: object) -> None:
        self.name = name
        self._loaded = loaded
        self.dist = FakeDistribution()

    def load(self) -> object:
        return self._loaded


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    entry_points = (FakeEntryPoint("acme", {"acme.greet": greet, "acme.bare": bare}),)

    def fake(*, group: str) -> tuple[FakeEntryPoint, ...]:
        assert group == ENTRY_POINT_GROUP
        return entry_points

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)


def test_plugins_are_listed_with_their_package_and_a_minimal_schema_when_undeclared(plugins: None) -> None:
    entries = {entry["name"]: entry for entry in catalogue()}
    assert entries["acme.greet"]["package"] == "acme-exekra" and entries["acme.greet"]["version"] == "2.3.0"
    assert entries["acme.greet"]["params"]["properties"]["who"] == {"description": "Who to greet.", "type": "string"}
    assert entries["acme.bare"] == {
        "name": "acme.bare",
        "category": "Plugins",
        "description": "A plugin activity without a declaration.",
        "params": {"type": "object"},
        "outputs": {"type": "object"},
        "capability": None,
        "package": "acme-exekra",
        "version": "2.3.0",
    }


def test_a_runner_declares_what_it_can_run(plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_chromium = tmp_path / "chromium"
    fake_chromium.write_text("#!/bin/sh\n")
    fake_chromium.chmod(fake_chromium.stat().st_mode | stat.S_IXUSR)
    with_browser = runner_catalogue(ActivitySettings(chromium=str(fake_chromium)))
    assert with_browser.capabilities == ["acme-desk", "browser", "email", "excel", "pdf", "sql"]
    assert {"browser.open", "acme.greet", "acme.bare", "shell.run"} <= set(with_browser.names)

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openpyxl" else real_find_spec(name, *a)
    )
    without = runner_catalogue(ActivitySettings(chromium=str(tmp_path / "absent")))
    assert without.capabilities == ["acme-desk", "email", "pdf", "sql"]
    assert not any(name.startswith(("browser.", "excel.")) for name in without.names)
    assert "pdf.read_text" in without.names and "control.if" in without.names
    assert without.digest != with_browser.digest
    assert without.to_dict()["digest"] == without.digest
    assert detect_capabilities(ActivitySettings(chromium=str(tmp_path / "absent"))) == ["email", "pdf", "sql"]


def test_every_builtin_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "workflows.md").read_text()
    assert [
        name for name in BUILTIN if f"`{name}`" not in docs and f"### {name}" not in docs and f"#### {name}" not in docs
    ] == []


def test_required_activities_are_those_used_beyond_what_every_runner_has_foreach_nodes_included() -> None:
    definition = {
        "nodes": [
            {"id": "open", "activity": "browser.open", "params": {"url": "http://127.0.0.1/"}},
            {
                "id": "each",
                "activity": "control.foreach",
                "params": {
                    "items": [1],
                    "nodes": [{"id": "q", "activity": "sql.query"}, {"id": "s", "activity": "shell.run"}],
                },
            },
            {"id": "log", "activity": "log.message"},
        ]
    }
    assert required_activities(definition) == ["browser.open", "sql.query"]
    assert required_activities({"nodes": [{"id": "s", "activity": "shell.run"}]}) == []


def test_every_runner_has_the_builtins_that_need_no_capability() -> None:
    assert {"shell.run", "http.request", "control.foreach", "log.message"} <= EVERY_RUNNER
    assert not any(name.split(".")[0] in CAPABILITIES for name in EVERY_RUNNER)
    assert set(runner_catalogue(ActivitySettings(chromium="/nonexistent")).names) >= EVERY_RUNNER
