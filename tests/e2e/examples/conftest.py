"""Fixtures of the example automations: their definitions, the local servers they work against, the
credentials they read, and an ERP database of their own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import trustme
from aiosmtpd.controller import Controller

from exekra.embedded import create_database, drop_database, free_port
from tests.activities.conftest import CHROMIUM
from tests.activities.mailservers import DOVECOT, Dovecot, Inbox

from .servers import OrderApi, Portal, serve

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium (make test installs it)"
)

INVOICES_TABLE = """CREATE TABLE invoices (
    number text PRIMARY KEY, supplier text NOT NULL, issued date NOT NULL, total numeric(12, 2) NOT NULL)"""


def example(name: str) -> dict[str, Any]:
    """A definition (or trigger) of `examples/`, as shipped."""
    loaded: dict[str, Any] = orjson.loads((EXAMPLES / name).read_bytes())
    return loaded


def put_credential(api: httpx.Client, name: str, fields: dict[str, Any]) -> None:
    """Create the credential `name`, or replace its fields (the e2e hub lives for the whole session)."""
    body = {"name": name, "fields": {key: str(value) for key, value in fields.items()}}
    created = api.post("/api/credentials", json=body)
    if created.status_code == 409:
        listed = api.get("/api/credentials", params={"limit": 200}).json()["credentials"]
        (found,) = [c for c in listed if c["name"] == name]
        created = api.patch(f"/api/credentials/{found['id']}", json={"fields": body["fields"]})
    assert created.status_code in (200, 201), created.text


def sql(url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture
def erp(pg_server_url: str) -> Iterator[str]:
    """An ERP database of the test's own with an empty `invoices` table; its URL."""
    name = f"exekra_erp_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    sql(url, INVOICES_TABLE)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with serve(Portal()) as server:
        yield server


@pytest.fixture
def order_api() -> Iterator[OrderApi]:
    with serve(OrderApi(flaky={"B-200", "D-400"})) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, dict[str, Any]]]:
    """A local SMTP server (aiosmtpd, no TLS) and the credential fields that reach it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, {"host": "127.0.0.1", "port": controller.port, "security": "none"}
    controller.stop()


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A private Dovecot (Debian's dovecot-imapd) with one mailbox."""
    if not Path(DOVECOT).exists():
        pytest.skip("dovecot is missing: make dovecot (apt-get install dovecot-imapd)")
    folder = tmp_path_factory.mktemp("imap-tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "cert.pem", folder / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    server = Dovecot(cert, key)
    server.start()
    yield server
    server.stop()
