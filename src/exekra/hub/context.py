"""The hub's shared objects, built once per process and reached from routes through `get_hub`."""

from __future__ import annotations

from dataclasses import dataclass, field

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub.auth.security import RunnerTokens
from exekra.hub.dispatch.dispatcher import Dispatcher, DuplicateMirror
from exekra.hub.ratelimit import RateLimiter


@dataclass
class Hub:
    settings: Settings
    db: Database
    dispatcher: Dispatcher
    limiter: RateLimiter
    runner_tokens: RunnerTokens
    secret_key: bytes
    dedup: DuplicateMirror | None = None  # the Redis mirror of idempotency keys, when Redis is configured
    started_at: float = field(default=0.0)
