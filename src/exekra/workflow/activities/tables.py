"""Turning a grid of cells into rows: shared by browser tables, spreadsheets and PDF tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def column_names(header: Sequence[Any], width: int) -> list[str]:
    """Names for `width` columns from a header row: empty ones are "column N", repeats get " 2", " 3"…"""
    names: list[str] = []
    for index in range(width):
        value = header[index] if index < len(header) else None
        base = str(value).strip() if value not in (None, "") else ""
        base = base or f"column {index + 1}"
        name, number = base, 1
        while name in names:
            number += 1
            name = f"{base} {number}"
        names.append(name)
    return names


def grid_rows(cells: Sequence[Sequence[Any]], *, header: bool) -> dict[str, Any]:
    """`{"rows", "columns"}`: with `header`, rows after the first as objects keyed by its names (short rows
    padded with null); without, every row as a list and no columns."""
    if not header:
        return {"rows": [list(row) for row in cells], "columns": []}
    if not cells:
        return {"rows": [], "columns": []}
    columns = column_names(cells[0], max(len(row) for row in cells))
    rows = [
        {column: (row[index] if index < len(row) else None) for index, column in enumerate(columns)}
        for row in cells[1:]
    ]
    return {"rows": rows, "columns": columns}
