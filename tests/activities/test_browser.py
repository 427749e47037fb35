"""`browser.*` against a local web app in Debian's Chromium (one session shared by the module's tests)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from exekra.workflow import WorkflowFailed, WorkflowStopped, run_workflow
from exekra.workflow.activities.browser import actions, pages
from exekra.workflow.errors import ActivityError
from exekra.workflow.scope import ActivitySettings, ExecutionScope

from .conftest import CHROMIUM, Call, needs_chromium
from .webapp import REPORT_CSV, WebApp, serve

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def app() -> Iterator[WebApp]:
    with serve() as web:
        yield web


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, app: WebApp) -> Iterator[tuple[Call, str]]:
    """One browser session for the module: `(call, session handle)`."""
    call = Call(tmp_path_factory.mktemp("browser"), ExecutionScope(settings=ActivitySettings(chromium=str(CHROMIUM))))
    opened = call(actions.open_session, url=f"{app.url}/form", timeoutSeconds=10)
    yield call, opened["session"]
    call.scope.close(call.emit)


@pytest.fixture
def on(browser: tuple[Call, str], app: WebApp) -> Any:
    """`on(path)`: the shared session at a fresh load of `path`; returns a caller that adds the session."""
    call, session = browser

    def go(path: str) -> Any:
        call.lines.clear()
        call(actions.goto, session=session, url=app.url + path)
        return lambda activity, **params: call(activity, session=session, **params)

    return go


def chromium_processes() -> list[psutil.Process]:
    """Chromium processes started from this test process (through Playwright's driver)."""
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def test_open_returns_a_session_and_goto_reports_the_page(browser: tuple[Call, str], app: WebApp) -> None:
    call, session = browser
    assert session.startswith("browser-")
    loaded = call(actions.goto, session=session, url=f"{app.url}/table")
    assert loaded == {"url": f"{app.url}/table", "title": "Invoices", "status": 200}
    missing = call(actions.goto, session=session, url=f"{app.url}/nowhere")
    assert missing["status"] == 404


def test_a_form_is_filled_selected_checked_and_submitted(on: Any) -> None:
    step = on("/form")
    step(actions.fill, selector="#email", value="ada@example.com")
    step(actions.fill, selector={"name": "password"}, value=1234)
    assert step(actions.select, selector="#region", label="United States") == {"selected": ["us"]}
    assert step(actions.check, selector="#remember") == {"checked": True}
    clicked = step(actions.click, selector={"testId": "sign-in"})
    assert clicked["title"] == "Supplier portal"
    assert step(actions.get_text, selector="#status") == {"text": "signed in ada@example.com us true"}
    assert step(actions.check, selector="#remember", checked=False) == {"checked": False}


def test_press_sends_keys_to_the_page_or_an_element(on: Any) -> None:
    step = on("/form")
    step(actions.press, key="Escape")
    assert step(actions.get_text, selector="#status") == {"text": "escaped"}
    step(actions.press, selector="#email", key="x")
    assert step(actions.get_attribute, selector="#email", name="value") is not None


def test_get_attribute_reads_a_value_or_null(on: Any) -> None:
    step = on("/form")
    assert step(actions.get_attribute, selector="text=Docs", name="href") == {"value": "/docs?lang=en"}
    assert step(actions.get_attribute, selector="#docs", name="target") == {"value": None}


@pytest.mark.parametrize(
    ("element", "label"),
    [
        ({"css": "form button[type=submit]"}, "form button[type=submit]"),
        ({"id": "email"}, "id=email"),
        ({"testId": "sign-in"}, "data-testid=sign-in"),
        ({"data": {"qa": "submit"}}, "data-qa=submit"),
        ({"name": "email"}, "name=email"),
        ({"type": "password", "placeholder": "Password"}, "type=password placeholder=Password"),
        ({"text": "Sign in"}, "text='Sign in'"),
        ({"label": "Your password"}, "label='Your password'"),
        ({"role": "button", "roleName": "Sign in"}, "role=button 'Sign in'"),
        ("role=button[name='Sign in']", "role=button[name='Sign in']"),
        ("data-testid=sign-in", "data-testid=sign-in"),
    ],
)
def test_every_kind_of_selector_finds_its_element(browser: tuple[Call, str], on: Any, element: Any, label: str) -> None:
    call, _ = browser
    step = on("/form")
    # A missing candidate first, so the log names the one that matched.
    step(actions.get_attribute, selector=["#absent", element], name="id")
    assert f"node step: selector 2 of 2 matched: {label}" in call.messages


def test_the_first_candidate_matching_exactly_one_element_wins_and_the_log_says_which(
    browser: tuple[Call, str], on: Any
) -> None:
    call, _ = browser
    step = on("/form")
    text = step(actions.get_text, selector=["#absent", "button.secondary", {"text": "Cancel"}, "#email"])
    assert text == {"text": "Cancel"}
    assert "node step: selector 3 of 4 matched: text='Cancel'" in call.messages


def test_an_element_description_tries_its_parts_in_exekras_order(browser: tuple[Call, str], on: Any) -> None:
    call, _ = browser
    step = on("/form")
    # id is tried before name, name before placeholder; the id here is wrong, so name wins.
    step(actions.fill, selector={"id": "wrong", "name": "email", "placeholder": "Email"}, value="x@y")
    assert "node step: selector 2 of 3 matched: name=email" in call.messages
    assert step(actions.get_attribute, selector="#email", name="type") == {"value": "email"}


def test_no_candidate_matching_exactly_one_element_is_an_error_with_the_counts(on: Any) -> None:
    step = on("/form")
    with pytest.raises(ActivityError) as raised:
        step(actions.click, selector=["button.secondary", "input"], timeoutSeconds=2)
    assert str(raised.value).startswith(
        "no selector matched exactly one element (button.secondary matched 2; input matched 3)"
    )


def test_wait_for_waits_for_an_element_to_appear_and_another_to_go(on: Any) -> None:
    step = on("/form")
    assert step(actions.wait_for, selector="#late", timeoutSeconds=5) == {}
    assert step(actions.wait_for, selector="#banner", state="detached", timeoutSeconds=5) == {}
    with pytest.raises(ActivityError, match="Timeout 500ms exceeded"):
        step(actions.wait_for, selector="#never", timeoutSeconds=0.5)


def test_extract_table_keys_rows_by_header_text(on: Any) -> None:
    step = on("/table")
    table = step(pages.extract_table, selector="#wrapper")
    assert table["columns"] == ["Number", "Total", "Total 2", "column 4"]
    assert table["rows"] == [
        {"Number": "INV-1", "Total": "10.50", "Total 2": "EUR", "column 4": "open"},
        {"Number": "INV-2", "Total": "7", "Total 2": "USD", "column 4": None},
    ]
    plain = step(pages.extract_table, selector="#invoices", header=False)
    assert plain["rows"][0] == ["Number", "Total", "Total", ""]
    with pytest.raises(ActivityError, match="is not a table and contains none"):
        step(pages.extract_table, selector="#not-a-table")


def test_a_screenshot_is_a_png_attached_to_the_execution(browser: tuple[Call, str], on: Any) -> None:
    call, _ = browser
    step = on("/table")
    shot = step(pages.screenshot, name="invoices.png", fullPage=True)
    element = step(pages.screenshot, selector="#invoices", path="shots/table.png")
    assert Path(shot["path"]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert element["path"].endswith("shots/table.png") and element["name"] == "table.png"
    attached = [(a.name, a.content_type, a.size) for a in call.scope.artifacts.attached[-2:]]
    assert attached == [("invoices.png", "image/png", shot["bytes"]), ("table.png", "image/png", element["bytes"])]


def test_download_waits_for_the_file_and_saves_it(browser: tuple[Call, str], on: Any) -> None:
    call, _ = browser
    step = on("/download")
    saved = step(pages.download, selector="#report")
    assert saved["name"] == "invoices 2024.csv"
    assert saved["url"].endswith("/files/report.csv")
    assert Path(saved["path"]).read_bytes() == REPORT_CSV and saved["bytes"] == len(REPORT_CSV)
    assert Path(saved["path"]).parent == call.workdir / "downloads"
    renamed = step(pages.download, selector="#report", path="in/report.csv", attach=True)
    assert Path(renamed["path"]) == call.workdir / "in" / "report.csv"
    assert call.scope.artifacts.attached[-1].name == "report.csv"


def test_upload_gives_files_to_a_file_input(browser: tuple[Call, str], on: Any) -> None:
    call, _ = browser
    (call.workdir / "a.txt").write_text("alpha")
    (call.workdir / "b.txt").write_text("bravo!")
    step = on("/upload")
    given = step(pages.upload, selector="#file", files=["a.txt", "b.txt"])
    assert given == {"files": [str(call.workdir / "a.txt"), str(call.workdir / "b.txt")]}
    step(actions.click, selector="text=Send")
    step(actions.wait_for, selector="#received")
    assert step(actions.get_text, selector="#received") == {"text": "a.txt:5 b.txt:6"}
    with pytest.raises(ActivityError, match=r"cannot upload .*missing\.txt: not a file"):
        step(pages.upload, selector="#file", files="missing.txt")


def test_a_failed_step_attaches_a_screenshot_and_names_the_page(
    browser: tuple[Call, str], on: Any, app: WebApp
) -> None:
    call, _ = browser
    step = on("/form")
    with pytest.raises(ActivityError) as raised:
        step(actions.click, selector="#missing", timeoutSeconds=0.5)
    assert str(raised.value).startswith("Locator.click: Timeout 500ms exceeded.")
    assert str(raised.value).endswith(f"(page: {app.url}/form)")
    failure = call.scope.artifacts.attached[-1]
    assert raised.value.outputs == {"url": f"{app.url}/form", "screenshot": failure.name}
    # Earlier failures in this module's shared execution took "step-failure.png": names stay unique.
    assert re.fullmatch(r"step-failure(-\d+)?\.png", failure.name)
    assert failure.path.read_bytes().startswith(b"\x89PNG")


def test_params_are_checked_before_the_browser_is_touched(browser: tuple[Call, str]) -> None:
    call, session = browser
    with pytest.raises(ActivityError, match=r"^param 'selector' is required; param 'value' is required$"):
        call(actions.fill, session=session)
    with pytest.raises(ActivityError, match=r"^param 'selector' must be a string or an element object or a list"):
        call(actions.click, session=session, selector=5)
    with pytest.raises(ActivityError, match=r"^give either param 'value' or param 'label'$"):
        call(actions.select, session=session, selector="#region")
    with pytest.raises(ActivityError, match=r"^no open browser session 'browser-99' in this execution$"):
        call(actions.get_text, session="browser-99", selector="p")


def run(definition: dict[str, Any], tmp_path: Path, **options: Any) -> tuple[dict[str, Any], list[str]]:
    lines: list[str] = []
    outputs = run_workflow(
        definition,
        {},
        execution={"id": "ex", "attempt": 1},
        credentials={},
        workdir=tmp_path,
        emit=lambda level, message, **_: lines.append(message),
        scope=ExecutionScope(settings=ActivitySettings(chromium=str(CHROMIUM))),
        **options,
    )
    return outputs, lines


def test_a_workflow_reads_a_page_and_its_session_is_closed_at_the_end(tmp_path: Path, app: WebApp) -> None:
    before = {p.pid for p in chromium_processes()}
    definition = {
        "nodes": [
            {"id": "open", "activity": "browser.open", "params": {"url": f"{app.url}/table"}},
            {
                "id": "read",
                "activity": "browser.extract_table",
                "params": {"session": "{{ nodes.open.session }}", "selector": "table"},
            },
        ],
        "edges": [{"from": "open", "to": "read"}],
        "outputs": {"first": "{{ nodes.read.rows[0].Number }}", "title": "{{ nodes.open.title }}"},
    }
    outputs, _ = run(definition, tmp_path)
    assert outputs == {"first": "INV-1", "title": "Invoices"}
    assert [p for p in chromium_processes() if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE] == []


def test_a_stopped_workflow_leaves_no_chromium(tmp_path: Path, app: WebApp) -> None:
    before = {p.pid for p in chromium_processes()}
    started = threading.Event()
    definition = {
        "nodes": [
            {"id": "open", "activity": "browser.open", "params": {"url": f"{app.url}/form"}},
            {
                "id": "wait",
                "activity": "browser.wait_for",
                "params": {"session": "{{ nodes.open.session }}", "selector": "#never", "timeoutSeconds": 60},
            },
        ],
        "edges": [{"from": "open", "to": "wait"}],
    }

    def stop() -> bool:
        return started.is_set()

    def emit_watch(line: str) -> None:
        if "node wait (browser.wait_for) started" in line:
            started.set()

    with pytest.raises(WorkflowStopped):
        run_workflow(
            definition,
            {},
            execution={"id": "ex", "attempt": 1},
            credentials={},
            workdir=tmp_path,
            emit=lambda level, message, **_: emit_watch(message),
            should_stop=stop,
            scope=ExecutionScope(settings=ActivitySettings(chromium=str(CHROMIUM))),
        )
    assert [p for p in chromium_processes() if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE] == []


def test_a_closed_session_cannot_be_used(tmp_path: Path, app: WebApp) -> None:
    definition = {
        "nodes": [
            {"id": "open", "activity": "browser.open", "params": {}},
            {"id": "close", "activity": "browser.close", "params": {"session": "{{ nodes.open.session }}"}},
            {
                "id": "goto",
                "activity": "browser.goto",
                "params": {"session": "{{ nodes.open.session }}", "url": app.url},
            },
        ],
        "edges": [{"from": "open", "to": "close"}, {"from": "close", "to": "goto"}],
    }
    with pytest.raises(
        WorkflowFailed, match=r"node goto \(browser\.goto\) failed: no open browser session 'browser-1'"
    ):
        run(definition, tmp_path)
