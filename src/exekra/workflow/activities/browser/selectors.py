"""Selectors with fallbacks: a node names an element by a string, an element description, or a list.

A string is a Playwright selector: CSS by default, or `text=…`, `role=button[name="Save"]`,
`data-testid=…`, `id=…`, `xpath=…`. An element description (`Element`) gives what a recorder saw;
Exekra tries its parts in a fixed order: css, id, data-* (testId first), name, type + placeholder,
text, aria-label, role. A list gives candidates in order. The first candidate that matches exactly
one element wins, and the log says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from exekra.workflow.activities.spec import Params, either
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

Emit = Callable[[str, str], None]


class Element(Params):
    """An element described by what identifies it; each part given becomes one fallback candidate."""

    css: str | None = None
    """A CSS selector."""
    id: str | None = None
    """The element's id."""
    test_id: str | None = None
    """Its data-testid attribute."""
    data: dict[str, str] = {}
    """Other data-* attributes, without the `data-` prefix (e.g. {"qa": "save"})."""
    name: str | None = None
    """Its name attribute (form fields)."""
    type: str | None = None
    """Its type attribute, combined with `placeholder` when both are given."""
    placeholder: str | None = None
    """Its placeholder text."""
    text: str | None = None
    """Its exact visible text."""
    label: str | None = None
    """Its accessible label: aria-label, or the text of its <label>."""
    role: str | None = None
    """Its ARIA role, such as button, link, textbox, checkbox."""
    role_name: str | None = None
    """The accessible name that goes with `role`."""


Selector = Annotated[
    str | Element | list[str | Element],
    either("a string", "an element object", "a list of strings and element objects"),
]


@dataclass(frozen=True)
class Candidate:
    """One way to find the element: a description for the log and how to make the locator."""

    label: str
    locate: Callable[[Page], Locator]


def candidates(selector: str | Element | list[str | Element]) -> list[Candidate]:
    """The selector's candidates, in the order they are tried."""
    items = selector if isinstance(selector, list) else [selector]
    found = [candidate for item in items for candidate in _expand(item)]
    if not found:
        raise ActivityError("param 'selector' names no element (give css, id, text, role...)")
    return found


def _expand(item: str | Element) -> list[Candidate]:
    if isinstance(item, str):
        return [Candidate(item, lambda page: page.locator(item))]
    return [candidate for candidate in _element_candidates(item) if candidate is not None]


def _element_candidates(element: Element) -> list[Candidate | None]:
    data = ([("testid", element.test_id)] if element.test_id else []) + list(element.data.items())
    field = [(name, value) for name, value in (("type", element.type), ("placeholder", element.placeholder)) if value]
    field_label = " ".join(f"{name}={value}" for name, value in field)
    field_css = "".join(f"[{name}={_quote(value)}]" for name, value in field)
    return [
        _css(element.css, element.css) if element.css else None,
        _css(f"id={element.id}", f"[id={_quote(element.id)}]") if element.id else None,
        *(_css(f"data-{key}={value}", f"[data-{key}={_quote(value)}]") for key, value in data),
        _css(f"name={element.name}", f"[name={_quote(element.name)}]") if element.name else None,
        _css(field_label, field_css) if field else None,
        _by_text(element.text) if element.text else None,
        _by_label(element.label) if element.label else None,
        _by_role(element.role, element.role_name) if element.role else None,
    ]


def _css(label: str, css: str) -> Candidate:
    return Candidate(label, lambda page: page.locator(f"css={css}"))


def _by_text(text: str) -> Candidate:
    return Candidate(f"text={text!r}", lambda page: page.get_by_text(text, exact=True))


def _by_label(label: str) -> Candidate:
    return Candidate(f"label={label!r}", lambda page: page.get_by_label(label, exact=True))


def _by_role(role: str, name: str | None) -> Candidate:
    def locate(page: Page) -> Locator:
        arguments: dict[str, Any] = {"name": name, "exact": True} if name else {}
        return page.get_by_role(role, **arguments)  # type: ignore[arg-type]

    return Candidate(f"role={role}" + (f" {name!r}" if name else ""), locate)


def _quote(value: str) -> str:
    """A CSS string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def locate(page: Page, selector: str | Element | list[str | Element], timeout_ms: float, emit: Emit) -> Locator:
    """The locator of the element to act on.

    One candidate is used as it is: Playwright waits for it and refuses to act when it matches several
    elements. With several, this waits until any candidate matches, then takes the first that matches
    exactly one element; none doing so is an error listing what each matched.
    """
    options = candidates(selector)
    if len(options) == 1:
        return options[0].locate(page)
    locators = [option.locate(page) for option in options]
    anything = locators[0]
    for locator in locators[1:]:
        anything = anything.or_(locator)
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await anything.first.wait_for(state="attached", timeout=timeout_ms)
    except PlaywrightTimeout:
        tried = ", ".join(option.label for option in options)
        raise ActivityError(f"no element matched any selector within {timeout_ms / 1000:g} s (tried {tried})") from None
    counts = []
    for index, (option, locator) in enumerate(zip(options, locators, strict=True), start=1):
        count = await locator.count()
        if count == 1:
            emit("INFO", f"selector {index} of {len(options)} matched: {option.label}")
            return locator
        counts.append(f"{option.label} matched {count}")
    raise ActivityError(f"no selector matched exactly one element ({'; '.join(counts)})")
