"""Data activities: `json.parse`, `csv.read` and `csv.write`."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from exekra.workflow.activities.context import ActivityContext, os_errors, param
from exekra.workflow.errors import ActivityError


def json_parse(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Parse the JSON `text`; outputs `value`."""
    text = param(params, "text", str)
    try:
        return {"value": json.loads(text)}
    except ValueError as exc:
        raise ActivityError(f"invalid JSON: {exc}") from None


@os_errors
def csv_read(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Read CSV from the file `path` or from `text`; outputs `rows`.

    With `header` (default true) each row is an object keyed by the first line's names, else a list.
    `delimiter` defaults to ",". Values are strings.
    """
    delimiter = param(params, "delimiter", str, ",")
    if params.get("text") is not None:
        text = param(params, "text", str)
    else:
        text = ctx.path(param(params, "path", str)).read_text(encoding="utf-8-sig")
    source = io.StringIO(text, newline="")
    if param(params, "header", bool, True):
        rows: list[Any] = list(csv.DictReader(source, delimiter=delimiter))
    else:
        rows = list(csv.reader(source, delimiter=delimiter))
    return {"rows": rows}


@os_errors
def csv_write(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Write `rows` (objects or lists) to the CSV file `path`; outputs `path` and `count` (rows written).

    For objects the header is `columns` (default: every key, in order of first appearance); for
    lists `columns`, when given, is written as the first line.
    """
    path = ctx.path(param(params, "path", str))
    rows = param(params, "rows", list)
    columns = param(params, "columns", list, None)
    delimiter = param(params, "delimiter", str, ",")
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
