"""A small web app for the browser activities: a form, a table, a download, an upload, a slow page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import default as default_policy
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FORM = b"""<!doctype html><html><head><title>Supplier portal</title></head><body>
<h1>Welcome</h1>
<form onsubmit="event.preventDefault(); signIn()">
  <input id="email" name="email" type="email" placeholder="Email">
  <input name="password" type="password" placeholder="Password" aria-label="Your password">
  <select id="region"><option value="eu">Europe</option><option value="us">United States</option></select>
  <label><input id="remember" type="checkbox"> Remember me</label>
  <button type="submit" data-testid="sign-in" data-qa="submit">Sign in</button>
  <button type="button" class="secondary">Cancel</button>
  <button type="button" class="secondary">Help</button>
</form>
<a id="docs" href="/docs?lang=en" title="Documentation">Docs</a>
<div id="status"></div>
<div id="banner">Loading...</div>
<script>
  function signIn() {
    const email = document.getElementById('email').value;
    const region = document.getElementById('region').value;
    const remember = document.getElementById('remember').checked;
    document.getElementById('status').innerText = `signed in ${email} ${region} ${remember}`;
  }
  document.addEventListener('keydown', event => {
    if (event.key === 'Escape') document.getElementById('status').innerText = 'escaped';
  });
  setTimeout(() => {
    document.getElementById('banner').remove();
    const late = document.createElement('p');
    late.id = 'late';
    late.innerText = 'Ready';
    document.body.appendChild(late);
  }, 300);
</script>
</body></html>"""

TABLE = b"""<!doctype html><html><head><title>Invoices</title></head><body>
<div id="wrapper"><table id="invoices">
  <thead><tr><th>Number</th><th>Total</th><th>Total</th><th></th></tr></thead>
  <tbody>
    <tr><td>INV-1</td><td>10.50</td><td>EUR</td><td><a href="#">open</a></td></tr>
    <tr><td>INV-2</td><td>  7  </td><td>USD</td></tr>
  </tbody>
</table></div>
<p id="not-a-table">nothing here</p>
</body></html>"""

DOWNLOAD = b"""<!doctype html><html><head><title>Reports</title></head><body>
<a id="report" href="/files/report.csv">Download the report</a>
</body></html>"""

UPLOAD = b"""<!doctype html><html><head><title>Upload</title></head><body>
<form method="post" action="/upload" enctype="multipart/form-data">
  <input id="file" type="file" name="file" multiple>
  <button type="submit">Send</button>
</form></body></html>"""

REPORT_CSV = b"number,total\nINV-1,10.50\nINV-2,7\n"


class WebApp(ThreadingHTTPServer):
    """The server; `slow_requested` is set when the slow page is asked for, `release` lets it answer."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release = threading.Event()
        self.slow_requested = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: WebApp

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def _send(self, body: bytes, content_type: str = "text/html; charset=utf-8", **headers: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        pages = {"/form": FORM, "/table": TABLE, "/download": DOWNLOAD, "/upload": UPLOAD}
        if path in pages:
            self._send(pages[path])
        elif path == "/files/report.csv":
            self._send(REPORT_CSV, "text/csv", Content_Disposition='attachment; filename="invoices 2024.csv"')
        elif path == "/slow":
            self.server.slow_requested.set()
            self.server.release.wait(60)
            self._send(b"<title>Slow</title>")
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        header = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=default_policy).parsebytes(header + body)
        files = [
            f"{part.get_filename()}:{len(part.get_payload(decode=True) or b'')}"
            for part in message.iter_parts()
            if part.get_filename()
        ]
        self._send(f"<title>Received</title><p id='received'>{escape(' '.join(files))}</p>".encode())


@contextmanager
def serve() -> Iterator[WebApp]:
    """The web app on 127.0.0.1, stopped afterwards."""
    app = WebApp()
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.release.set()
        app.shutdown()
        app.server_close()
        thread.join(5)
