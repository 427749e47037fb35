"""`load_activities`: built-ins plus entry-point plugins, broken plugins skipped."""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import pytest

from exekra.workflow.activities import BUILTIN, ENTRY_POINT_GROUP, ActivityContext, load_activities


def greet(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"greeting": f"hello {params['name']}"}


def single(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    return {}


single.name = "acme.single"  # type: ignore[attr-defined]


class FakeEntryPoint:
    def __init__(self, name: str, loaded: object) -> None:
        self.name = name
        self._loaded = loaded

    def load(self) -> object:
        if isinstance(self._loaded, Exception):
            raise self._loaded
        return self._loaded


def use_entry_points(monkeypatch: pytest.MonkeyPatch, *entry_points: FakeEntryPoint) -> None:
    def fake(*, group: str) -> tuple[FakeEntryPoint, ...]:
        assert group == ENTRY_POINT_GROUP
        return entry_points

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)


def test_the_package_registers_the_builtins_as_an_entry_point() -> None:
    (entry_point,) = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "builtin"]
    assert entry_point.load() is BUILTIN
    assert load_activities() == BUILTIN


def test_builtins_cover_the_documented_activities() -> None:
    assert set(BUILTIN) == {
        "shell.run", "python.run", "http.request", "file.read", "file.write", "file.copy", "file.move",
        "file.delete", "file.list", "json.parse", "csv.read", "csv.write", "log.message", "vars.set",
        "control.if", "control.foreach", "control.join", "control.delay", "control.fail", "file.attach",
        "workflow.run", "browser.open", "browser.close", "browser.goto", "browser.click", "browser.fill", "browser.select",
        "browser.check", "browser.press", "browser.wait_for", "browser.get_text", "browser.get_attribute",
        "browser.extract_table", "browser.screenshot", "browser.download", "browser.upload",
        "sql.query", "sql.execute", "email.send", "email.read", "excel.read", "excel.write", "excel.append",
        "pdf.read_text", "pdf.extract_tables",
    }  # fmt: skip


def test_plugins_add_dicts_and_named_callables(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(
        monkeypatch,
        FakeEntryPoint("builtin", BUILTIN),
        FakeEntryPoint("acme", {"acme.greet": greet}),
        FakeEntryPoint("single", single),
    )
    activities = load_activities()

    assert activities["acme.greet"] is greet and activities["acme.single"] is single
    assert activities["shell.run"] is BUILTIN["shell.run"]


def test_broken_plugins_and_taken_names_are_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_entry_points(
        monkeypatch,
        FakeEntryPoint("broken", ImportError("no module named acme")),
        FakeEntryPoint("nameless", greet),
        FakeEntryPoint("not-callable", {"acme.x": "nope"}),
        FakeEntryPoint("thief", {"shell.run": greet, "acme.greet": greet}),
    )
    with caplog.at_level(logging.WARNING):
        activities = load_activities()

    assert activities["shell.run"] is BUILTIN["shell.run"] and activities["acme.greet"] is greet
    assert "acme.x" not in activities
    assert [record.getMessage() for record in caplog.records] == [
        "activity plugin 'broken' skipped: no module named acme",
        "activity plugin 'nameless' skipped: expected a dict of activities or an activity with a 'name' attribute",
        "activity plugin 'not-callable' skipped: expected a dict of activities or an activity with a 'name' attribute",
        "activity 'shell.run' of plugin 'thief' skipped: the name is taken",
    ]
