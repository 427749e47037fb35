"""`excel.read`, `excel.write` and `excel.append` on openpyxl (.xlsx files), keeping numbers and dates.

JSON has no date type, so dates travel as ISO-8601 text: a date cell reads as "2024-03-01" (a date and
time as "2024-03-01T08:30:00"), and such text is written back as a real date cell.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zipfile import BadZipFile

from exekra.workflow.activities.context import ActivityContext, os_errors
from exekra.workflow.activities.spec import Params, activity
from exekra.workflow.activities.tables import column_names, grid_rows
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

CATEGORY = "Documents"
CAPABILITY = "excel"
DEFAULT_SHEET = "Sheet1"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_TIME_TOKENS = re.compile(r"[hs]", re.IGNORECASE)


class ReadParams(Params):
    path: str
    """The .xlsx file."""
    sheet: str | None = None
    """The sheet's name (default: the first sheet)."""
    header: bool = True
    """The first row names the columns: rows are objects keyed by it (else lists of values)."""
    range: str | None = None
    """Only these cells, in A1 notation such as "B2:E40" (default: every used cell)."""


class ReadOutputs(Params):
    rows: list[Any]
    """The rows (empty rows skipped): objects keyed by the header, or lists. Numbers stay numbers,
    dates become ISO-8601 text, empty cells null."""
    columns: list[str]
    """The column names (with `header`)."""
    sheet: str
    """The sheet read."""


@activity("excel.read", category=CATEGORY, capability=CAPABILITY, params=ReadParams, outputs=ReadOutputs)
@os_errors
def read(ctx: ActivityContext, params: ReadParams) -> dict[str, Any]:
    """Read a sheet, or a range of it, into rows."""
    from openpyxl import load_workbook
    from openpyxl.utils.cell import range_boundaries

    workbook = _open(ctx.path(params.path), lambda path: load_workbook(path, read_only=True, data_only=True))
    try:
        sheet = _sheet(workbook, params.sheet)
        bounds: dict[str, int] = {}
        if params.range:
            try:
                min_col, min_row, max_col, max_row = range_boundaries(params.range)
            except ValueError:
                raise ActivityError(f"param 'range' is not a cell range such as B2:E40: {params.range!r}") from None
            bounds = {"min_col": min_col, "min_row": min_row, "max_col": max_col, "max_row": max_row}
        cells = [[_json_cell(cell) for cell in row] for row in sheet.iter_rows(**bounds)]
    finally:
        workbook.close()
    filled = [row for row in cells if any(value is not None for value in row)]
    return {**grid_rows(filled, header=params.header), "sheet": sheet.title}


class WriteParams(Params):
    path: str
    """The .xlsx file; created if missing, other sheets of an existing file are kept."""
    sheet: str = DEFAULT_SHEET
    """The sheet to (re)write."""
    rows: list[Any]
    """Objects (one column per key) or lists of values."""
    header: bool = True
    """Write a header row (the keys of object rows, or `columns`)."""
    columns: list[str] | None = None
    """The columns, in order (default: every key of the objects, in order of first appearance)."""
    dates: bool = True
    """Write ISO-8601 date and date-time text as date cells."""


class WriteOutputs(Params):
    path: str
    """The absolute path written."""
    sheet: str
    """The sheet written."""
    rows: int
    """Data rows written (the header not counted)."""


@activity("excel.write", category=CATEGORY, capability=CAPABILITY, params=WriteParams, outputs=WriteOutputs)
@os_errors
def write(ctx: ActivityContext, params: WriteParams) -> dict[str, Any]:
    """Write rows to a sheet, replacing what it held."""
    path = ctx.path(params.path)
    workbook = _writable(path)
    index = None
    if params.sheet in workbook.sheetnames:
        index = workbook.sheetnames.index(params.sheet)
        del workbook[params.sheet]
    sheet = workbook.create_sheet(params.sheet, index)
    columns, values = _tabulate(params.rows, params.columns)
    if params.header and columns:
        sheet.append(columns)
    for row in values:
        _append(sheet, row, params.dates)
    _save(workbook, path)
    return {"path": str(path), "sheet": params.sheet, "rows": len(values)}


class AppendParams(Params):
    path: str
    """The .xlsx file; created (with a header row) if missing."""
    sheet: str | None = None
    """The sheet (default: the first one; created if missing)."""
    rows: list[Any]
    """Objects, placed under the header row's matching columns (a new key adds a column), or lists."""
    dates: bool = True
    """Write ISO-8601 date and date-time text as date cells."""


class AppendOutputs(WriteOutputs):
    last_row: int
    """The sheet's last row number after appending."""


@activity("excel.append", category=CATEGORY, capability=CAPABILITY, params=AppendParams, outputs=AppendOutputs)
@os_errors
def append(ctx: ActivityContext, params: AppendParams) -> dict[str, Any]:
    """Add rows under the last row of a sheet."""
    path = ctx.path(params.path)
    workbook = _writable(path)
    name = params.sheet or (workbook.sheetnames[0] if workbook.sheetnames else DEFAULT_SHEET)
    sheet = workbook[name] if name in workbook.sheetnames else workbook.create_sheet(name)
    empty = sheet.max_row == 1 and all(cell.value is None for cell in sheet[1])
    if params.rows and all(isinstance(row, dict) for row in params.rows):
        header = [] if empty else [cell.value for cell in sheet[1]]
        columns = column_names(header, len(header)) if header else []
        for row in params.rows:
            columns.extend(key for key in row if key not in columns)
        for index, column in enumerate(columns, start=1):
            sheet.cell(row=1, column=index, value=column)
        for row in params.rows:
            _append(sheet, [row.get(column) for column in columns], params.dates)
    elif all(isinstance(row, list) for row in params.rows):
        for row in params.rows:
            _append(sheet, row, params.dates)
    else:
        raise ActivityError("param 'rows' must be a list of objects or a list of lists")
    _save(workbook, path)
    return {"path": str(path), "sheet": name, "rows": len(params.rows), "lastRow": sheet.max_row}


def _open(path: Path, load: Any) -> Workbook:
    from openpyxl.utils.exceptions import InvalidFileException

    if not path.is_file():
        raise ActivityError(f"{path} does not exist")
    try:
        workbook: Workbook = load(path)
    except (InvalidFileException, BadZipFile, KeyError, ValueError) as exc:
        raise ActivityError(f"{path} is not an .xlsx workbook: {exc}") from None
    return workbook


def _writable(path: Path) -> Workbook:
    from openpyxl import Workbook, load_workbook

    if path.exists():
        return _open(path, load_workbook)
    workbook = Workbook()
    workbook.remove(workbook.active)
    return workbook


def _save(workbook: Workbook, path: Path) -> None:
    if not workbook.sheetnames:
        workbook.create_sheet(DEFAULT_SHEET)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)


def _sheet(workbook: Workbook, name: str | None) -> Worksheet:
    if name is None:
        return workbook.worksheets[0]
    if name not in workbook.sheetnames:
        raise ActivityError(f"no sheet {name!r} (sheets: {', '.join(workbook.sheetnames)})")
    sheet: Worksheet = workbook[name]
    return sheet


def _tabulate(rows: list[Any], columns: list[str] | None) -> tuple[list[str], list[list[Any]]]:
    if rows and all(isinstance(row, dict) for row in rows):
        names = columns or list(dict.fromkeys(key for row in rows for key in row))
        return names, [[row.get(name) for name in names] for row in rows]
    if all(isinstance(row, list) for row in rows):
        return columns or [], rows
    raise ActivityError("param 'rows' must be a list of objects or a list of lists")


def _append(sheet: Worksheet, values: list[Any], dates: bool) -> None:
    sheet.append([_excel_value(value, dates) for value in values])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, datetime.datetime):
            has_time = cell.value.time() != datetime.time()
            cell.number_format = DATETIME_FORMAT if has_time else DATE_FORMAT


def _excel_value(value: Any, dates: bool) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if dates and isinstance(value, str) and (_ISO_DATE.fullmatch(value) or _ISO_DATETIME.fullmatch(value)):
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:  # looks like a date but is none, such as 2024-13-45
            return value
    return value


def _json_cell(cell: Cell) -> Any:
    value = cell.value
    if isinstance(value, datetime.datetime):
        date_only = value.time() == datetime.time() and not _TIME_TOKENS.search(
            str(getattr(cell, "number_format", None) or "")
        )
        return value.date().isoformat() if date_only else value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value
