"""Local servers the example automations work against: a supplier portal (a login form, a paginated invoice
table, a status page) and an order API that drops a connection now and then and refuses bad orders."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PORTAL_USER, PORTAL_PASSWORD = "buyer@example.com", "portal-secret-1"
API_TOKEN = "orders-token-1"
PAGE_SIZE = 3

INVOICES = [
    ("INV-1001", "Acme Tools", "2026-11-02", "1250.00"),
    ("INV-1002", "Bolt & Nut Ltd", "2026-11-03", "310.40"),
    ("INV-1003", "Acme Tools", "2026-11-05", "98.10"),
    ("INV-1004", "Office Supply Co", "2026-11-09", "45.99"),
    ("INV-1005", "Bolt & Nut Ltd", "2026-11-12", "1720.00"),
    ("INV-1006", "Acme Tools", "2026-11-20", "640.25"),
    ("INV-1007", "Office Supply Co", "2026-11-28", "12.50"),
]

LOGIN = b"""<!doctype html><html><head><title>Supplier portal - sign in</title></head><body>
<h1>Supplier portal</h1>
<form method="post" action="/login">
  <label>Email <input id="username" name="username" type="email"></label>
  <label>Password <input name="password" type="password"></label>
  <button type="submit" data-testid="sign-in">Sign in</button>
</form>
</body></html>"""


class Portal(ThreadingHTTPServer):
    """The supplier portal: `/login`, `/invoices?page=N` behind a session cookie, and `/status`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PortalHandler)
        self.sessions: set[str] = set()
        self.status = "All systems operational"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _PortalHandler(BaseHTTPRequestHandler):
    server: Portal

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/login":
            self._send(200, LOGIN)
        elif url.path == "/invoices":
            if not self._signed_in():
                self._send(303, Location="/login")
                return
            page = int(parse_qs(url.query).get("page", ["1"])[0])
            self._send(200, _invoice_page(page))
        elif url.path == "/status":
            status = escape(self.server.status)
            self._send(
                200, f"<!doctype html><title>Status</title><h1>Portal status</h1><p id='status'>{status}</p>".encode()
            )
        else:
            self._send(404, b"not found")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        if form.get("username") == [PORTAL_USER] and form.get("password") == [PORTAL_PASSWORD]:
            session = secrets.token_hex(8)
            self.server.sessions.add(session)
            self._send(303, Location="/invoices?page=1", Set_Cookie=f"session={session}; HttpOnly; Path=/")
        else:
            self._send(401, b"<p>Wrong email or password</p>")

    def _signed_in(self) -> bool:
        cookies = dict(part.strip().split("=", 1) for part in self.headers.get("Cookie", "").split(";") if "=" in part)
        return cookies.get("session") in self.server.sessions


def _invoice_page(page: int) -> bytes:
    pages = -(-len(INVOICES) // PAGE_SIZE)
    rows = "".join(
        f"<tr><td>{n}</td><td>{escape(s)}</td><td>{d}</td><td>{t}</td></tr>"
        for n, s, d, t in INVOICES[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    )
    following = f'<a href="/invoices?page={page + 1}">Next</a>' if page < pages else ""
    return f"""<!doctype html><html><head><title>Invoices</title></head><body>
<h1>Invoices</h1>
<table id="invoices"><thead><tr><th>Number</th><th>Supplier</th><th>Issued</th><th>Total</th></tr></thead>
<tbody>{rows}</tbody></table>
<p>Page {page} of <span id="page-count">{pages}</span> {following}</p>
</body></html>""".encode()


class OrderApi(ThreadingHTTPServer):
    """`POST /orders` with a bearer token: 201 for a good order, 422 for a bad one; the first request for
    each SKU in `flaky` loses its connection without an answer (the workflow's retries resend it)."""

    daemon_threads = True

    def __init__(self, flaky: set[str]) -> None:
        super().__init__(("127.0.0.1", 0), _OrderHandler)
        self.flaky = set(flaky)
        self.orders: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _OrderHandler(BaseHTTPRequestHandler):
    server: OrderApi

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        order = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            self._answer(401, {"error": "bad token"})
            return
        sku = str(order.get("sku"))
        with self.server.lock:
            attempt = self.server.attempts[sku] = self.server.attempts.get(sku, 0) + 1
        if sku in self.server.flaky and attempt == 1:
            self.close_connection = True  # no answer at all: the client sees the connection drop
            return
        quantity = order.get("quantity")
        if not isinstance(quantity, int) or quantity <= 0:
            self._answer(422, {"error": f"quantity must be a positive integer, got {quantity!r}"})
            return
        with self.server.lock:
            self.server.orders.append(order)
            number = len(self.server.orders)
        self._answer(201, {"id": number})


@contextmanager
def serve(server: ThreadingHTTPServer) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
