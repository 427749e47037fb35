"""The example automations of `examples/`, each run end to end: published to a real hub process and run by a
real `exekra runner` (the real activity engine in its worker), against local servers these tests start."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
from fpdf import FPDF
from imapclient import IMAPClient

from tests.activities.conftest import CHROMIUM
from tests.activities.mailservers import Dovecot

from ..conftest import HubProcess, RunnerProcess, logs, publish, run_and_wait, wait_until
from .conftest import Inbox, example, needs_chromium, put_credential, sql
from .servers import API_TOKEN, INVOICES, PORTAL_PASSWORD, PORTAL_USER, OrderApi, Portal

StartRunner = Callable[..., RunnerProcess]


def run_example(
    api: httpx.Client, start_runner: StartRunner, name: str, inputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Publish `examples/<name>`, run it once on a runner of its own, and return the ended execution."""
    runner = start_runner(EXEKRA_CHROMIUM=str(CHROMIUM))
    return run_and_wait(api, publish(api, example(name), labels=[runner.name]), inputs, timeout=90)


def artifacts_of(api: httpx.Client, execution_id: str) -> dict[str, bytes]:
    """Every file the execution attached, by name, downloaded from the hub."""
    listed = api.get(f"/api/executions/{execution_id}/artifacts").json()["artifacts"]
    return {a["name"]: api.get(f"/api/executions/{execution_id}/artifacts/{a['id']}").content for a in listed}


def sheet_rows(content: bytes, sheet: str) -> list[tuple[Any, ...]]:
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    return list(workbook[sheet].iter_rows(values_only=True))


@needs_chromium
def test_portal_to_database_signs_in_pages_through_the_table_and_upserts_every_invoice(
    api: httpx.Client, start_runner: StartRunner, portal: Portal, erp: str
) -> None:
    """examples/portal-to-database.json: real hub + real runner + the machine's Chromium, the local portal
    (a login form, then three pages of invoices) and a PostgreSQL database as the ERP."""
    put_credential(api, "portal", {"username": PORTAL_USER, "password": PORTAL_PASSWORD})
    put_credential(api, "erp", {"url": erp})
    sql(erp, "INSERT INTO invoices VALUES ('INV-1001', 'Acme Tools', '2026-11-02', 1.00)")  # updated, not doubled

    execution = run_example(api, start_runner, "portal-to-database.json", {"portalUrl": portal.url})

    assert execution["status"] == "COMPLETED", (execution["error"], logs(api, execution["id"]))
    assert execution["outputs"] == {"pages": 3, "invoices": len(INVOICES)}
    stored = sql(erp, "SELECT number, supplier, issued, total FROM invoices ORDER BY number")
    assert [(r["number"], r["supplier"], r["issued"].isoformat(), r["total"]) for r in stored] == [
        (number, supplier, issued, Decimal(total)) for number, supplier, issued, total in INVOICES
    ]


def invoice_pdf(number: str, lines: list[tuple[str, str]]) -> bytes:
    document = FPDF()
    document.set_font("Helvetica", size=12)
    document.add_page()
    document.cell(text=f"Invoice {number}")
    document.ln(12)
    with document.table() as table:
        for line in [("Item", "Amount"), *lines]:
            row = table.row()
            for cell in line:
                row.cell(cell)
    return bytes(document.output())


def mail(subject: str, pdf: bytes | None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "billing@supplier.example", "clerk@example.com", subject
    message["Date"] = format_datetime(datetime(2026, 11, 30, 9, 15, tzinfo=UTC))
    message.set_content("Please find our invoice attached.")
    if pdf is not None:
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{subject.split()[-1]}.pdf")
    return message.as_bytes()


def fill_mailbox(dovecot: Dovecot) -> None:
    """Two unseen invoices with a PDF, one already seen, one unseen without its PDF, one newsletter."""
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False) as client:
        client.login(dovecot.user, dovecot.password)
        client.select_folder("INBOX")
        if uids := client.search(["ALL"]):
            client.delete_messages(uids)
            client.expunge()
        consulting = invoice_pdf("S-1", [("Consulting", "800.00"), ("Travel", "120.50"), ("Total", "920.50")])
        parts = invoice_pdf("S-2", [("Bolts", "45.00"), ("Total", "45.00")])
        old = invoice_pdf("S-0", [("Total", "10.00")])
        client.append("INBOX", mail("Invoice S-1", consulting))
        client.append("INBOX", mail("Invoice S-0", old), flags=[b"\\Seen"])
        client.append("INBOX", mail("Invoice S-2", parts))
        client.append("INBOX", mail("Invoice reminder S-1", None))
        client.append("INBOX", mail("Newsletter", None))


def unseen_subjects(dovecot: Dovecot) -> list[str]:
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False) as client:
        client.login(dovecot.user, dovecot.password)
        client.select_folder("INBOX")
        fetched = client.fetch(client.search(["UNSEEN"]), ["ENVELOPE"])
        return sorted(f[b"ENVELOPE"].subject.decode() for f in fetched.values())


def test_invoice_mail_reads_unseen_pdf_invoices_writes_their_totals_to_excel_and_mails_the_report(
    api: httpx.Client, start_runner: StartRunner, dovecot: Dovecot, smtp: tuple[Inbox, dict[str, Any]]
) -> None:
    """examples/invoice-mail.json: real hub + real runner, a private Dovecot for IMAP and aiosmtpd for SMTP."""
    inbox, smtp_fields = smtp
    fill_mailbox(dovecot)
    put_credential(api, "mailbox", dovecot.settings())
    put_credential(api, "mail", smtp_fields)

    execution = run_example(api, start_runner, "invoice-mail.json")

    assert execution["status"] == "COMPLETED", (execution["error"], logs(api, execution["id"]))
    assert execution["outputs"] == {"invoices": 2}
    (sent,) = inbox.messages()
    assert sent["To"] == "accounts@example.com" and sent["Subject"] == "Invoice totals: 2 new invoices"
    (attachment,) = list(sent.iter_attachments())
    assert attachment.get_filename() == "invoice-totals.xlsx"
    rows = sheet_rows(attachment.get_payload(decode=True), "Totals")
    assert rows[0] == ("Received", "From", "Subject", "Total")
    assert [(r[1], r[2], r[3]) for r in rows[1:]] == [
        ("billing@supplier.example", "Invoice S-1", 920.5),
        ("billing@supplier.example", "Invoice S-2", 45.0),
    ]
    assert rows[1][0] == datetime(2026, 11, 30)  # the day the mail was sent, written as a date cell
    assert artifacts_of(api, execution["id"])["invoice-totals.xlsx"] == attachment.get_payload(decode=True)
    assert unseen_subjects(dovecot) == ["Newsletter"]  # every invoice mail read is marked seen


def orders_workbook(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Orders"
    for row in [
        ("SKU", "Quantity", "Customer"),
        ("A-100", 5, "Ada"),
        ("B-200", 2, "Bob"),
        ("C-300", 0, "Cyd"),
        ("D-400", 7, "Dee"),
        ("E-500", None, "Eve"),
    ]:
        sheet.append(row)
    workbook.save(path)
    return path


def test_spreadsheet_to_api_posts_each_row_retries_dropped_connections_and_attaches_the_failures(
    api: httpx.Client, start_runner: StartRunner, order_api: OrderApi, tmp_path: Path
) -> None:
    """examples/spreadsheet-to-api.json: real hub + real runner and a local order API that drops the first
    connection for two SKUs (the node's retries resend them) and refuses two bad rows (422)."""
    put_credential(api, "orders_api", {"token": API_TOKEN})
    workbook = orders_workbook(tmp_path / "orders.xlsx")

    execution = run_example(
        api, start_runner, "spreadsheet-to-api.json", {"file": str(workbook), "apiUrl": order_api.url}
    )

    assert execution["status"] == "COMPLETED", (execution["error"], logs(api, execution["id"]))
    assert execution["outputs"] == {"sent": 3, "failed": 2}
    assert [o["sku"] for o in order_api.orders] == ["A-100", "B-200", "D-400"]
    assert order_api.attempts == {"A-100": 1, "B-200": 2, "C-300": 1, "D-400": 2, "E-500": 1}
    failures = artifacts_of(api, execution["id"])["failures.csv"].decode().splitlines()
    assert failures == [
        "row,sku,status,error",
        '4,C-300,422,"{""error"": ""quantity must be a positive integer, got 0""}"',
        '6,E-500,422,"{""error"": ""quantity must be a positive integer, got None""}"',
    ]


@needs_chromium
def test_screenshot_monitor_attaches_a_screenshot_and_fails_when_the_status_text_is_wrong(
    api: httpx.Client, start_runner: StartRunner, portal: Portal
) -> None:
    """examples/screenshot-monitor.json: real hub + real runner + the machine's Chromium, the portal's status
    page; the screenshot is attached whether the check passes or fails."""
    try:
        good = run_example(api, start_runner, "screenshot-monitor.json", {"url": f"{portal.url}/status"})
        portal.status = "Degraded: invoice exports are delayed"
        bad = run_example(api, start_runner, "screenshot-monitor.json", {"url": f"{portal.url}/status"})
    finally:
        portal.status = "All systems operational"

    assert good["status"] == "COMPLETED", (good["error"], logs(api, good["id"]))
    assert good["outputs"] == {"status": "All systems operational"}
    assert bad["status"] == "FAILED" and "the status page says: Degraded" in bad["error"]
    for execution in (good, bad):
        files = artifacts_of(api, execution["id"])
        assert list(files) == ["status-page.png"] and files["status-page.png"].startswith(b"\x89PNG\r\n")


def test_sql_report_runs_on_its_schedule_and_attaches_the_supplier_totals(
    api: httpx.Client, start_runner: StartRunner, hub_process: HubProcess, erp: str
) -> None:
    """examples/sql-report.json with its trigger examples/sql-report.trigger.json: real hub (its scheduler
    fires the trigger, made due by moving its next fire time to now) + real runner + a PostgreSQL ERP."""
    put_credential(api, "erp", {"url": erp})
    sql(
        erp,
        "INSERT INTO invoices VALUES ('A1', 'Acme Tools', current_date - 2, 100.50), "
        "('A2', 'Acme Tools', current_date - 10, 20.00), ('B1', 'Bolt & Nut Ltd', current_date - 1, 7.25), "
        "('X1', 'Old Supplier', current_date - 90, 999.00)",
    )
    runner = start_runner()
    workflow_id = publish(api, example("sql-report.json"), labels=[runner.name])
    created = api.post("/api/triggers", json={"workflowId": workflow_id, **example("sql-report.trigger.json")})
    assert created.status_code == 201, created.text
    trigger_id = created.json()["trigger"]["id"]
    sql(
        hub_process.database_url,
        "UPDATE triggers SET next_fire_at = now() - interval '1 second' WHERE id = $1::uuid",
        trigger_id,
    )

    def ended() -> dict[str, Any] | None:
        page = api.get("/api/executions", params={"workflowId": workflow_id}).json()["executions"]
        done = [e for e in page if e["status"] in ("COMPLETED", "FAILED", "STOPPED")]
        return done[0] if done else None

    execution = wait_until(ended, 60, 0.2, "the scheduled report to run")
    api.patch(f"/api/triggers/{trigger_id}", json={"enabled": False})

    assert execution["status"] == "COMPLETED", (execution["error"], logs(api, execution["id"]))
    assert execution["triggerType"] == "SCHEDULE" and execution["outputs"] == {"suppliers": 2}
    rows = sheet_rows(artifacts_of(api, execution["id"])["supplier-totals.xlsx"], "Totals")
    assert rows == [("supplier", "invoices", "total"), ("Acme Tools", 2, 120.5), ("Bolt & Nut Ltd", 1, 7.25)]
    assert datetime.now(UTC) > datetime.fromisoformat(execution["completedAt"])
