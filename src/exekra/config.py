"""One settings object for the hub, the runner and `exekra up`.

Every knob is an environment variable with the `EXEKRA_` prefix (plus `DATABASE_URL` and `REDIS_URL`),
or a line in a `.env` file in the working directory. The README's configuration table lists them all.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_POOL_SIZE = 10

SECRET_KEY_BYTES = 32
MIN_PASSPHRASE_CHARS = 16
# scrypt for a passphrase given as EXEKRA_SECRET_KEY: 128 MiB and about half a second, once per process. The salt
# is fixed (every hub process and every restart must derive the same key) and documented in docs/security.md.
SCRYPT_SALT = hashlib.sha256(b"exekra secret key v1").digest()
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1


class SecretKeyError(ValueError):
    """EXEKRA_SECRET_KEY, or the key file, cannot be used as the master key."""


class Settings(BaseSettings):
    """Hub and runner configuration, read from the environment and `.env`."""

    model_config = SettingsConfigDict(env_prefix="EXEKRA_", env_file=".env", extra="ignore")

    # Where things are
    home: Path = Field(default=Path("~/.exekra"), description="Data directory (embedded PostgreSQL, key file).")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "EXEKRA_DATABASE_URL"),
        description="postgresql://user:pass@host:port/db?connection_limit=N; unset = embedded PostgreSQL.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "EXEKRA_REDIS_URL"),
        description="redis://host:port/db or unix:///path; unset = embedded Redis or direct mode.",
    )
    host: str = Field(default="127.0.0.1", description="Address the hub listens on.")
    port: int = Field(default=4545, description="Port the hub listens on.")
    hub_workers: int = Field(
        default=1,
        ge=1,
        description="Hub worker processes serving one port (uvicorn workers); each has its own connection pool.",
    )
    public_url: str | None = Field(default=None, description="URL the hub is reached at (for links).")
    tls_cert: Path | None = Field(default=None, description="PEM certificate; with tls_key the hub serves HTTPS.")
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert.")
    secret_key: str | None = Field(
        default=None,
        description="Master key for credential encryption and token signing: 32 random bytes in base64 (used as "
        "is), or a passphrase of at least 16 characters (stretched with scrypt); unset = the key file "
        "home/secret.key, created with 32 random bytes (0600).",
    )
    previous_secret_key: str | None = Field(
        default=None,
        description="The EXEKRA_SECRET_KEY credentials were encrypted under before migration 0013, when the key "
        "has changed since (a passphrase shorter than 16 characters must): only read to re-encrypt them once.",
    )
    license_public_key: str | None = Field(
        default=None,
        description="Key licences are checked against: a PEM file's path or base64 of the raw 32-byte Ed25519 "
        "public key; unset = the built-in key of the Exekra licensing authority.",
    )
    instance_prefix: str = Field(
        default="",
        max_length=64,
        description="Start of this hub's per-process id in /api/health (`instance`); `exekra up` sets it.",
    )
    log_json: bool = Field(
        default=False, description="One JSON object per log line (the default of `exekra hub`, see docs/operations.md)."
    )
    access_log: bool = Field(default=False, description="One log line per request (`exekra hub --access-log`).")
    log_level: str = Field(default="INFO", description="Hub log level.")

    # Runner protocol intervals handed to runners
    heartbeat_interval_seconds: int = Field(default=30, ge=1)
    poll_interval_seconds: int = Field(default=5, ge=1)
    report_interval_seconds: int = Field(default=2, ge=1)
    max_long_poll_seconds: int = Field(default=30, ge=0, le=30)
    runner_token_ttl_seconds: int = Field(default=3600, ge=60)

    # Lifecycle (SPEC §4)
    maintenance_interval_seconds: float = Field(default=15, gt=0)
    runner_offline_seconds: int = Field(default=120, ge=1)
    # Heartbeats and polls are kept in memory and written once per this period (hub/runners/liveness.py)
    liveness_flush_seconds: float = Field(default=1.0, gt=0, le=10)
    queue_timeout_seconds: int = Field(default=1800, ge=1)
    pickup_timeout_seconds: int = Field(default=60, ge=1)
    running_grace_seconds: int = Field(default=120, ge=1)
    stop_grace_seconds: int = Field(default=60, ge=1)
    max_subworkflow_depth: int = Field(
        default=10,
        ge=1,
        le=100,
        description="How deep `workflow.run` may nest: a child this many levels below a top-level execution "
        "starts no child of its own (409 `subworkflow_refused`).",
    )

    # Queue (SPEC §5)
    dedup_window_seconds: int = Field(default=86400, ge=0)
    queue_concurrency: int = Field(default=5, ge=1)
    queue_attempts: int = Field(default=3, ge=1)
    queue_keep_completed: int = Field(default=1000, ge=0)
    queue_keep_failed: int = Field(default=5000, ge=0)
    redis_timeout_seconds: float = Field(default=0.5, gt=0, description="Per-command Redis timeout.")
    queue_reconcile_seconds: float = Field(
        default=60, gt=0, description="Period of the Redis queue's reconciliation with PostgreSQL."
    )

    # Triggers (SPEC §9)
    scheduler_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Longest time between two looks for due schedule triggers."
    )

    # Alerts (docs/alerts.md)
    alerts_enabled: bool = Field(
        default=True, description="This hub process collects alert events and delivers alert messages."
    )
    alert_poll_seconds: float = Field(
        default=5.0, gt=0, le=300, description="Longest time between two looks for alert events and due deliveries."
    )
    alert_lookback_seconds: int = Field(
        default=3600,
        ge=60,
        description="At start, executions that ended this long ago or less are checked for alerts (a hub that was "
        "down no longer than this loses no alert).",
    )
    alert_max_attempts: int = Field(default=8, ge=1, le=50, description="Attempts of one delivery before it fails.")
    alert_retry_base_seconds: float = Field(
        default=30.0, gt=0, description="Wait before the 2nd attempt; doubled for each next one (at most 1 hour)."
    )
    alert_http_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Timeout of a webhook or Slack call (connect, write, read)."
    )
    smtp_host: str | None = Field(default=None, description="Mail server for EMAIL alert channels.")
    smtp_port: int | None = Field(
        default=None, gt=0, lt=65536, description="Its port; unset: 25, 587 or 465 by smtp_security."
    )
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        default="starttls", description="none (plain), starttls (upgrade after connecting) or tls (TLS from the start)."
    )
    smtp_from: str = Field(default="exekra@localhost", description="From address of alert mails.")
    smtp_credential: str | None = Field(
        default=None,
        description="Name of a credential with fields `username` and `password` for the SMTP login; unset: no login.",
    )

    # Limits (SPEC §10)
    rate_limit_per_minute: int = Field(default=100, ge=1)
    login_failures_per_minute: int = Field(default=10, ge=1)
    runner_auth_failures_per_minute: int = Field(default=10, ge=1)
    webhook_rate_per_minute: int = Field(default=600, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_log_lines_per_batch: int = Field(default=1000, ge=1)
    max_log_line_chars: int = Field(default=16384, ge=64)
    max_log_bytes_per_execution: int = Field(
        default=50_000_000,
        ge=100_000,
        description="Bytes of log messages kept per execution; later lines are dropped, after one marker line.",
    )
    max_definition_bytes: int = Field(default=512 * 1024, ge=1024)
    artifact_max_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        description="Largest file a runner may upload as an execution's artifact (413 beyond).",
    )
    artifact_dir: Path | None = Field(
        default=None,
        description="Keep artifacts' bytes in files under this folder (shared by every hub process) instead of "
        "in PostgreSQL; unset = PostgreSQL.",
    )
    artifact_execution_max_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1024,
        description="Most bytes of artifacts one execution may keep, all attempts together (413 beyond).",
    )
    log_streams_per_user: int = Field(
        default=10, ge=1, description="Live log streams (Server-Sent Events) one user may hold open at a time."
    )
    log_stream_max_seconds: float = Field(
        default=3600,
        gt=0,
        description="A live log stream ends after this long; the client reconnects with the last seq it saw.",
    )

    # Security (docs/security.md)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of the reverse proxies in front of the hub, comma-separated: "
        "only a request from one of them has its X-Forwarded-For and X-Forwarded-Proto believed; unset = those "
        "headers are ignored everywhere.",
    )
    login_checks_in_flight: int = Field(
        default=2,
        ge=1,
        description="Password checks one account, and one address, may have running at once (429 beyond).",
    )
    metrics_enabled: bool = Field(default=True, description="Serve GET /metrics (false: 404).")
    metrics_token: str | None = Field(
        default=None, description="When set, GET /metrics needs `Authorization: Bearer <this token>` (else 401)."
    )

    # Sessions
    session_ttl_seconds: int = Field(default=604800, ge=60)

    # Retention (SPEC §11)
    retention_days: int = Field(default=30, ge=1)
    metrics_retention_days: int = Field(default=7, ge=1)
    audit_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="The purge deletes audit entries older than this many days (the one deletion the audit log "
        "allows); unset = the audit log is kept forever.",
    )
    purge_batch: int = Field(default=1000, ge=1)
    purge_pause_ratio: float = Field(
        default=1.0,
        ge=0,
        description="After each purge batch, pause this many times as long as the batch took, so that a purge "
        "never takes more than a share of the database from dispatch (1.0: at most half the time).",
    )
    purge_archive_dir: Path | None = Field(
        default=None, description="The daily purge archives executions here first (gzip JSON lines)."
    )

    # History lists (SPEC §13: fast with a million executions)
    executions_total_cap: int = Field(
        default=10000,
        ge=1,
        description="Execution lists count matches up to this many for `total`; beyond it `totalCapped` is true.",
    )

    # Runner sampling
    sample_interval_seconds: float = Field(default=1.0, gt=0)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: object) -> object:
        """`10.0.0.5, 192.168.0.0/16` (the environment's form) or a list; each must be an address or a network."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        networks = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (CIDR)") from None
        return networks

    @property
    def pool_size(self) -> int:
        """Connection pool size: `connection_limit` from DATABASE_URL, else the default."""
        if self.database_url:
            query = dict(parse_qsl(urlsplit(self.database_url).query))
            if "connection_limit" in query:
                return max(1, int(query["connection_limit"]))
        return DEFAULT_POOL_SIZE

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL in the `postgresql+asyncpg://` form, without Exekra's own query options."""
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set")
        return to_asyncpg_url(self.database_url)

    def resolve_secret_key(self) -> bytes:
        """The 32-byte master key: from EXEKRA_SECRET_KEY (`master_key`), else from the key file under home,
        created with mode 0600 on first use. SecretKeyError when the one given cannot be used."""
        if self.secret_key:
            return master_key(self.secret_key)
        key_file = self.home / "secret.key"
        if not key_file.exists():
            _create_key_file(key_file)
        return _key_from_file(key_file)

    def existing_secret_keys(self) -> tuple[bytes, bytes] | None:
        """(the master key, the master key as Exekra derived it before migration 0013), without creating a key
        file: None when there is neither EXEKRA_SECRET_KEY nor a key file. For re-encrypting old values."""
        if not self.secret_key and not (self.home / "secret.key").exists():
            return None
        current = self.resolve_secret_key()
        if self.previous_secret_key or self.secret_key:
            # Before 0013 the value, whatever it was, went through one SHA-256.
            legacy = (self.previous_secret_key or self.secret_key or "").encode()
            return current, hashlib.sha256(legacy).digest()
        return current, current  # key files always held the 32 bytes themselves


def master_key(value: str) -> bytes:
    """The master key a secret key setting stands for: base64 of exactly 32 bytes is those bytes; any other value
    is a passphrase of at least 16 characters, stretched with scrypt (SecretKeyError when shorter)."""
    key = _base64_key(value)
    if key is not None:
        return key
    if len(value) < MIN_PASSPHRASE_CHARS:
        raise SecretKeyError(
            f"EXEKRA_SECRET_KEY is a passphrase of {len(value)} characters: use at least {MIN_PASSPHRASE_CHARS}, "
            "or 32 random bytes in base64 (`openssl rand -base64 32`)"
        )
    return _stretch(value)


@lru_cache(maxsize=4)
def _stretch(passphrase: str) -> bytes:
    # Cached: tests and `exekra up` resolve the key more than once in one process.
    return hashlib.scrypt(
        passphrase.encode(),
        salt=SCRYPT_SALT,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=2 * 128 * SCRYPT_N * SCRYPT_R,
        dklen=SECRET_KEY_BYTES,
    )


def _base64_key(value: str) -> bytes | None:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == SECRET_KEY_BYTES else None


def _key_from_file(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) == SECRET_KEY_BYTES:
        return data  # key files written before 0013 hold the raw bytes
    key = _base64_key(data.decode("ascii", errors="replace"))
    if key is None:
        raise SecretKeyError(f"{path} does not hold a key (32 bytes in base64): restore it from a backup")
    return key


def _create_key_file(path: Path) -> None:
    """Write 32 random bytes in base64 to `path` (0600) unless it exists, all at once.

    The hub's worker processes start together: the key is written to a private temporary file first and
    then hard-linked into place, which fails if another process got there first, so every process reads
    the same complete key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(SECRET_KEY_BYTES)) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def to_asyncpg_url(url: str) -> str:
    """Turn `postgresql://…?connection_limit=N` into an SQLAlchemy asyncpg URL without that option."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        scheme = "postgresql+asyncpg"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("connection_limit", "schema")]
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` and pass it explicitly)."""
    return Settings()
