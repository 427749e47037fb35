"""Password hashing, random tokens and runner token signing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import cached_property

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


async def hash_password(password: str) -> str:
    """argon2id hash, computed off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Check a password against its argon2id hash, off the event loop."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def burn_password_check(password: str) -> None:
    """Spend the time of a real check when the account does not exist (no user enumeration by timing)."""
    await verify_password(_DUMMY_HASH, password)


def new_secret(prefix: str = "") -> str:
    """A 256-bit random token, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """SHA-256 hex digest: how tokens and secrets are stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def hashes_match(stored_hash: str, presented: str) -> bool:
    """Constant-time comparison of a stored hash with the hash of a presented secret."""
    return hmac.compare_digest(stored_hash, token_hash(presented))


@dataclass(frozen=True)
class RunnerClaims:
    runner_id: uuid.UUID
    epoch: int
    expires_at: float

    @cached_property
    def caller(self) -> str:
        """The runner as its requests' log lines name it (made once: verified claims are kept)."""
        return f"runner:{self.runner_id}"


class RunnerTokens:
    """Short-lived runner tokens (HS256), bound to the runner's secret epoch."""

    # Verified tokens, so that a runner's every call does not decode and check its signature again.
    CACHE_SIZE = 50_000

    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        self._key = hmac.new(key, b"exekra-runner-token", hashlib.sha256).digest()
        self.ttl_seconds = ttl_seconds
        self._verified: dict[str, RunnerClaims] = {}

    def issue(self, runner_id: uuid.UUID, epoch: int) -> tuple[str, float]:
        expires_at = time.time() + self.ttl_seconds
        token = jwt.encode({"sub": str(runner_id), "ep": epoch, "exp": int(expires_at)}, self._key, "HS256")
        return token, expires_at

    def verify(self, token: str) -> RunnerClaims | None:
        """The claims of a valid, unexpired token (the epoch is the caller's to check against the runner)."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                return cached
            del self._verified[token]
            return None
        try:
            decoded = jwt.decode(token, self._key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
            claims = RunnerClaims(uuid.UUID(decoded["sub"]), int(decoded["ep"]), float(decoded["exp"]))
        except (jwt.PyJWTError, ValueError, KeyError):
            return None
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()  # simplest bound: tokens live an hour, runners re-verify once
        self._verified[token] = claims
        return claims
