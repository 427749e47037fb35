"""`browser.*` activities that move data and files: tables, screenshots, downloads and uploads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from exekra.workflow.activities.browser.steps import (
    ElementParams,
    SessionParams,
    run_element_step,
    run_step,
    session_of,
)
from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity, either
from exekra.workflow.activities.tables import grid_rows
from exekra.workflow.artifacts import safe_name
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

CATEGORY = "Browser"
CAPABILITY = "browser"

# The cells of a table (the element itself or the first table inside it), row by row, as rendered text.
_TABLE_CELLS = """element => {
  const table = element.tagName === 'TABLE' ? element : element.querySelector('table');
  if (!table) return null;
  const text = cell => cell.innerText.replace(/\\s+/g, ' ').trim();
  return Array.from(table.rows).map(row => Array.from(row.cells).map(text));
}"""


class TableParams(ElementParams):
    header: bool = True
    """The first row holds the column names: rows are objects keyed by them (else lists)."""


class TableOutputs(Params):
    rows: list[Any]
    """The rows after the header: objects keyed by header text, or lists of cell texts."""
    columns: list[str]
    """The header texts (empty ones are "column N", repeated ones get " 2", " 3"...)."""


@activity("browser.extract_table", category=CATEGORY, capability=CAPABILITY, params=TableParams, outputs=TableOutputs)
def extract_table(ctx: ActivityContext, params: TableParams) -> dict[str, Any]:
    """Read an HTML table (the element, or the first table inside it) into a list of rows."""

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        cells = await locator.evaluate(_TABLE_CELLS, timeout=timeout_ms)
        if cells is None:
            raise ActivityError("the element is not a table and contains none")
        return grid_rows(cells, header=params.header)

    return run_element_step(ctx, params, step)


class ScreenshotParams(SessionParams):
    selector: Any = None
    """Only this element (as for `browser.click`); default: the page."""
    full_page: bool = False
    """The whole scrollable page instead of the viewport."""
    path: str | None = None
    """Where to save it (default: screenshots/<node id>.png under the workdir)."""
    name: str | None = None
    """Its artifact name (default: the file's name)."""


class FileOutputs(Params):
    path: str
    """The absolute path of the file."""
    name: str
    """Its name (as attached, for a screenshot)."""
    bytes: int
    """Its size."""


@activity("browser.screenshot", category=CATEGORY, capability=CAPABILITY, params=ScreenshotParams, outputs=FileOutputs)
def screenshot(ctx: ActivityContext, params: ScreenshotParams) -> dict[str, Any]:
    """Take a PNG screenshot of the page or of one element and attach it to the execution."""
    path = ctx.path(params.path or f"screenshots/{ctx.node_id}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    if params.selector is not None:
        element = ElementParams.model_validate(
            {"session": params.session, "selector": params.selector, "timeoutSeconds": params.timeout_seconds}
        )

        async def of_element(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
            await locator.screenshot(path=path, timeout=timeout_ms)
            return {}

        run_element_step(ctx, element, of_element)
    else:

        async def of_page(page: Page, timeout_ms: float) -> dict[str, Any]:
            await page.screenshot(path=path, full_page=params.full_page, timeout=timeout_ms)
            return {}

        run_step(ctx, params, of_page)
    attachment = ctx.attach(path, params.name)
    return {"path": str(path), "name": attachment.name, "bytes": attachment.size}


class DownloadParams(ElementParams):
    path: str | None = None
    """Where to save the file: a file path, or an existing folder (default: the session's downloads
    folder, under the name the site suggests)."""
    attach: bool = False
    """Also attach the file to the execution."""


class DownloadOutputs(FileOutputs):
    url: str
    """Where it was downloaded from."""


@activity("browser.download", category=CATEGORY, capability=CAPABILITY, params=DownloadParams, outputs=DownloadOutputs)
def download(ctx: ActivityContext, params: DownloadParams) -> dict[str, Any]:
    """Click the element that starts a download and wait until the file is complete."""
    downloads = session_of(ctx, params.session).downloads
    target = ctx.path(params.path) if params.path else None

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        async with page.expect_download(timeout=timeout_ms) as started:
            await locator.click(timeout=timeout_ms)
        file = await started.value
        problem = await file.failure()
        if problem:
            raise ActivityError(f"download of {file.url} failed: {problem}")
        name = safe_name(file.suggested_filename)
        destination = _destination(target, downloads, name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        await file.save_as(destination)
        return {"path": str(destination), "name": name, "url": file.url}

    outputs = run_element_step(ctx, params, step)
    path = Path(outputs["path"])
    outputs["bytes"] = path.stat().st_size
    if params.attach:
        ctx.attach(path)
    ctx.emit("INFO", f"node {ctx.node_id}: downloaded {outputs['name']} ({outputs['bytes']} bytes)")
    return outputs


def _destination(target: Path | None, downloads: Path, name: str) -> Path:
    if target is None:
        return downloads / name
    return target / name if target.is_dir() else target


class UploadParams(ElementParams):
    files: Annotated[str | list[str], either("a string", "a list of strings")]
    """The file(s) to put into the file input (relative paths are under the workdir)."""


class UploadOutputs(Params):
    files: list[str]
    """The absolute paths given to the input."""


@activity("browser.upload", category=CATEGORY, capability=CAPABILITY, params=UploadParams, outputs=UploadOutputs)
def upload(ctx: ActivityContext, params: UploadParams) -> dict[str, Any]:
    """Set the files of an <input type=file> element (the form still has to be submitted)."""
    paths = [ctx.path(file) for file in ([params.files] if isinstance(params.files, str) else params.files)]
    for path in paths:
        if not path.is_file():
            raise ActivityError(f"cannot upload {path}: not a file")

    async def step(locator: Locator, page: Page, timeout_ms: float) -> dict[str, Any]:
        await locator.set_input_files(paths, timeout=timeout_ms)
        return {"files": [str(path) for path in paths]}

    return run_element_step(ctx, params, step)
