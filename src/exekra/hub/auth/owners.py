"""The users behind tokens resolved lately, kept in process memory so that a request costs no read for its token.

Every user-facing request resolves its token (`auth.service.resolve_token`); a script calling the API many times
a second would read the same row each time. An entry is kept for `TTL_SECONDS` at the most, and every entry is
forgotten, in every hub process, as soon as a token or a user changes:

- in this process, at once: the services that revoke a token, end sessions or change or delete a user call
  `forget()` once their transaction has committed;
- in every process: the database itself announces any such change (a statement trigger on `auth_tokens` and
  `users`, migration 0019: `NOTIFY exekra_auth`, delivered at commit), whichever program made it, and the
  listener forgets everything after a reconnection too (notifications sent meanwhile are lost).

So a revocation takes effect at once in the hub process that made it, within a notification's delivery
(milliseconds) in the others, and after `TTL_SECONDS` at the latest if the notification could not be delivered.
A token's expiry is checked on every use. Unknown tokens are not kept: a new token works at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cachetools import TLRUCache

CHANNEL = "exekra_auth"
TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class TokenOwner:
    """The active user behind a valid token, as a request needs it."""

    user_id: uuid.UUID
    email: str
    role: str
    token_id: uuid.UUID


@dataclass(frozen=True)
class KnownToken:
    """A token as its row said when it was read, and when that was (`time.monotonic()`)."""

    owner: TokenOwner
    expires_at: datetime | None
    last_used_at: datetime | None
    read_at: float


def _kept_until(_token_hash: str, known: KnownToken, _now: float) -> float:
    return known.read_at + TTL_SECONDS


class TokenOwners:
    """Token hash → the user behind it, for `TTL_SECONDS` after its row was read, the least used lately forgotten
    beyond `MAX_ENTRIES`."""

    def __init__(self, timer: Callable[[], float] = time.monotonic) -> None:
        self._known: TLRUCache[str, KnownToken] = TLRUCache(MAX_ENTRIES, _kept_until, timer)
        self.generation = 0  # counts `forget()`s: a row read before one is not kept after it

    def get(self, token_hash: str) -> KnownToken | None:
        return self._known.get(token_hash)

    def put(self, token_hash: str, known: KnownToken, generation: int) -> None:
        """Keep `known`, read while `self.generation` was `generation` (else it may be stale: not kept)."""
        if generation == self.generation:
            self._known[token_hash] = known

    def forget(self, _payload: str = "") -> None:
        """Forget every token (a listener callback: a notification's payload, or none after a reconnection)."""
        self._known.clear()
        self.generation += 1


token_owners = TokenOwners()
"""This process's tokens (one per process, as the hub's settings are: every hub object of the process shares it)."""
