"""`pdf.*` on PDFs the tests make with fpdf2: text by page, ruled tables, page selection, passwords."""

from __future__ import annotations

from pathlib import Path

import pytest
from fpdf import FPDF

from exekra.workflow.activities import pdf
from exekra.workflow.errors import ActivityError

from .conftest import Call

INVOICE_LINES = [["Item", "Quantity", "Price"], ["Bolts", "100", "0.25"], ["Nuts", "250", "0.10"]]


def make_invoice(path: Path, password: str | None = None) -> Path:
    document = FPDF()
    document.set_font("Helvetica", size=12)
    document.add_page()
    document.cell(text="Invoice INV-7")
    document.ln()
    document.cell(text="Total: 50.00 EUR")
    document.add_page()
    document.cell(text="Details")
    document.ln(12)
    with document.table() as table:
        for line in INVOICE_LINES:
            row = table.row()
            for cell in line:
                row.cell(cell)
    document.add_page()
    document.cell(text="Thank you")
    if password:
        document.set_encryption(owner_password="owner-secret", user_password=password)
    document.output(str(path))
    return path


@pytest.fixture
def invoice(tmp_path: Path) -> Path:
    return make_invoice(tmp_path / "invoice.pdf")


def test_read_text_gives_every_page_and_the_whole(call: Call, invoice: Path) -> None:
    read = call(pdf.read_text, path=str(invoice))
    assert read["pageCount"] == 3
    assert [page["number"] for page in read["pages"]] == [1, 2, 3]
    assert read["pages"][0]["text"] == "Invoice INV-7\nTotal: 50.00 EUR"
    assert read["text"].startswith("Invoice INV-7\nTotal: 50.00 EUR\n\nDetails")
    assert read["text"].endswith("Thank you")


def test_pages_can_be_chosen(call: Call, invoice: Path) -> None:
    assert [p["number"] for p in call(pdf.read_text, path=str(invoice), pages="3,1-2")["pages"]] == [3, 1, 2]
    assert call(pdf.read_text, path=str(invoice), pages=[3])["text"] == "Thank you"
    with pytest.raises(ActivityError, match=r"^the document has 3 pages: no page 4$"):
        call(pdf.read_text, path=str(invoice), pages="2-4")
    with pytest.raises(ActivityError, match=r"^param 'pages' must look like 1-3,5"):
        call(pdf.read_text, path=str(invoice), pages="first")


def test_extract_tables_reads_ruled_tables_by_header(call: Call, invoice: Path) -> None:
    found = call(pdf.extract_tables, path=str(invoice))
    assert found == {
        "tables": [
            {
                "page": 2,
                "columns": ["Item", "Quantity", "Price"],
                "rows": [
                    {"Item": "Bolts", "Quantity": "100", "Price": "0.25"},
                    {"Item": "Nuts", "Quantity": "250", "Price": "0.10"},
                ],
            }
        ]
    }
    plain = call(pdf.extract_tables, path=str(invoice), pages="2", header=False)
    assert plain["tables"][0]["rows"] == INVOICE_LINES
    assert call(pdf.extract_tables, path=str(invoice), pages="1") == {"tables": []}


def test_an_encrypted_pdf_needs_its_password(call: Call, tmp_path: Path) -> None:
    locked = make_invoice(tmp_path / "locked.pdf", password="open-sesame")
    with pytest.raises(ActivityError, match="wrong or missing password"):
        call(pdf.read_text, path=str(locked))
    assert call(pdf.read_text, path=str(locked), password="open-sesame", pages="1")["text"].startswith("Invoice")


def test_a_file_that_is_no_pdf_is_named(call: Call, tmp_path: Path) -> None:
    (tmp_path / "fake.pdf").write_text("hello")
    with pytest.raises(ActivityError, match="is not a readable PDF"):
        call(pdf.read_text, path="fake.pdf")
    with pytest.raises(ActivityError, match=r"nope\.pdf does not exist$"):
        call(pdf.extract_tables, path="nope.pdf")
