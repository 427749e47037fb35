"""`browser.*`: Playwright driving the runner's Chromium (see `session`, `selectors`, `steps`)."""

from exekra.workflow.activities.browser import actions, pages
from exekra.workflow.activities.browser.session import find_chromium

ACTIVITIES = (
    actions.open_session,
    actions.close_session,
    actions.goto,
    actions.click,
    actions.fill,
    actions.select,
    actions.check,
    actions.press,
    actions.wait_for,
    actions.get_text,
    actions.get_attribute,
    pages.extract_table,
    pages.screenshot,
    pages.download,
    pages.upload,
)

__all__ = ["ACTIVITIES", "find_chromium"]
