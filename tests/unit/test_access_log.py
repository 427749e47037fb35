"""The hub's access log (`exekra hub --access-log`) never shows a webhook's token, its credential."""

from __future__ import annotations

import logging

import uvicorn

from exekra.config import Settings
from exekra.hub.server import configure_logging


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_access_log_shows_webhook_urls_without_their_token() -> None:
    configure_logging(Settings())
    uvicorn.Config(app="exekra.hub.server:app_from_environment", access_log=True)  # uvicorn's own logging set-up
    access = logging.getLogger("uvicorn.access")
    lines = Lines()
    access.addHandler(lines)
    try:
        # As uvicorn's HTTP protocols write each line.
        access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.7:5123", "POST", "/api/webhooks/exw_s3cr3t?x=1", "1.1", 202)
        access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.7:5123", "GET", "/api/health", "1.1", 200)
    finally:
        access.removeHandler(lines)
    assert lines.lines == [
        '10.0.0.7:5123 - "POST /api/webhooks/[redacted]?x=1 HTTP/1.1" 202',
        '10.0.0.7:5123 - "GET /api/health HTTP/1.1" 200',
    ]
