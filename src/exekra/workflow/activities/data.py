"""Data activities: `json.parse`, `csv.read` and `csv.write`."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from exekra.workflow.activities.context import ActivityContext, os_errors
from exekra.workflow.activities.spec import Params, activity
from exekra.workflow.errors import ActivityError

CATEGORY = "Data"


class JsonParseParams(Params):
    text: str
    """The JSON text."""


class JsonParseOutputs(Params):
    value: Any
    """The parsed value."""


@activity("json.parse", category=CATEGORY, params=JsonParseParams, outputs=JsonParseOutputs)
def json_parse(ctx: ActivityContext, params: JsonParseParams) -> dict[str, Any]:
    """Parse the JSON `text`."""
    try:
        return {"value": json.loads(params.text)}
    except ValueError as exc:
        raise ActivityError(f"invalid JSON: {exc}") from None


class CsvReadParams(Params):
    path: str | None = None
    """The CSV file (relative paths are under the workdir); give `path` or `text`."""
    text: str | None = None
    """CSV text to read instead of a file."""
    header: bool = True
    """The first line names the columns: rows are objects keyed by them (else lists)."""
    delimiter: str = ","
    """The field separator."""


class CsvReadOutputs(Params):
    rows: list[Any]
    """The rows: objects keyed by the header, or lists of strings. Values are strings."""


@activity("csv.read", category=CATEGORY, params=CsvReadParams, outputs=CsvReadOutputs)
@os_errors
def csv_read(ctx: ActivityContext, params: CsvReadParams) -> dict[str, Any]:
    """Read CSV from the file `path` or from `text`."""
    if params.text is not None:
        text = params.text
    elif params.path is not None:
        text = ctx.path(params.path).read_text(encoding="utf-8-sig")
    else:
        raise ActivityError("param 'path' is required")
    source = io.StringIO(text, newline="")
    if params.header:
        rows: list[Any] = list(csv.DictReader(source, delimiter=params.delimiter))
    else:
        rows = list(csv.reader(source, delimiter=params.delimiter))
    return {"rows": rows}


class CsvWriteParams(Params):
    path: str
    """The CSV file to write (folders are created)."""
    rows: list[Any]
    """Objects (one column per key) or lists."""
    columns: list[str] | None = None
    """The header: for objects, the keys to write in order (default every key, in order of first
    appearance); for lists, written as the first line when given."""
    delimiter: str = ","
    """The field separator."""


class CsvWriteOutputs(Params):
    path: str
    """The absolute path written."""
    count: int
    """Rows written (the header not counted)."""


@activity("csv.write", category=CATEGORY, params=CsvWriteParams, outputs=CsvWriteOutputs)
@os_errors
def csv_write(ctx: ActivityContext, params: CsvWriteParams) -> dict[str, Any]:
    """Write `rows` to the CSV file `path` (UTF-8)."""
    path = ctx.path(params.path)
    rows, columns, delimiter = params.rows, params.columns, params.delimiter
    buffer = io.StringIO(newline="")
    if rows and all(isinstance(row, dict) for row in rows):
        names = columns or list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=names, delimiter=delimiter, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    elif all(isinstance(row, list) for row in rows):
        plain = csv.writer(buffer, delimiter=delimiter)
        if columns:
            plain.writerow(columns)
        plain.writerows(rows)
    else:
        raise ActivityError("param 'rows' must be a list of objects or a list of lists")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return {"path": str(path), "count": len(rows)}
