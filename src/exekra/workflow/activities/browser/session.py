"""A browser session: Chromium driven by Playwright's async API on an event loop thread of its own.

Activities run in short-lived engine threads, but Playwright objects belong to the loop that made
them, so each session owns a loop thread and activities hand it coroutines (`call`). A stop or the
node's timeout cancels the coroutine at once. Chromium is Debian's (or any system build): Playwright's
own browser download is never used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright

T = TypeVar("T")

CHROMIUM_VARIABLE = "EXEKRA_CHROMIUM"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage")
CLOSE_SECONDS = 10.0
_POLL_SECONDS = 0.05


def find_chromium(configured: str | None = None) -> str | None:
    """The Chromium executable: `configured`, else `EXEKRA_CHROMIUM`, else the first on PATH of
    chromium, chromium-browser, google-chrome; None when there is none (no `browser` capability)."""
    explicit = configured or os.environ.get(CHROMIUM_VARIABLE)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class LaunchOptions:
    """How `browser.open` starts Chromium."""

    executable: str
    headless: bool
    viewport: dict[str, int]
    downloads: Path
    timeout_ms: float
    ignore_https_errors: bool = False
    locale: str | None = None
    user_agent: str | None = None


class BrowserSession:
    """One Chromium with one context and one page, owned by a loop thread; closed with `close()`."""

    def __init__(self, options: LaunchOptions) -> None:
        self.options = options
        self.downloads = options.downloads
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="exekra-browser", daemon=True)
        self._thread.start()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._closed = False

    @property
    def page(self) -> Page:
        """The session's page (only for coroutines running on the session's loop)."""
        assert self._page is not None, "the session is not open"
        return self._page

    def start(self, ctx: ActivityContext) -> None:
        """Launch Chromium; a stop during the launch cleans up what was started."""
        self.call(ctx, self._start())

    def call(self, ctx: ActivityContext, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the session's loop and wait; a stop or node timeout cancels it."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return _wait(ctx, future)

    def run(self, operation: Callable[[], Awaitable[T]], seconds: float) -> T:
        """Run `operation()` on the loop from a thread that has no activity context, bounded by `seconds`."""

        async def bounded() -> T:
            return await asyncio.wait_for(operation(), seconds)

        return asyncio.run_coroutine_threadsafe(bounded(), self._loop).result(seconds + 1)

    def close(self) -> None:
        """Close the page, the browser and Playwright's driver, then the loop thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self._stop, CLOSE_SECONDS)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CLOSE_SECONDS)
            if not self._thread.is_alive():
                self._loop.close()

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        options = self.options
        self._playwright = await async_playwright().start()
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=options.executable,
                headless=options.headless,
                args=list(CHROMIUM_ARGS),
                timeout=options.timeout_ms,
            )
            self._context = await self._browser.new_context(
                viewport={"width": options.viewport["width"], "height": options.viewport["height"]},
                accept_downloads=True,
                ignore_https_errors=options.ignore_https_errors,
                locale=options.locale,
                user_agent=options.user_agent,
            )
            self._context.set_default_timeout(options.timeout_ms)
            self._page = await self._context.new_page()
        except BaseException:
            await self._stop()
            raise

    async def _stop(self) -> None:
        """Idempotent: a cancelled launch and `close()` may both get here."""
        playwright, browser = self._playwright, self._browser
        self._playwright = self._browser = self._context = self._page = None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()


def _wait(ctx: ActivityContext, future: Future[T]) -> T:
    while not future.done():
        wait_futures([future], _POLL_SECONDS)
        if not future.done() and ctx.should_stop():
            future.cancel()
            raise ActivityError("interrupted")
    return future.result()
