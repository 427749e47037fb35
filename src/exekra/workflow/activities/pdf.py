"""`pdf.read_text` and `pdf.extract_tables` on pdfplumber (text layout and ruled tables)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from exekra.workflow.activities.context import ActivityContext, os_errors
from exekra.workflow.activities.spec import Params, activity, either
from exekra.workflow.activities.tables import grid_rows
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from pdfplumber.pdf import PDF

CATEGORY = "Documents"
CAPABILITY = "pdf"
_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


class DocumentParams(Params):
    path: str
    """The PDF file."""
    pages: Annotated[str | list[int] | None, either("a string such as 1-3,5", "a list of page numbers")] = None
    """Which pages, counted from 1: "1-3,5" or [1, 2, 3, 5] (default: all)."""
    password: str | None = None
    """The password of an encrypted PDF."""


class PageText(Params):
    number: int
    """The page number, from 1."""
    text: str
    """The page's text."""


class TextOutputs(Params):
    text: str
    """The text of the pages read, pages separated by a blank line."""
    pages: list[PageText]
    """Each page's text."""
    page_count: int
    """How many pages the document has."""


@activity("pdf.read_text", category=CATEGORY, capability=CAPABILITY, params=DocumentParams, outputs=TextOutputs)
@os_errors
def read_text(ctx: ActivityContext, params: DocumentParams) -> dict[str, Any]:
    """Extract the text of a PDF, page by page, in reading order."""
    with _open(ctx.path(params.path), params.password) as document:
        numbers = page_numbers(params.pages, len(document.pages))
        texts = [(document.pages[n - 1].extract_text() or "").strip() for n in numbers]
        count = len(document.pages)
    pages = [{"number": number, "text": text} for number, text in zip(numbers, texts, strict=True)]
    return {"text": "\n\n".join(texts), "pages": pages, "pageCount": count}


class TablesParams(DocumentParams):
    header: bool = True
    """Each table's first row names its columns: rows are objects keyed by it (else lists)."""


class Table(Params):
    page: int
    """The page it is on."""
    rows: list[Any]
    """Its rows after the header: objects keyed by header text, or lists of cell texts."""
    columns: list[str]
    """Its header texts."""


class TablesOutputs(Params):
    tables: list[Table]
    """Every table found, in page order."""


@activity("pdf.extract_tables", category=CATEGORY, capability=CAPABILITY, params=TablesParams, outputs=TablesOutputs)
@os_errors
def extract_tables(ctx: ActivityContext, params: TablesParams) -> dict[str, Any]:
    """Find the tables of a PDF (drawn with lines or clearly aligned) and read their cells."""
    tables = []
    with _open(ctx.path(params.path), params.password) as document:
        for number in page_numbers(params.pages, len(document.pages)):
            for found in document.pages[number - 1].extract_tables():
                cells = [[_cell_text(cell) for cell in row] for row in found]
                tables.append({"page": number, **grid_rows(cells, header=params.header)})
    return {"tables": tables}


def page_numbers(selection: str | list[int] | None, count: int) -> list[int]:
    """The pages a `pages` param names, checked against the document's `count` pages."""
    if selection is None:
        return list(range(1, count + 1))
    numbers: list[int] = []
    if isinstance(selection, str):
        for part in selection.split(","):
            match = _RANGE.fullmatch(part)
            if not match:
                raise ActivityError(f"param 'pages' must look like 1-3,5, got {selection!r}")
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            numbers.extend(range(first, last + 1))
    else:
        numbers = list(selection)
    outside = [number for number in numbers if not 1 <= number <= count]
    if outside:
        raise ActivityError(f"the document has {count} pages: no page {outside[0]}")
    return list(dict.fromkeys(numbers))


def _open(path: Path, password: str | None) -> PDF:
    import pdfplumber
    from pdfminer.pdfdocument import PDFPasswordIncorrect
    from pdfplumber.utils.exceptions import PdfminerException

    if not path.is_file():
        raise ActivityError(f"{path} does not exist")
    try:
        return pdfplumber.open(path, password=password or "")
    except PdfminerException as exc:
        cause = exc.args[0] if exc.args else exc
        if isinstance(cause, PDFPasswordIncorrect):
            raise ActivityError(f"{path}: wrong or missing password") from None
        raise ActivityError(f"{path} is not a readable PDF: {cause}") from None


def _cell_text(cell: str | None) -> str:
    return " ".join((cell or "").split())
