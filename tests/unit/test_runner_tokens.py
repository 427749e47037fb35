"""Runner tokens: signature, expiry, and the cache of verified tokens."""

from __future__ import annotations

import uuid

import pytest

from exekra.hub.auth import security
from exekra.hub.auth.security import RunnerTokens


def test_a_valid_token_verifies_again_from_the_cache_and_a_forged_one_never() -> None:
    tokens = RunnerTokens(b"k" * 32, ttl_seconds=60)
    runner_id = uuid.uuid4()
    token, _ = tokens.issue(runner_id, epoch=3)
    first = tokens.verify(token)
    assert first is not None and (first.runner_id, first.epoch) == (runner_id, 3)
    assert tokens.verify(token) is first
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert tokens.verify(forged) is None
    assert RunnerTokens(b"x" * 32, ttl_seconds=60).verify(token) is None  # another hub's key


def test_a_cached_token_stops_verifying_when_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = RunnerTokens(b"k" * 32, ttl_seconds=60)
    token, expires_at = tokens.issue(uuid.uuid4(), epoch=1)
    assert tokens.verify(token) is not None
    monkeypatch.setattr(security.time, "time", lambda: expires_at + 1)
    assert tokens.verify(token) is None
    assert token not in tokens._verified  # dropped from the cache (PyJWT checks expiry on its own clock)


def test_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RunnerTokens, "CACHE_SIZE", 10)
    tokens = RunnerTokens(b"k" * 32, ttl_seconds=60)
    issued = [tokens.issue(uuid.uuid4(), epoch=1)[0] for _ in range(25)]
    assert all(tokens.verify(t) is not None for t in issued)
    assert len(tokens._verified) <= 10
