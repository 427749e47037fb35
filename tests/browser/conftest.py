"""Browser fixtures: a real hub process (with its own Redis) driven through Debian's Chromium by Playwright.

Playwright's own browser download is not used: `CHROMIUM` is the system package (`apt-get install chromium`,
done by `.ci/run` and the Makefile when missing). Screenshots go to `test-artifacts/screenshots/`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from exekra.db.migrate import upgrade
from exekra.embedded import EmbeddedRedis, create_database, drop_database
from tests.e2e.conftest import PASSWORD, HubProcess, RunnerProcess, wait_until

CHROMIUM = Path(os.environ.get("EXEKRA_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ADMIN_EMAIL = "admin@browser.test"
TIMEOUT_MS = 15_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install -y chromium"))


@pytest.fixture(scope="session")
def browser_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of the browser hub's own, which a test may stop and start again (same port)."""
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def _migrated_database(pg_server_url: str) -> Iterator[str]:
    """A new database, migrated, dropped afterwards. Its asyncio work runs in a thread of its own: with Chromium
    started, Playwright's sync API holds an event loop marked running in this one."""
    name = f"exekra_browser_{secrets.token_hex(4)}"

    def create() -> str:
        url = create_database(pg_server_url, name)
        upgrade(url)
        return url

    with ThreadPoolExecutor(1) as thread:
        url = thread.submit(create).result()
        try:
            yield url
        finally:
            thread.submit(drop_database, pg_server_url, name).result()


@pytest.fixture(scope="session")
def browser_database_url(pg_server_url: str) -> Iterator[str]:
    """The browser hub's database, migrated."""
    with _migrated_database(pg_server_url) as url:
        yield url


@pytest.fixture
def fresh_hub(pg_server_url: str, tmp_path: Path) -> Iterator[HubProcess]:
    """A hub of one test's own on an empty database (no user yet: the first-run page), in direct mode. The
    session's hub cannot serve that: whichever browser test runs first in a process creates the admin."""
    with _migrated_database(pg_server_url) as url:
        hub = HubProcess(url, tmp_path)
        hub.start()
        try:
            yield hub
        finally:
            hub.stop()


@pytest.fixture(scope="session")
def browser_hub(
    browser_database_url: str, browser_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubProcess]:
    hub = HubProcess(
        browser_database_url,
        tmp_path_factory.mktemp("browser-hub"),
        extra_env={
            "EXEKRA_REDIS_URL": browser_redis.url,  # REDIS_URL is dropped by HubProcess; the alias is not
            "EXEKRA_HEARTBEAT_INTERVAL_SECONDS": "2",
            "EXEKRA_LOGIN_FAILURES_PER_MINUTE": "1000",
            "EXEKRA_REPORT_INTERVAL_SECONDS": "1",
        },
    )
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def admin_api(browser_hub: HubProcess) -> Iterator[httpx.Client]:
    """An ADMIN API client; creating the admin through the API only if the first-run test did not."""
    with httpx.Client(base_url=browser_hub.url, timeout=30) as client:
        r = client.post("/api/auth/bootstrap", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        if r.status_code == 409:
            r = client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


@pytest.fixture(scope="module")
def chromium(browser_hub: HubProcess) -> Iterator[Any]:
    """Chromium for one test module. Playwright's sync API keeps an event loop marked running in this thread,
    so it starts after every fixture that runs asyncio (the hub's migration) and stops before other modules."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, browser_hub: HubProcess) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the hub; dialogs (confirmations) are accepted."""
    with open_page(chromium, browser_hub.url) as tab:
        yield tab


@contextlib.contextmanager
def open_page(chromium: Any, url: str) -> Iterator[Any]:
    """A tab in a new browser context (no cookies) on `url`; dialogs (confirmations) are accepted, and a
    Content-Security-Policy violation fails the test when the tab is done with."""
    context = chromium.new_context(
        base_url=url,
        viewport={"width": 1360, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())
    csp_violations: list[str] = []
    tab.on("console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None)
    yield tab
    context.close()
    assert csp_violations == [], "the hub's Content-Security-Policy refused something its pages use"


@pytest.fixture
def signed_in(page: Any, admin_api: httpx.Client) -> Any:
    """The page, signed in as the admin through the sign-in form."""
    sign_in(page, ADMIN_EMAIL, PASSWORD)
    return page


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(lambda url: "/login" not in url)


def shown(page: Any, selector: str, timeout: float = 15_000) -> None:
    """Assert that the page shows `selector`, waiting for it: a click's answer arrives after the click returns."""
    from playwright.sync_api import expect

    expect(page.locator(selector).first).to_be_visible(timeout=timeout)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def start_runner(
    admin_api: httpx.Client, browser_hub: HubProcess, tmp_path: Path
) -> Iterator[Callable[..., RunnerProcess]]:
    """`start_runner(name, key, secret)` starts `exekra runner` with these credentials; stopped after the test."""
    started: list[RunnerProcess] = []

    def _start(name: str, runner_id: str, machine_key: str, machine_secret: str) -> RunnerProcess:
        runner = RunnerProcess(name, runner_id, machine_key, machine_secret, tmp_path / name, tmp_path / f"{name}.log")
        runner.start(browser_hub.url)
        started.append(runner)
        return runner

    yield _start
    for runner in started:
        with contextlib.suppress(Exception):
            runner.stop()


def register_runner(admin_api: httpx.Client, labels: list[str]) -> dict[str, Any]:
    r = admin_api.post("/api/runners", json={"name": f"rn-{secrets.token_hex(3)}", "labels": labels})
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def start_registered_runner(admin_api: httpx.Client, start_runner: Callable[..., RunnerProcess], label: str) -> str:
    body = register_runner(admin_api, [label])
    runner = body["runner"]
    start_runner(runner["name"], runner["id"], body["machineKey"], body["machineSecret"])
    wait_until(
        lambda: admin_api.get(f"/api/runners/{runner['id']}").json()["runner"]["status"] == "ONLINE",
        20,
        0.2,
        "the runner to come online",
    )
    return str(runner["id"])


def publish(admin_api: httpx.Client, name: str, definition: dict[str, Any], labels: list[str]) -> str:
    r = admin_api.post("/api/workflows", json={"name": name, "definition": definition, "labels": labels})
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow"]["id"]
    assert admin_api.post(f"/api/workflows/{workflow_id}/publish").status_code == 200
    return workflow_id


def wait_for_health(hub: HubProcess, key: str, value: str, timeout: float) -> None:
    wait_until(
        lambda: httpx.get(f"{hub.url}/api/health", timeout=2).json().get(key) == value,
        timeout,
        0.2,
        f"/api/health {key} == {value}",
    )


@pytest.fixture(scope="session", autouse=True)
def _fresh_screenshots() -> None:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
