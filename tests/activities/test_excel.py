"""`excel.*` on real .xlsx files: sheets by name, header rows, ranges, numbers and dates kept."""

from __future__ import annotations

import datetime
from pathlib import Path

import openpyxl
import pytest

from exekra.workflow.activities import excel
from exekra.workflow.errors import ActivityError

from .conftest import Call


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    """A workbook as a person makes it: a title above the table, dates, times, numbers, an empty row."""
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "Notes"
    notes["A1"] = "ignore me"
    sheet = book.create_sheet("Invoices")
    sheet.append(["Invoices 2024"])
    sheet.append(["Number", "Date", "Amount", "Paid", "Booked at"])
    sheet.append(["INV-1", datetime.date(2024, 3, 1), 10.5, True, datetime.datetime(2024, 3, 1, 8, 30)])
    sheet.append(["INV-2", datetime.date(2024, 3, 2), 7, False, None])
    sheet.append([])
    sheet.append(["INV-3", datetime.date(2024, 3, 4), 1250, True, datetime.datetime(2024, 3, 4, 17, 0, 5)])
    path = tmp_path / "invoices.xlsx"
    book.save(path)
    return path


def test_read_a_sheet_by_name_and_a_range_with_types_kept(call: Call, workbook: Path) -> None:
    read = call(excel.read, path=str(workbook), sheet="Invoices", range="A2:E6")
    assert read["sheet"] == "Invoices"
    assert read["columns"] == ["Number", "Date", "Amount", "Paid", "Booked at"]
    assert read["rows"] == [
        {"Number": "INV-1", "Date": "2024-03-01", "Amount": 10.5, "Paid": True, "Booked at": "2024-03-01T08:30:00"},
        {"Number": "INV-2", "Date": "2024-03-02", "Amount": 7, "Paid": False, "Booked at": None},
        {"Number": "INV-3", "Date": "2024-03-04", "Amount": 1250, "Paid": True, "Booked at": "2024-03-04T17:00:05"},
    ]


def test_read_the_first_sheet_without_header(call: Call, workbook: Path) -> None:
    assert call(excel.read, path=str(workbook), header=False) == {
        "rows": [["ignore me"]],
        "columns": [],
        "sheet": "Notes",
    }


def test_write_then_read_round_trips_numbers_and_dates(call: Call, tmp_path: Path) -> None:
    rows = [
        {"Number": "INV-1", "Date": "2024-03-01", "Amount": 10.5, "Seen": "2024-03-01T08:30:00"},
        {"Number": "INV-2", "Date": "2024-03-02", "Amount": 7, "Note": {"late": True}},
        {"Number": "INV-3", "Date": "2024-13-45", "Amount": -1.25},
    ]
    written = call(excel.write, path="out/report.xlsx", sheet="Report", rows=rows)
    assert written == {"path": str(tmp_path / "out" / "report.xlsx"), "sheet": "Report", "rows": 3}

    sheet = openpyxl.load_workbook(written["path"])["Report"]
    assert sheet["B2"].value == datetime.datetime(2024, 3, 1) and sheet["B2"].number_format == "yyyy-mm-dd"
    assert sheet["D2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet["B4"].value == "2024-13-45"  # not a date: kept as text

    read = call(excel.read, path="out/report.xlsx", sheet="Report")
    assert read["columns"] == ["Number", "Date", "Amount", "Seen", "Note"]
    assert read["rows"][0] == {
        "Number": "INV-1",
        "Date": "2024-03-01",
        "Amount": 10.5,
        "Seen": "2024-03-01T08:30:00",
        "Note": None,
    }
    assert read["rows"][1]["Note"] == '{"late": true}'


def test_write_replaces_its_sheet_and_keeps_the_others(call: Call, workbook: Path) -> None:
    call(excel.write, path=str(workbook), sheet="Invoices", rows=[["a", 1]], header=False)
    book = openpyxl.load_workbook(workbook)
    assert book.sheetnames == ["Notes", "Invoices"]
    assert [[cell.value for cell in row] for row in book["Invoices"].iter_rows()] == [["a", 1]]


def test_append_matches_columns_by_header_and_adds_new_ones(call: Call, tmp_path: Path) -> None:
    first = call(excel.append, path="log.xlsx", rows=[{"day": "2024-03-01", "count": 3}])
    assert first == {"path": str(tmp_path / "log.xlsx"), "sheet": "Sheet1", "rows": 1, "lastRow": 2}
    second = call(excel.append, path="log.xlsx", rows=[{"count": 5, "day": "2024-03-02", "who": "ada"}])
    assert second["lastRow"] == 3
    assert call(excel.append, path="log.xlsx", rows=[["2024-03-03", 1, "bob"]])["lastRow"] == 4
    assert call(excel.read, path="log.xlsx")["rows"] == [
        {"day": "2024-03-01", "count": 3, "who": None},
        {"day": "2024-03-02", "count": 5, "who": "ada"},
        {"day": "2024-03-03", "count": 1, "who": "bob"},
    ]


def test_problems_are_named(call: Call, workbook: Path, tmp_path: Path) -> None:
    with pytest.raises(ActivityError, match=r"^no sheet 'Nope' \(sheets: Notes, Invoices\)$"):
        call(excel.read, path=str(workbook), sheet="Nope")
    with pytest.raises(ActivityError, match="not a cell range"):
        call(excel.read, path=str(workbook), range="A1:??")
    with pytest.raises(ActivityError, match=r"missing\.xlsx does not exist$"):
        call(excel.read, path="missing.xlsx")
    (tmp_path / "text.xlsx").write_text("not a workbook")
    with pytest.raises(ActivityError, match=r"is not an \.xlsx workbook"):
        call(excel.read, path="text.xlsx")
    with pytest.raises(ActivityError, match=r"^param 'rows' must be a list of objects or a list of lists$"):
        call(excel.write, path="x.xlsx", rows=[{"a": 1}, [2]])
