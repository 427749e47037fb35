"""`email.send` against aiosmtpd (plain, STARTTLS, TLS, login) and `email.read` against a private Dovecot."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

from exekra.workflow.activities import email
from exekra.workflow.errors import ActivityError

from .conftest import Call
from .mailservers import DOVECOT, Dovecot, Inbox, free_port

SMTP_USER, SMTP_PASSWORD = "robot", "smtp-secret-1"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a certificate for 127.0.0.1 it signed, made for this module."""
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    authority.cert_pem.write_to_path(str(paths["ca"]))
    issued.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    issued.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp(certificates: dict[str, Path]) -> Iterator[Any]:
    """`smtp(security)`: an aiosmtpd server (none, starttls or tls) requiring a login; returns (inbox, params)."""
    started: list[Controller] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates["cert"], certificates["key"])

    def start(security: str) -> tuple[Inbox, dict[str, Any]]:
        inbox = Inbox()
        # aiosmtpd counts only STARTTLS as TLS for AUTH; implicit TLS ("tls") is encrypted all the same.
        options: dict[str, Any] = {"authenticator": authenticate, "auth_require_tls": security == "starttls"}
        if security == "starttls":
            options["tls_context"] = context
            options["require_starttls"] = True
        if security == "tls":
            options["ssl_context"] = context
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), server_hostname="localhost", **options)
        controller.start()
        started.append(controller)
        params = {
            "host": "127.0.0.1",
            "port": controller.port,
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
            "security": security,
            "caFile": str(certificates["ca"]),
        }
        return inbox, params

    yield start
    for controller in started:
        controller.stop()


def test_send_delivers_text_html_attachments_and_blind_copies(call: Call, smtp: Any, tmp_path: Path) -> None:
    inbox, server = smtp("none")
    (tmp_path / "report.csv").write_text("number,total\nINV-1,10.50\n")
    sent = call(
        email.send,
        smtp=server,
        **{"from": "Robot <robot@example.com>"},
        to=["ada@example.com", "bob@example.com"],
        bcc="audit@example.com",
        subject="Daily report",
        text="See the attachment.",
        html="<p>See the <b>attachment</b>.</p>",
        attachments=["report.csv"],
    )
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "robot@example.com"
    assert envelope.rcpt_tos == ["ada@example.com", "bob@example.com", "audit@example.com"]
    message = inbox.message()
    assert message["Message-ID"] == sent["messageId"]
    assert message["Subject"] == "Daily report" and message["Bcc"] is None
    assert message.get_body(("plain",)).get_content().strip() == "See the attachment."  # type: ignore[union-attr]
    assert "<b>attachment</b>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "report.csv" and attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == b"number,total\nINV-1,10.50\n"


def test_server_settings_read_from_a_credential_are_text_and_work(call: Call, smtp: Any) -> None:
    """A credential's fields are all text: `"smtp": "{{ credentials.mail }}"` gives `port: "1025"`."""
    inbox, server = smtp("starttls")
    as_text = {**server, "port": str(server["port"]), "verify": "false", "timeoutSeconds": "10"}
    call(email.send, smtp=as_text, **{"from": "robot@example.com"}, to="ada@example.com", subject="s", text="t")
    assert inbox.message()["Subject"] == "s"
    with pytest.raises(ActivityError, match=r"param 'smtp\.port'"):
        call(email.send, smtp={**server, "port": "smtp"}, **{"from": "r@example.com"}, to="a@example.com", subject="s")


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_send_over_tls_checks_the_certificate(call: Call, smtp: Any, security: str) -> None:
    inbox, server = smtp(security)
    call(email.send, smtp=server, **{"from": "robot@example.com"}, to="ada@example.com", subject="s", text="t")
    assert inbox.message()["Subject"] == "s"
    unknown_ca = {key: value for key, value in server.items() if key != "caFile"}
    with pytest.raises(ActivityError, match="CERTIFICATE_VERIFY_FAILED"):
        call(email.send, smtp=unknown_ca, **{"from": "robot@example.com"}, to="ada@example.com", subject="s")
    call(email.send, smtp={**unknown_ca, "verify": False}, **{"from": "r@example.com"}, to="a@example.com", subject="x")
    assert len(inbox.envelopes) == 2


def test_send_refused_login_and_bad_params_are_clear(call: Call, smtp: Any) -> None:
    _, server = smtp("none")
    with pytest.raises(ActivityError, match=r"^SMTP 127\.0\.0\.1: SMTPAuthenticationError"):
        call(email.send, smtp={**server, "password": "wrong"}, **{"from": "r@x"}, to="a@x", subject="s")
    with pytest.raises(ActivityError, match=r"param 'from' is required"):
        call(email.send, smtp=server, to="a@x", subject="s")
    with pytest.raises(ActivityError, match=r"^param 'smtp\.security' must be one of none, starttls, tls$"):
        call(email.send, smtp={**server, "security": "ssl"}, **{"from": "r@x"}, to="a@x", subject="s")


@pytest.fixture(scope="module")
def dovecot(certificates: dict[str, Path]) -> Iterator[Dovecot]:
    if shutil.which("dovecot") is None and not Path(DOVECOT).exists():
        pytest.skip("dovecot is missing: make dovecot (apt-get install dovecot-imapd)")
    server = Dovecot(certificates["cert"], certificates["key"])
    server.start()
    yield server
    server.stop()


def mail(sender: str, subject: str, text: str, attachment: tuple[str, bytes] | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "clerk@example.com", subject
    message["Date"] = "Fri, 01 Mar 2024 08:30:00 +0000"
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.com>"
    message.set_content(text)
    if attachment:
        message.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
    return message.as_bytes()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[IMAPClient]:
    """Dovecot's INBOX emptied and filled: two unseen invoices (one with a PDF), a seen one, a newsletter."""
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False) as client:
        client.login(dovecot.user, dovecot.password)
        for folder in ("INBOX", "Processed"):
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.select_folder(folder)
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()
        client.select_folder("INBOX")
        client.append("INBOX", mail("billing@acme.test", "Invoice INV-7", "Total 50.00", ("INV-7.pdf", b"%PDF-1.4 7")))
        client.append("INBOX", mail("billing@acme.test", "Invoice INV-6", "Total 20.00"), flags=[b"\\Seen"])
        client.append("INBOX", mail("news@acme.test", "Newsletter", "Hello"))
        client.append("INBOX", mail("billing@acme.test", "Invoice INV-8", "Total 80.00"))
        yield client


def test_read_searches_by_unseen_sender_and_subject_and_downloads_attachments(
    call: Call, dovecot: Dovecot, mailbox: IMAPClient, tmp_path: Path
) -> None:
    found = call(email.read, imap=dovecot.settings(), unseen=True, subject="Invoice", **{"from": "billing@"})
    assert found["count"] == 2
    first, second = found["messages"]
    assert (first["subject"], second["subject"]) == ("Invoice INV-7", "Invoice INV-8")
    assert first["from"] == "billing@acme.test" and first["to"] == ["clerk@example.com"]
    assert first["messageId"] == "<Invoice-INV-7@example.com>"
    assert first["date"] == "2024-03-01T08:30:00+00:00"
    assert first["text"].strip() == "Total 50.00" and first["html"] is None
    (attachment,) = first["attachments"]
    assert attachment["name"] == "INV-7.pdf" and attachment["contentType"] == "application/pdf"
    assert Path(attachment["path"]).read_bytes() == b"%PDF-1.4 7"
    assert Path(attachment["path"]).parent == tmp_path / "attachments"
    # Reading did not mark anything: the same search finds the same messages.
    assert call(email.read, imap=dovecot.settings(), unseen=True)["count"] == 3


def test_read_marks_seen_and_moves(call: Call, dovecot: Dovecot, mailbox: IMAPClient) -> None:
    call(email.read, imap=dovecot.settings(), subject="INV-7", markSeen=True, downloadAttachments=False)
    assert [m["subject"] for m in call(email.read, imap=dovecot.settings(), unseen=True)["messages"]] == [
        "Newsletter",
        "Invoice INV-8",
    ]
    moved = call(email.read, imap=dovecot.settings(), **{"from": "news@"}, moveTo="Processed")
    assert moved["count"] == 1
    assert call(email.read, imap=dovecot.settings(), **{"from": "news@"})["count"] == 0
    assert call(email.read, imap=dovecot.settings(), folder="Processed")["messages"][0]["subject"] == "Newsletter"


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_read_over_tls_with_a_limit(
    call: Call, dovecot: Dovecot, mailbox: IMAPClient, certificates: dict[str, Path], security: str
) -> None:
    port = dovecot.tls_port if security == "tls" else dovecot.port
    imap = dovecot.settings(security=security, port=port, caFile=str(certificates["ca"]))
    found = call(email.read, imap=imap, limit=2)
    assert [m["subject"] for m in found["messages"]] == ["Invoice INV-7", "Invoice INV-6"]


def test_read_wrong_password_is_a_clear_error(call: Call, dovecot: Dovecot) -> None:
    with pytest.raises(ActivityError, match=r"^IMAP 127\.0\.0\.1: LoginError"):
        call(email.read, imap=dovecot.settings(password="wrong"))
