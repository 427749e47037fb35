"""`email.send` (SMTP with smtplib) and `email.read` (IMAP with IMAPClient)."""

from __future__ import annotations

import email.utils
import mimetypes
import smtplib
import ssl
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity, either
from exekra.workflow.artifacts import safe_name
from exekra.workflow.errors import ActivityError

CATEGORY = "Email"
CAPABILITY = "email"
DEFAULT_TIMEOUT_SECONDS = 30.0
SMTP_PORTS = {"none": 25, "starttls": 587, "tls": 465}
IMAP_PORTS = {"none": 143, "starttls": 143, "tls": 993}

Security = Literal["none", "starttls", "tls"]
Addresses = Annotated[str | list[str], either("a string", "a list of strings")]


class Server(Params):
    """A mail server, usually a credential: `{{ credentials.<name> }}`.

    A credential's fields are text, so `port`, `verify` and `timeoutSeconds` also take their text forms
    (`"587"`, `"false"`, `"10"`); everything else stays strict.
    """

    host: str
    """Its host name or address."""
    port: int | None = Field(None, gt=0, lt=65536, strict=False)
    """Its port (default: by `security`: SMTP 25, 587, 465; IMAP 143, 143, 993)."""
    username: str | None = None
    """The login (none: no login)."""
    password: str | None = None
    """The password."""
    security: Security = "starttls"
    """none (plain), starttls (upgrade after connecting) or tls (TLS from the start)."""
    verify: bool = Field(True, strict=False)
    """Check the server's certificate."""
    ca_file: str | None = None
    """A CA bundle (PEM) to check it against, for a private CA."""
    timeout_seconds: float = Field(DEFAULT_TIMEOUT_SECONDS, gt=0, strict=False)
    """The network timeout."""

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class SendParams(Params):
    smtp: Server
    """The SMTP server: {host, port?, username?, password?, security, verify?, caFile?}."""
    from_: str = Field(alias="from")
    """The sender, "Name <address>" or an address."""
    to: Addresses
    """The recipient(s)."""
    cc: Addresses = []
    """Copies."""
    bcc: Addresses = []
    """Blind copies (not shown in the message)."""
    reply_to: str | None = None
    """The reply address."""
    subject: str
    """The subject."""
    text: str = ""
    """The plain-text body."""
    html: str | None = None
    """An HTML body, sent as an alternative to the text."""
    attachments: Addresses = []
    """Files to attach (relative paths are under the workdir)."""


class SendOutputs(Params):
    message_id: str
    """The Message-ID header of the message sent."""


@activity("email.send", category=CATEGORY, capability=CAPABILITY, params=SendParams, outputs=SendOutputs)
def send(ctx: ActivityContext, params: SendParams) -> dict[str, Any]:
    """Send one message through an SMTP server."""
    message = EmailMessage()
    message["From"] = params.from_
    message["To"] = ", ".join(_listed(params.to))
    if params.cc:
        message["Cc"] = ", ".join(_listed(params.cc))
    if params.bcc:
        message["Bcc"] = ", ".join(_listed(params.bcc))
    if params.reply_to:
        message["Reply-To"] = params.reply_to
    message["Subject"] = params.subject
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid()
    message.set_content(params.text)
    if params.html is not None:
        message.add_alternative(params.html, subtype="html")
    for attachment in _listed(params.attachments):
        path = ctx.path(attachment)
        if not path.is_file():
            raise ActivityError(f"cannot attach {path}: not a file")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    server = params.smtp
    try:
        with connect_smtp(server) as client:
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise ActivityError(f"SMTP {server.host}: {type(exc).__name__}: {exc}") from None
    ctx.emit("INFO", f"node {ctx.node_id}: sent {params.subject!r} to {message['To']}")
    return {"messageId": str(message["Message-ID"])}


def connect_smtp(server: Server) -> smtplib.SMTP:
    """A connected SMTP client: TLS as `security` says, logged in when `username` is set."""
    port = server.port or SMTP_PORTS[server.security]
    timeout = server.timeout_seconds
    client: smtplib.SMTP
    if server.security == "tls":
        client = smtplib.SMTP_SSL(server.host, port, timeout=timeout, context=server.tls_context())
    else:
        client = smtplib.SMTP(server.host, port, timeout=timeout)
    try:
        if server.security == "starttls":
            client.starttls(context=server.tls_context())
        if server.username:
            client.login(server.username, server.password or "")
    except BaseException:
        client.close()
        raise
    return client


class ReadParams(Params):
    imap: Server
    """The IMAP server: {host, port?, username, password, security (default starttls), verify?, caFile?}."""
    folder: str = "INBOX"
    """The folder to search."""
    unseen: bool = False
    """Only messages not read yet."""
    sender: str | None = Field(None, alias="from")
    """Only messages whose From contains this text."""
    subject: str | None = None
    """Only messages whose Subject contains this text."""
    since: str | None = None
    """Only messages since this date (YYYY-MM-DD)."""
    limit: int = Field(50, ge=1)
    """At most this many messages, oldest first."""
    attachments_dir: str = "attachments"
    """Where attachments are saved (relative paths are under the workdir), as <uid>-<name>."""
    download_attachments: bool = True
    """Save attachments (else they are only listed)."""
    mark_seen: bool = False
    """Mark the messages read as seen."""
    move_to: str | None = None
    """Move the messages read to this folder."""


class Attachment(Params):
    name: str
    """The file name the sender gave."""
    path: str | None
    """Where it was saved (null when not downloaded)."""
    content_type: str
    """Its media type."""
    bytes: int
    """Its size."""


class Message(Params):
    uid: int
    """The message's IMAP UID in the folder."""
    message_id: str | None
    """Its Message-ID header."""
    from_: str = Field(alias="from")
    """The From header."""
    to: list[str]
    """The To addresses."""
    cc: list[str]
    """The Cc addresses."""
    subject: str
    """The subject."""
    date: str | None
    """When it was sent, ISO-8601."""
    text: str
    """The plain-text body ("" when there is none)."""
    html: str | None
    """The HTML body, if any."""
    attachments: list[Attachment]
    """Its attachments."""


class ReadOutputs(Params):
    messages: list[Message]
    """The messages found, oldest first."""
    count: int
    """How many."""


@activity("email.read", category=CATEGORY, capability=CAPABILITY, params=ReadParams, outputs=ReadOutputs)
def read(ctx: ActivityContext, params: ReadParams) -> dict[str, Any]:
    """Search a mailbox folder over IMAP and read the messages found, with their attachments."""
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError

    server = params.imap
    criteria: list[Any] = ["UNSEEN"] if params.unseen else ["ALL"]
    if params.sender:
        criteria += ["FROM", params.sender]
    if params.subject:
        criteria += ["SUBJECT", params.subject]
    if params.since:
        criteria += ["SINCE", _date(params.since)]
    folder = ctx.path(params.attachments_dir)
    try:
        with IMAPClient(
            server.host,
            port=server.port or IMAP_PORTS[server.security],
            ssl=server.security == "tls",
            ssl_context=server.tls_context(),
            timeout=server.timeout_seconds,
        ) as client:
            if server.security == "starttls":
                client.starttls(server.tls_context())
            if server.username:
                client.login(server.username, server.password or "")
            client.select_folder(params.folder, readonly=not (params.mark_seen or params.move_to))
            uids = sorted(client.search(criteria))[: params.limit]
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            messages = [_message(uid, fetched[uid][b"BODY[]"], folder, params.download_attachments) for uid in uids]
            if uids and params.mark_seen:
                client.add_flags(uids, [b"\\Seen"])
            if uids and params.move_to:
                client.move(uids, params.move_to)
    except (IMAPClientError, OSError) as exc:
        raise ActivityError(f"IMAP {server.host}: {type(exc).__name__}: {exc}") from None
    return {"messages": messages, "count": len(messages)}


def _message(uid: int, raw: bytes, folder: Path, download: bool) -> dict[str, Any]:
    parsed = BytesParser(policy=default_policy).parsebytes(raw)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    attachments = []
    for part in parsed.iter_attachments():
        name = part.get_filename() or "attachment"
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        path = None
        if download:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{uid}-{safe_name(name)}"
            target.write_bytes(data)
            path = str(target)
        attachments.append({"name": name, "path": path, "contentType": part.get_content_type(), "bytes": len(data)})
    sent = parsed["Date"]
    return {
        "uid": uid,
        "messageId": parsed["Message-ID"],
        "from": str(parsed["From"] or ""),
        "to": [address for _, address in email.utils.getaddresses(parsed.get_all("To", []))],
        "cc": [address for _, address in email.utils.getaddresses(parsed.get_all("Cc", []))],
        "subject": str(parsed["Subject"] or ""),
        "date": email.utils.parsedate_to_datetime(str(sent)).isoformat() if sent else None,
        "text": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else None,
        "attachments": attachments,
    }


def _date(value: str) -> Any:
    import datetime

    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise ActivityError(f"param 'since' must be a date such as 2024-03-01, got {value!r}") from None


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
