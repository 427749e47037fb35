"""Browser activity logic that needs no Chromium: selector candidates, table rows, finding Chromium."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from exekra.workflow.activities.browser import actions, find_chromium
from exekra.workflow.activities.browser.selectors import Element, candidates
from exekra.workflow.activities.tables import grid_rows
from exekra.workflow.errors import ActivityError
from exekra.workflow.scope import ActivitySettings, ExecutionScope

from .conftest import Call


def test_an_element_description_becomes_candidates_in_exekras_order() -> None:
    element = Element.model_validate(
        {
            "role": "button",
            "roleName": "Save",
            "label": "Save the form",
            "text": "Save",
            "placeholder": "Name",
            "type": "text",
            "name": "save",
            "data": {"qa": "save-btn"},
            "testId": "save",
            "id": "save-1",
            "css": "form .save",
        }
    )
    assert [candidate.label for candidate in candidates(element)] == [
        "form .save",
        "id=save-1",
        "data-testid=save",
        "data-qa=save-btn",
        "name=save",
        "type=text placeholder=Name",
        "text='Save'",
        "label='Save the form'",
        "role=button 'Save'",
    ]


def test_a_list_keeps_its_order_and_strings_are_used_as_they_are() -> None:
    labels = [c.label for c in candidates(["#a", Element.model_validate({"id": "b"}), "text=c"])]
    assert labels == ["#a", "id=b", "text=c"]
    with pytest.raises(ActivityError, match="names no element"):
        candidates(Element())


def test_table_rows_name_empty_and_repeated_headers_and_pad_short_rows() -> None:
    cells = [["Name", "", "Name"], ["a", "b", "c", "d"], ["e"]]
    assert grid_rows(cells, header=True) == {
        "columns": ["Name", "column 2", "Name 2", "column 4"],
        "rows": [
            {"Name": "a", "column 2": "b", "Name 2": "c", "column 4": "d"},
            {"Name": "e", "column 2": None, "Name 2": None, "column 4": None},
        ],
    }
    assert grid_rows([], header=True) == {"rows": [], "columns": []}
    assert grid_rows(cells, header=False) == {"rows": cells, "columns": []}


def test_find_chromium_prefers_the_setting_then_the_variable_then_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("EXEKRA_CHROMIUM", raising=False)
    assert find_chromium() == str(fake)
    monkeypatch.setenv("EXEKRA_CHROMIUM", "/nonexistent/chrome")
    assert find_chromium() is None  # an explicit choice that does not exist is not replaced by a guess
    assert find_chromium(str(fake)) == str(fake)
    monkeypatch.setenv("PATH", os.devnull)
    monkeypatch.delenv("EXEKRA_CHROMIUM")
    assert find_chromium() is None


def test_open_without_chromium_says_what_to_install(tmp_path: Path) -> None:
    call = Call(tmp_path, ExecutionScope(settings=ActivitySettings(chromium="/nonexistent/chromium")))
    with pytest.raises(ActivityError, match=r"^no Chromium on this runner: apt-get install chromium"):
        call(actions.open_session)
