"""Sending one alert message: a signed JSON webhook, a Slack-compatible incoming webhook, or an email.

Webhook signature: `X-Exekra-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the channel's
secret, the timestamp (Unix seconds) in `X-Exekra-Timestamp`: a receiver checks the HMAC and that the timestamp
is recent, which stops a captured request from being replayed later. `X-Exekra-Delivery` carries the delivery's
id (also the payload's `id`), the same on every retry: delivery is at least once, and this is the idempotency key.

Outbound calls: httpx with bounded timeouts, no redirects followed (a 3xx is a failed attempt), only http(s).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import httpx
import orjson

from exekra import __version__
from exekra.config import Settings
from exekra.hub.alerts.models import AlertChannel, ChannelType
from exekra.hub.alerts.outbox import Outcome
from exekra.hub.alerts.service import channel_secrets
from exekra.hub.credentials.crypto import DecryptionFailed
from exekra.workflow.activities.email import Server, connect_smtp

SIGNATURE_HEADER = "X-Exekra-Signature"
TIMESTAMP_HEADER = "X-Exekra-Timestamp"
DELIVERY_HEADER = "X-Exekra-Delivery"
MAX_ERROR_CHARS = 500

SmtpLogin = Callable[[], Awaitable[tuple[str, str] | None]]
"""The SMTP login (username, password) from the configured credential, or None for no login."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Exekra-Signature` value of a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def redacted(outcome: Outcome, secrets: Iterable[str]) -> Outcome:
    """The outcome with no secret in its error (it is stored, shown and logged)."""
    error = outcome.error
    if error is None:
        return outcome
    for secret in secrets:
        error = error.replace(secret, "[secret]")
    return replace(outcome, error=error)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


class Senders:
    """Sends a payload to a channel; every failure is an `Outcome`, never an exception."""

    def __init__(
        self, settings: Settings, secret_key: bytes, smtp_login: SmtpLogin, clock_seconds: Callable[[], float]
    ):
        self.settings = settings
        self.secret_key = secret_key
        self.smtp_login = smtp_login
        self.clock_seconds = clock_seconds
        timeout = httpx.Timeout(settings.alert_http_timeout_seconds)
        self.http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": f"exekra-hub/{__version__}"},
            limits=httpx.Limits(max_connections=20),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, channel: AlertChannel | None, payload: dict[str, Any]) -> Outcome:
        if channel is None:
            return Outcome(False, error="the alert channel was deleted")
        if not channel.enabled:
            return Outcome(False, error=f"alert channel {channel.name} is disabled")
        try:
            secrets = channel_secrets(self.secret_key, channel)
        except DecryptionFailed as exc:
            return Outcome(False, error=f"the channel's secret does not decrypt: {exc}")
        try:
            if channel.type == ChannelType.EMAIL:
                outcome = await self._email(channel.config["to"], payload)
            elif channel.type == ChannelType.SLACK:
                outcome = await self._post(secrets["url"], orjson.dumps({"text": payload["text"]}), {})
            else:
                outcome = await self._webhook(channel.config["url"], secrets["secret"], payload)
        except Exception as exc:  # a channel's failure is the delivery's outcome, retried later
            outcome = Outcome(False, error=_error(exc))
        return redacted(outcome, secrets.values())

    async def _webhook(self, url: str, secret: str, payload: dict[str, Any]) -> Outcome:
        body = orjson.dumps(payload)
        timestamp = str(int(self.clock_seconds()))
        headers = {
            SIGNATURE_HEADER: signature(secret, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
            DELIVERY_HEADER: str(payload["id"]),
        }
        return await self._post(url, body, headers)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            answer = await self.http.post(url, content=body, headers={"Content-Type": "application/json", **headers})
        except httpx.HTTPError as exc:
            return Outcome(False, error=_error(exc))
        if answer.is_success:
            return Outcome(True, http_status=answer.status_code)
        return Outcome(False, http_status=answer.status_code, error=f"HTTP {answer.status_code}: {answer.text[:200]}")

    async def _email(self, to: list[str], payload: dict[str, Any]) -> Outcome:
        settings = self.settings
        if not settings.smtp_host:
            return Outcome(False, error="EXEKRA_SMTP_HOST is not set")
        login = await self.smtp_login()
        server = Server.model_validate(
            {
                "host": settings.smtp_host,
                "port": settings.smtp_port,
                "security": settings.smtp_security,
                "username": login[0] if login else None,
                "password": login[1] if login else None,
                "timeoutSeconds": settings.alert_http_timeout_seconds,
            }
        )
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = ", ".join(to)
        text: str = payload["text"]
        message["Subject"] = f"[Exekra] {text}"[:200]
        message["X-Exekra-Delivery"] = str(payload["id"])
        message.set_content(_mail_body(payload))

        def send() -> None:
            with connect_smtp(server) as client:
                client.send_message(message)

        await asyncio.to_thread(send)
        return Outcome(True)


def _mail_body(payload: dict[str, Any]) -> str:
    lines = [payload["text"], ""]
    for event in payload["events"]:
        lines.append(f"- {event['occurredAt']} {event['type']} {event['workflowName'] or event['runnerName']}")
        if event.get("error"):
            lines.append(f"  {event['error']}")
    if payload.get("eventsOmitted"):
        lines.append(f"… and {payload['eventsOmitted']} more")
    lines += ["", f"Delivery {payload['id']}"]
    return "\n".join(lines)
