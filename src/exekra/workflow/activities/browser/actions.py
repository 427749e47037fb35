"""`browser.*` activities: open and close a session, navigate, act on elements, read them, move files."""

from __future__ import annotations

import contextlib
import importlib.util
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from exekra.workflow.activities.browser.selectors import candidates
from exekra.workflow.activities.browser.session import BrowserSession, LaunchOptions, find_chromium
from exekra.workflow.activities.browser.steps import (
    KIND,
    ElementParams,
    SessionParams,
    run_element_step,
    run_step,
)
from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity, either
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

CATEGORY = "Browser"
CAPABILITY = "browser"
DEFAULT_TIMEOUT_SECONDS = 30.0

WaitUntil = Literal["load", "domcontentloaded", "networkidle", "commit"]


class Viewport(Params):
    width: int = Field(1280, gt=0)
    """Width in CSS pixels."""
    height: int = Field(720, gt=0)
    """Height in CSS pixels."""


class OpenParams(Params):
    url: str | None = None
    """The page to open first (default: a blank page)."""
    headless: bool = True
    """Run without a window; a visible window needs a display on the runner."""
    viewport: Viewport = Viewport()
    """The page size."""
    downloads_dir: str = "downloads"
    """Where `browser.download` saves files (relative paths are under the workdir)."""
    timeout_seconds: float = Field(DEFAULT_TIMEOUT_SECONDS, gt=0)
    """The session's default wait for pages and elements; steps may override it."""
    ignore_https_errors: bool = False
    """Accept invalid TLS certificates (self-signed test servers)."""
    locale: str | None = None
    """The browser locale, such as en-GB."""
    user_agent: str | None = None
    """A user agent string to send instead of Chromium's."""


class PageOutputs(Params):
    url: str
    """The page's URL now."""
    title: str
    """The page's title."""


class OpenOutputs(PageOutputs):
    session: str
    """The session handle for the following browser steps."""


@activity("browser.open", category=CATEGORY, capability=CAPABILITY, params=OpenParams, outputs=OpenOutputs)
def open_session(ctx: ActivityContext, params: OpenParams) -> dict[str, Any]:
    """Start Chromium (the runner's system browser) and open a page; the session lasts until
    `browser.close` or the end of the execution, whatever its outcome."""
    executable = find_chromium(ctx.scope.settings.chromium)
    if executable is None:
        raise ActivityError("no Chromium on this runner: apt-get install chromium, or set EXEKRA_CHROMIUM")
    if importlib.util.find_spec("playwright") is None:
        raise ActivityError("the playwright package is missing on this runner: pip install 'exekra[rpa]'")
    downloads = ctx.path(params.downloads_dir)
    downloads.mkdir(parents=True, exist_ok=True)
    options = LaunchOptions(
        executable=executable,
        headless=params.headless,
        viewport={"width": params.viewport.width, "height": params.viewport.height},
        downloads=downloads,
        timeout_ms=params.timeout_seconds * 1000,
        ignore_https_errors=params.ignore_https_errors,
        locale=params.locale,
        user_agent=params.user_agent,
    )
    session = BrowserSession(options)
    handle = ctx.scope.open(KIND, session, session.close)
    try:
        session.start(ctx)
    except Exception as exc:
        with contextlib.suppress(Exception):
            ctx.scope.release(handle, KIND)
        raise ActivityError(f"cannot start Chromium ({executable}): {exc}") from None
    ctx.emit("INFO", f"node {ctx.node_id}: browser session {handle} started ({executable})")
    if params.url is None:
        return {"session": handle, "url": "about:blank", "title": ""}
    return {"session": handle, **_goto(ctx, handle, params.url, "load", None)}


class CloseParams(Params):
    session: str
    """The session to close."""


@activity("browser.close", category=CATEGORY, capability=CAPABILITY, params=CloseParams)
def close_session(ctx: ActivityContext, params: CloseParams) -> dict[str, Any]:
    """Close the session's browser. Sessions still open when the execution ends are closed then."""
    ctx.scope.release(params.session, KIND)
    return {}


class GotoParams(SessionParams):
    url: str
    """The URL to load."""
    wait_until: WaitUntil = "load"
    """When the navigation counts as done."""


class GotoOutputs(PageOutputs):
    status: int | None
    """The HTTP status of the main document (null for pages without a response)."""


@activity("browser.goto", category=CATEGORY, capability=CAPABILITY, params=GotoParams, outputs=GotoOutputs)
def goto(ctx: ActivityContext, params: GotoParams) -> dict[str, Any]:
    """Load `url` in the session's page."""
    return _goto(ctx, params.session, params.url, params.wait_until, params.timeout_seconds)


def _goto(
    ctx: ActivityContext, handle: str, url: str, wait_until: WaitUntil, timeout_seconds: float | None
) -> dict[str, Any]:
    async def step(page: Page, timeout_ms: float) -> dict[str, Any]:
        response = await page.goto(url, wait_until=wait_until, timeout=timeout_ms)
        return {"url": page.url, "title": await page.title(), "status": response.status if response else None}

    return run_step(ctx, SessionParams.model_validate({"session": handle, "timeoutSeconds": timeout_seconds}), step)


class ClickParams(ElementParams):
    button: Literal["left", "right", "middle"] = "left"
    """The mouse button."""
    click_count: int = Field(1, ge=1)
    """2 for a double click."""


@activity("browser.click", category=CATEGORY, capability=CAPABILITY, params=ClickParams, outputs=PageOutputs)
def click(ctx: ActivityContext, params: ClickParams) -> dict[str, Any]:
    """Click the element (waiting until it is visible, stable and enabled)."""

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        await locator.click(button=params.button, click_count=params.click_count, timeout=timeout_ms)
        return {"url": page.url, "title": await page.title()}

    return run_element_step(ctx, params, step)


class FillParams(ElementParams):
    value: Annotated[str | int | float, either("a string", "a number")]
    """The text to type into the field (replacing what is there)."""


@activity("browser.fill", category=CATEGORY, capability=CAPABILITY, params=FillParams)
def fill(ctx: ActivityContext, params: FillParams) -> dict[str, Any]:
    """Fill an input, textarea or editable element with `value`."""

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        await locator.fill(str(params.value), timeout=timeout_ms)
        return {}

    return run_element_step(ctx, params, step)


class SelectParams(ElementParams):
    value: Annotated[str | list[str] | None, either("a string", "a list of strings")] = None
    """The option value(s) to select; give `value` or `label`."""
    label: Annotated[str | list[str] | None, either("a string", "a list of strings")] = None
    """The option label(s) to select."""


class SelectOutputs(Params):
    selected: list[str]
    """The values of the selected options."""


@activity("browser.select", category=CATEGORY, capability=CAPABILITY, params=SelectParams, outputs=SelectOutputs)
def select(ctx: ActivityContext, params: SelectParams) -> dict[str, Any]:
    """Select options of a <select> element by value or by label."""
    if (params.value is None) == (params.label is None):
        raise ActivityError("give either param 'value' or param 'label'")

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        if params.value is not None:
            selected = await locator.select_option(value=params.value, timeout=timeout_ms)
        else:
            selected = await locator.select_option(label=params.label, timeout=timeout_ms)
        return {"selected": selected}

    return run_element_step(ctx, params, step)


class CheckParams(ElementParams):
    checked: bool = True
    """Check (true) or uncheck (false)."""


class CheckOutputs(Params):
    checked: bool
    """The state now."""


@activity("browser.check", category=CATEGORY, capability=CAPABILITY, params=CheckParams, outputs=CheckOutputs)
def check(ctx: ActivityContext, params: CheckParams) -> dict[str, Any]:
    """Check or uncheck a checkbox or radio button."""

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        await locator.set_checked(params.checked, timeout=timeout_ms)
        return {"checked": await locator.is_checked()}

    return run_element_step(ctx, params, step)


class PressParams(SessionParams):
    key: str
    """A key or chord, such as Enter, Tab, Control+A."""
    selector: Any = None
    """The element to focus first (as for `browser.click`); default: the focused element."""


@activity("browser.press", category=CATEGORY, capability=CAPABILITY, params=PressParams, outputs=PageOutputs)
def press(ctx: ActivityContext, params: PressParams) -> dict[str, Any]:
    """Press a key on the element, or on the page."""
    if params.selector is not None:
        element = ElementParams.model_validate(
            {"session": params.session, "selector": params.selector, "timeoutSeconds": params.timeout_seconds}
        )

        async def on_element(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
            await locator.press(params.key, timeout=timeout_ms)
            return {"url": page.url, "title": await page.title()}

        return run_element_step(ctx, element, on_element)

    async def on_page(page: Page, timeout_ms: float) -> dict[str, Any]:
        await page.keyboard.press(params.key)
        return {"url": page.url, "title": await page.title()}

    return run_step(ctx, params, on_page)


class WaitForParams(ElementParams):
    state: Literal["visible", "attached", "hidden", "detached"] = "visible"
    """What to wait for: the element shown, present, hidden (or absent), or absent."""


@activity("browser.wait_for", category=CATEGORY, capability=CAPABILITY, params=WaitForParams)
def wait_for(ctx: ActivityContext, params: WaitForParams) -> dict[str, Any]:
    """Wait until the element reaches `state`; fails after the timeout."""
    if params.state in ("hidden", "detached"):
        options = candidates(params.selector)

        async def until_gone(page: Page, timeout_ms: float) -> dict[str, Any]:
            for option in options:  # every candidate must be gone
                await option.locate(page).first.wait_for(state=params.state, timeout=timeout_ms)
            return {}

        return run_step(ctx, params, until_gone)

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        await locator.wait_for(state=params.state, timeout=timeout_ms)
        return {}

    return run_element_step(ctx, params, step)


class TextOutputs(Params):
    text: str
    """The element's rendered text, trimmed."""


@activity("browser.get_text", category=CATEGORY, capability=CAPABILITY, params=ElementParams, outputs=TextOutputs)
def get_text(ctx: ActivityContext, params: ElementParams) -> dict[str, Any]:
    """Read the element's visible text."""

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        return {"text": (await locator.inner_text(timeout=timeout_ms)).strip()}

    return run_element_step(ctx, params, step)


class AttributeParams(ElementParams):
    name: str
    """The attribute, such as href or value."""


class AttributeOutputs(Params):
    value: str | None
    """Its value; null when the element has no such attribute."""


@activity(
    "browser.get_attribute", category=CATEGORY, capability=CAPABILITY, params=AttributeParams, outputs=AttributeOutputs
)
def get_attribute(ctx: ActivityContext, params: AttributeParams) -> dict[str, Any]:
    """Read one attribute of the element."""

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        return {"value": await locator.get_attribute(params.name, timeout=timeout_ms)}

    return run_element_step(ctx, params, step)


__all__ = [
    "check",
    "click",
    "close_session",
    "fill",
    "get_attribute",
    "get_text",
    "goto",
    "open_session",
    "press",
    "select",
    "wait_for",
]
