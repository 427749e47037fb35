"""Mail servers for the email activities: aiosmtpd for SMTP, a private Dovecot for IMAP.

Dovecot is Debian's `dovecot-imapd` (installed by `make dovecot`), run in the foreground with a config
in a temporary folder: its own ports on 127.0.0.1, a passwd-file with one user, maildirs in the folder.
As root its services run as Debian's `dovecot`/`dovenull` users and mail belongs to `nobody`; as
another user everything runs as that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import Envelope, Session

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
START_SECONDS = 20.0

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {uid}
first_valid_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited with {process.returncode}: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            if connection.recv(100).startswith(b"* OK"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"dovecot did not answer on port {port} within {START_SECONDS:g} s")


@dataclass
class Dovecot:
    """A private Dovecot with one user; `start()` then `stop()`."""

    cert: Path
    key: Path
    user: str = "clerk"
    password: str = "imap-secret-1"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="exekra-dovecot-")))
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.chmod(0o755)
        for name in ("run", "state", "mail", "home"):
            (self.root / name).mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid, internal, login = nobody.pw_uid, nobody.pw_gid, "dovecot", "dovenull"
            for name in ("mail", "home"):
                os.chown(self.root / name, uid, gid)
        else:
            me = pwd.getpwuid(os.geteuid())
            uid, gid, internal, login = me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        config = self.root / "dovecot.conf"
        config.write_text(
            CONFIG.format(
                root=self.root,
                cert=self.cert,
                key=self.key,
                uid=uid,
                gid=gid,
                internal_user=internal,
                login_user=login,
                port=self.port,
                tls_port=self.tls_port,
            )
        )
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.process, self.root / "dovecot.log")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The `imap` param of `email.read` for this server."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.user,
            "password": self.password,
            "security": "none",
            **overrides,
        }


class Inbox:
    """An aiosmtpd handler for tests' SMTP servers: keeps every message it is given."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def message(self, index: int = -1) -> EmailMessage:
        raw = self.envelopes[index].original_content or b""
        parsed: EmailMessage = BytesParser(policy=default_policy).parsebytes(raw)
        return parsed

    def messages(self) -> list[EmailMessage]:
        return [self.message(i) for i in range(len(self.envelopes))]
