"""The security headers of every answer (docs/security.md), added by one pure ASGI middleware.

The header lists are built once: an answer costs one list concatenation, so the runner protocol's hot routes
pay nothing measurable.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

# The dashboard and the Studio load scripts and styles from this hub only; data for scripts travels in JSON
# islands (`<script type="application/json">`), which a CSP does not govern; bars are SVG, not inline styles.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (`/api/docs`) starts itself with an inline script and styles its widgets inline.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_PATH = "/api/docs"
HSTS = (b"strict-transport-security", b"max-age=31536000")


def _headers(policy: str) -> Headers:
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"x-content-type-options", b"nosniff"),
    ]


class SecurityHeaders:
    """Adds CSP, X-Frame-Options, Referrer-Policy and X-Content-Type-Options to every HTTP answer, and HSTS
    to those served over TLS (the scheme is the proxy's `X-Forwarded-Proto` only from a trusted proxy: the
    proxy middleware runs first)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        page, docs = _headers(PAGE_POLICY), _headers(DOCS_POLICY)
        self._plain = {False: page, True: docs}
        self._tls = {False: [*page, HSTS], True: [*docs, HSTS]}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The next layer's coroutine, returned rather than awaited: no frame of this layer lives as long as the
        request (a held long poll)."""
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        extra = (self._tls if scope["scheme"] == "https" else self._plain)[scope["path"] == DOCS_PATH]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return self.app(scope, receive, send_with_headers)
