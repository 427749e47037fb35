"""A local HTTP receiver for outbound calls (alert webhooks): records each POST and answers with the statuses
it is told, then 200."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        """Whether `X-Exekra-Signature` is the HMAC-SHA256 of "<timestamp>.<body>" under `secret`."""
        timestamp = self.headers["x-exekra-timestamp"]
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers["x-exekra-signature"], f"sha256={expected}")


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []  # answered in order to the next requests; then 200
        self._changed = threading.Condition()
        self.url = ""

    def record(self, item: Received) -> int:
        with self._changed:
            self.received.append(item)
            self._changed.notify_all()
            return self.statuses.pop(0) if self.statuses else 200

    def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Block until `count` requests have arrived (AssertionError after `within` seconds)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout=within):
                raise AssertionError(f"{len(self.received)} requests arrived, not {count}, within {within}s")
            return list(self.received)


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (its `url`), serving in a thread until the block ends."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.record(Received(self.path, headers, body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # hub workers send side by side

    server = Server(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
