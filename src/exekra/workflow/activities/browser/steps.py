"""Running one browser step: find the session, run the step on its loop, explain a failure.

A failed step attaches a screenshot of the page (`<node>-failure.png`) and names the page's URL in
the error, so the execution's page shows what the browser saw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pydantic import Field

from exekra.workflow.activities.browser.selectors import Element, Selector, locate
from exekra.workflow.activities.browser.session import BrowserSession
from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

KIND = "browser"
EVIDENCE_SECONDS = 10.0
MAX_MESSAGE_CHARS = 2_000

Step = Callable[["Page", float], Coroutine[Any, Any, dict[str, Any]]]
ElementStep = Callable[["Locator", "Page", float], Coroutine[Any, Any, dict[str, Any]]]


class SessionParams(Params):
    session: str
    """The session handle that `browser.open` returned, e.g. `{{ nodes.open.session }}`."""
    timeout_seconds: float | None = Field(None, gt=0)
    """How long to wait for the page or the element (default: the session's timeout)."""


class ElementParams(SessionParams):
    selector: Selector
    """The element: a selector string (CSS, `text=…`, `role=…`, `data-testid=…`), an element object
    (css, id, testId, data, name, type, placeholder, text, label, role, roleName), or a list of them
    tried in order; the first that matches exactly one element is used."""


def session_of(ctx: ActivityContext, handle: str) -> BrowserSession:
    """The open session behind `handle` in this execution."""
    return ctx.scope.get(handle, KIND, BrowserSession)


def run_step(ctx: ActivityContext, params: SessionParams, step: Step) -> dict[str, Any]:
    """Run `step(page, timeout_ms)` in the session; a failure attaches a screenshot and names the URL."""
    session = session_of(ctx, params.session)
    timeout_ms = params.timeout_seconds * 1000 if params.timeout_seconds else session.options.timeout_ms
    try:
        return session.call(ctx, step(session.page, timeout_ms))
    except Exception as exc:
        if ctx.should_stop():
            raise
        raise failure(ctx, session, describe(exc)) from None


def run_element_step(ctx: ActivityContext, params: ElementParams, step: ElementStep) -> dict[str, Any]:
    """Like `run_step`, with the element the selector names (fallbacks resolved, the winner logged)."""

    async def on_element(page: Page, timeout_ms: float) -> dict[str, Any]:
        locator = await locate(page, params.selector, timeout_ms, _prefixed(ctx))
        return await step(locator, page, timeout_ms)

    return run_step(ctx, params, on_element)


def failure(ctx: ActivityContext, session: BrowserSession, message: str) -> ActivityError:
    """The step's error: the message, the page URL, and a screenshot attached when one can be taken."""
    url, screenshot = None, None
    with contextlib.suppress(Exception):
        url, png = session.run(lambda: _evidence(session), EVIDENCE_SECONDS)
        path = ctx.path(f"screenshots/{ctx.node_id}-failure.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        screenshot = ctx.attach(path).name
    where = f" (page: {url})" if url else ""
    return ActivityError(f"{message}{where}", {"url": url, "screenshot": screenshot})


def describe(exc: BaseException) -> str:
    """A Playwright error without its call log; other errors as they are."""
    if isinstance(exc, ActivityError):
        return str(exc)
    text = str(exc).split("\nCall log:", 1)[0].strip()
    if type(exc).__module__.startswith("playwright"):
        return text[:MAX_MESSAGE_CHARS]
    return f"{type(exc).__name__}: {text}"[:MAX_MESSAGE_CHARS]


async def _evidence(session: BrowserSession) -> tuple[str, bytes]:
    page = session.page
    return page.url, await page.screenshot(timeout=EVIDENCE_SECONDS * 1000)


def _prefixed(ctx: ActivityContext) -> Callable[[str, str], None]:
    return lambda level, message: ctx.emit(level, f"node {ctx.node_id}: {message}")


__all__ = ["Element", "ElementParams", "SessionParams", "failure", "run_element_step", "run_step", "session_of"]
