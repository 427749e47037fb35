"""The tokens a hub process keeps (hub/auth/owners.py): how long, how many, and what a change forgets."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from exekra.hub.auth import owners
from exekra.hub.auth.owners import KnownToken, TokenOwner, TokenOwners


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _known(read_at: float) -> KnownToken:
    owner = TokenOwner(uuid.uuid4(), "someone@example.com", "OPERATOR", uuid.uuid4())
    return KnownToken(owner, None, None, read_at)


def test_a_token_is_kept_until_ttl_seconds_after_its_row_was_read_even_if_kept_again_since() -> None:
    clock = Clock()
    tokens = TokenOwners(clock)
    known = _known(clock.now)
    tokens.put("a", known, tokens.generation)
    clock.now += owners.TTL_SECONDS - 1
    assert tokens.get("a") == known
    touched = replace(known, last_used_at=datetime.now(UTC))  # its last use written: the row was not read again
    tokens.put("a", touched, tokens.generation)
    assert tokens.get("a") == touched
    clock.now += 1
    assert tokens.get("a") is None


def test_a_row_read_before_a_change_is_not_kept_and_a_change_forgets_every_token() -> None:
    clock = Clock()
    tokens = TokenOwners(clock)
    generation = tokens.generation
    tokens.put("a", _known(clock.now), generation)
    tokens.forget("a change")
    assert tokens.get("a") is None
    tokens.put("b", _known(clock.now), generation)  # read before the change
    assert tokens.get("b") is None
    tokens.put("b", _known(clock.now), tokens.generation)
    assert tokens.get("b") is not None


def test_beyond_max_entries_the_token_used_least_lately_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(owners, "MAX_ENTRIES", 2)
    clock = Clock()
    tokens = TokenOwners(clock)
    for token in ("a", "b"):
        tokens.put(token, _known(clock.now), tokens.generation)
    assert tokens.get("a") is not None  # "b" is now the one used least lately
    tokens.put("c", _known(clock.now), tokens.generation)
    assert tokens.get("b") is None
    assert tokens.get("a") is not None and tokens.get("c") is not None
