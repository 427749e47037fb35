"""The one HTTP client for the hub's runner protocol (`/api/runner/*`, SPEC §7.3).

Every failure surfaces as a `HubError` subclass, so callers decide on retry policy by type alone:
`HubUnavailable` (network, timeouts, 5xx) and `Unauthorized` are retried by the session; `RateLimited`
carries the wait the hub asked for; `Conflict` (409) and other `Rejected` answers mean "abandon".
"""

from __future__ import annotations

import asyncio
import math
import platform
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from exekra import __version__
from exekra.runner.config import RunnerConfig
from exekra.workflow.catalogue import RunnerCatalogue

if TYPE_CHECKING:
    from exekra.runner.artifacts import ArtifactFile

CONNECT_TIMEOUT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 30.0
LONG_POLL_MARGIN_SECONDS = 15.0
ARTIFACT_TIMEOUT_SECONDS = 120.0  # between two reads or writes of an upload, not for the whole of it
UPLOAD_CHUNK_BYTES = 256 * 1024
DEFAULT_TOKEN_TTL = timedelta(hours=1)


class HubError(Exception):
    """A hub call that did not succeed."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class HubUnavailable(HubError):
    """The hub could not be reached or answered 5xx: retry later."""


class Unauthorized(HubError):
    """401: wrong machine credentials, or the runner token expired or was revoked."""


class RateLimited(HubError):
    """429: the hub asks us to wait `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float, status: int = 429, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class Rejected(HubError):
    """A 4xx answer other than 401/429: the request cannot succeed as sent."""


class Conflict(Rejected):
    """409: stale attempt or wrong state. The runner abandons that execution."""


@dataclass(frozen=True)
class AuthInfo:
    """The `auth` answer: the session token and the intervals the hub wants this runner to use."""

    token: str
    expires_at: datetime
    runner_id: str
    heartbeat_interval: float
    poll_interval: float
    max_long_poll: float
    report_interval: float
    runner_name: str = ""  # the name the hub knows this runner by (older hubs do not send it)
    complete_takes_lines: bool = False  # the hub stores log lines sent with `complete` (older hubs do not)
    complete_hands_next: bool = False  # `complete` may answer the runner's next execution (older hubs do not)
    artifact_max_bytes: int | None = None  # the largest artifact the hub stores (older hubs do not say)

    def renew_after(self, now: datetime | None = None) -> float:
        """Seconds until the token should be renewed: at 80 % of its remaining lifetime (at least 1 s)."""
        remaining = (self.expires_at - (now or datetime.now(UTC))).total_seconds()
        return max(1.0, remaining * 0.8)


@dataclass(frozen=True)
class HeartbeatReply:
    """The `heartbeat` answer."""

    status: str
    stop_execution_ids: list[str]
    catalogue_wanted: bool = False  # the hub holds another declaration: send ours with the next heartbeat


class HubClient:
    """Async client for `/api/runner`. Holds the current bearer token; `auth()` replaces it."""

    def __init__(self, config: RunnerConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._config = config
        self.token: str | None = None
        self._http = httpx.AsyncClient(
            base_url=f"{config.hub_url}/api/runner",
            verify=_verify(config),
            timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            headers={"User-Agent": f"exekra-runner/{__version__}"},
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def auth(self, catalogue: RunnerCatalogue | None = None) -> AuthInfo:
        """Exchange the machine key and secret for a session token (kept for the other calls), declaring what
        this runner can run."""
        body: dict[str, Any] = {
            "machineKey": self._config.machine_key,
            "machineSecret": self._config.machine_secret,
            "hostname": socket.gethostname(),
            "os": f"{platform.system()} {platform.release()}".strip(),
            "version": __version__,
        }
        if catalogue is not None:
            body["catalogue"] = catalogue.to_dict()
        data = await self._json("POST", "/auth", json=body, authenticated=False)
        try:
            info = AuthInfo(
                token=str(data["token"]),
                expires_at=_parse_time(data.get("expiresAt")),
                runner_id=str(data.get("runnerId", "")),
                heartbeat_interval=float(data.get("heartbeatIntervalSeconds", 30)),
                poll_interval=float(data.get("pollIntervalSeconds", 5)),
                max_long_poll=float(data.get("maxLongPollSeconds", 30)),
                report_interval=float(data.get("reportIntervalSeconds", 2)),
                runner_name=str(data.get("runnerName") or ""),
                complete_takes_lines=data.get("completeTakesLines") is True,
                complete_hands_next=data.get("completeHandsNext") is True,
                artifact_max_bytes=int(data["artifactMaxBytes"]) if "artifactMaxBytes" in data else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HubUnavailable(f"unexpected auth answer from the hub: {exc!r}") from exc
        self.token = info.token
        return info

    async def heartbeat(
        self,
        metrics: dict[str, float],
        execution_id: str | None,
        catalogue: RunnerCatalogue | None = None,
        *,
        resend_catalogue: bool = False,
    ) -> HeartbeatReply:
        """Report liveness and machine metrics, and the digest of `catalogue` (the whole of it when
        `resend_catalogue`); the answer lists executions the hub wants stopped."""
        body: dict[str, Any] = dict(metrics)
        if execution_id is not None:
            body["executionId"] = execution_id
        if catalogue is not None:
            body["catalogueDigest"] = catalogue.digest
            if resend_catalogue:
                body["catalogue"] = catalogue.to_dict()
        data = await self._json("POST", "/heartbeat", json=body)
        return HeartbeatReply(
            status=str(data.get("status", "")),
            stop_execution_ids=[str(i) for i in data.get("stopExecutionIds") or []],
            catalogue_wanted=bool(data.get("catalogueWanted", False)),
        )

    async def poll(self, wait: float) -> dict[str, Any] | None:
        """Ask for work, holding the request up to `wait` seconds; the execution, or None (204)."""
        params = {"wait": math.ceil(wait)} if wait > 0 else None
        timeout = httpx.Timeout(wait + LONG_POLL_MARGIN_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        response = await self._send("GET", "/poll", params=params, read_timeout=timeout)
        if response.status_code == 204 or not response.content:
            return None
        execution = _decode(response).get("execution")
        return execution if isinstance(execution, dict) else None

    async def start(self, execution_id: str, attempt: int) -> None:
        """ASSIGNED → RUNNING for this attempt."""
        await self._send("POST", f"/executions/{execution_id}/start", json={"attempt": attempt})

    async def logs(self, execution_id: str, attempt: int, lines: list[dict[str, str]]) -> bool:
        """Upload a batch of log lines (possibly empty); True when the hub asks to stop the execution."""
        body = {"attempt": attempt, "lines": lines}
        data = await self._json("POST", f"/executions/{execution_id}/logs", json=body)
        return bool(data.get("stopRequested", False))

    async def credential(self, execution_id: str, name: str, attempt: int) -> dict[str, Any]:
        """The decrypted credential `{name, type, fields}` for a credential the workflow references."""
        path = f"/executions/{execution_id}/credentials/{name}"
        data = await self._json("GET", path, params={"attempt": attempt})
        credential = data.get("credential")
        if not isinstance(credential, dict):
            raise HubUnavailable(f"unexpected credential answer for {name!r}")
        return credential

    async def start_child(self, execution_id: str, attempt: int, request: dict[str, Any]) -> dict[str, Any]:
        """Start a child execution (`workflow.run`): `request` is `{key, workflow, inputs, version?}`; the answer
        `{execution, duplicate}` (the same child for a repeated key)."""
        body = {**request, "attempt": attempt}
        return await self._json("POST", f"/executions/{execution_id}/children", json=body)

    async def child(self, execution_id: str, attempt: int, child_id: str, wait: float) -> dict[str, Any]:
        """A child of the attempt, `{execution}`, held up to `wait` seconds until it ends."""
        params = {"attempt": attempt, "wait": math.ceil(wait)} if wait > 0 else {"attempt": attempt}
        timeout = httpx.Timeout(wait + LONG_POLL_MARGIN_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        path = f"/executions/{execution_id}/children/{child_id}"
        return _decode(await self._send("GET", path, params=params, read_timeout=timeout))

    async def stop_child(self, execution_id: str, attempt: int, child_id: str) -> dict[str, Any]:
        """Stop a child of the attempt; the answer `{execution}`."""
        path = f"/executions/{execution_id}/children/{child_id}/stop"
        return await self._json("POST", path, json={"attempt": attempt})

    async def upload_artifact(self, execution_id: str, attempt: int, artifact: ArtifactFile) -> None:
        """Upload one attached file, streamed from disk (read afresh on every call, so a retry resends it)."""
        params = {"attempt": attempt, "name": artifact.name, "nodeId": artifact.node_id}
        headers = {"Content-Type": artifact.content_type, "Content-Length": str(artifact.size)}
        timeout = httpx.Timeout(ARTIFACT_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        await self._send(
            "POST",
            f"/executions/{execution_id}/artifacts",
            params=params,
            headers=headers,
            content=_file_chunks(artifact.path),
            read_timeout=timeout,
        )

    async def complete(
        self,
        execution_id: str,
        attempt: int,
        status: str,
        error: str | None,
        outputs: dict[str, Any] | None,
        metrics: dict[str, float],
        lines: list[dict[str, str]] | None = None,
        take_next: bool = False,
        wait: float = 0,
    ) -> dict[str, Any] | None:
        """Report the final status (COMPLETED, FAILED or STOPPED) with outputs, resource metrics and the last
        log lines (only to a hub whose auth answer says `completeTakesLines`). With `take_next` (only to a hub whose
        auth answer says `completeHandsNext`), the answer's next execution for this runner, as a poll answers it,
        assigned at once or within `wait` seconds, or None: the runner polls."""
        body: dict[str, Any] = {"attempt": attempt, "status": status, "metrics": metrics}
        if lines:
            body["lines"] = lines
        if error is not None:
            body["error"] = error
        if outputs is not None:
            body["outputs"] = outputs
        timeout = None
        if take_next:
            body["takeNext"] = True
            if wait > 0:
                body["wait"] = wait
                timeout = httpx.Timeout(wait + LONG_POLL_MARGIN_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        response = await self._send("POST", f"/executions/{execution_id}/complete", json=body, read_timeout=timeout)
        if not take_next:
            return None
        try:  # the report is stored: an answer without a usable `next` only means that the runner polls for it
            following = _decode(response).get("next")
        except HubUnavailable:
            return None
        return following if isinstance(following, dict) else None

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _decode(await self._send(method, path, **kwargs))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        authenticated: bool = True,
        read_timeout: httpx.Timeout | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if authenticated:
            if self.token is None:
                raise Unauthorized("not authenticated yet")
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = await self._http.request(
                method,
                path,
                headers=headers,
                timeout=read_timeout if read_timeout is not None else httpx.USE_CLIENT_DEFAULT,
                **kwargs,
            )
        except httpx.TransportError as exc:
            raise HubUnavailable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with await asyncio.to_thread(path.open, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, UPLOAD_CHUNK_BYTES):
            yield chunk


def _verify(config: RunnerConfig) -> ssl.SSLContext | bool:
    if config.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(config.ca_bundle))
    return not config.insecure


def _decode(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise HubUnavailable(f"hub answered {response.status_code} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise HubUnavailable(f"hub answered {response.status_code} with an unexpected body")
    return data


def _error_for(response: httpx.Response) -> HubError:
    status = response.status_code
    code, message = None, response.reason_phrase or f"HTTP {status}"
    try:
        error = response.json().get("error") or {}
        code = error.get("code")
        message = error.get("message") or message
    except (ValueError, AttributeError):
        pass
    text = f"{status} {message}"
    if status == 401:
        return Unauthorized(text, status=status, code=code)
    if status == 409:
        return Conflict(text, status=status, code=code)
    if status == 429:
        return RateLimited(text, retry_after=_retry_after(response), code=code)
    if status >= 500:
        return HubUnavailable(text, status=status, code=code)
    return Rejected(text, status=status, code=code)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _parse_time(value: object) -> datetime:
    if not value:
        return datetime.now(UTC) + DEFAULT_TOKEN_TTL
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
