"""Sign-in throttling (docs/security.md, "Sign-in limits"), shared by the API, the dashboard and password changes.

- Every password check is counted against the caller's address and the account *before* it runs, so parallel
  guesses cannot all pass a check made first and counted after. A check that succeeds is given back: only
  failures use the budget.
- The budget backs off progressively: `EXEKRA_LOGIN_FAILURES_PER_MINUTE` (L) a minute, 5 L an hour, 20 L a day.
- An address the account signed in from before has a budget of its own for that account, so an attacker who
  spends the account's budget does not lock its owner out.
- Checks running at once in this process are capped per address and per account
  (`EXEKRA_LOGIN_CHECKS_IN_FLIGHT`), refused beyond: argon2 is memory-hard, a queue of checks is memory an
  attacker would choose.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute

from exekra.hub.audit import service as audit
from exekra.hub.errors import RateLimited
from exekra.hub.ratelimit import Decision, RateLimiter

if TYPE_CHECKING:
    from exekra.hub.context import Hub  # which holds this module's `InFlight`

TOO_MANY_FAILURES = "Too many failed sign-ins, try again later"


def budget(per_minute: int) -> tuple[RateLimitItem, ...]:
    """The windows one address or account is counted in: longer windows allow fewer tries per minute."""
    return (
        RateLimitItemPerMinute(per_minute),
        RateLimitItemPerHour(5 * per_minute),
        RateLimitItemPerDay(20 * per_minute),
    )


class InFlight:
    """Password checks running in this process, per key; one over the cap is refused, not queued."""

    def __init__(self) -> None:
        self._running: dict[str, int] = {}

    @contextmanager
    def slot(self, keys: Sequence[str], cap: int) -> Iterator[None]:
        """Hold a place under every key (no await between the look and the taking: no race)."""
        if any(self._running.get(key, 0) >= cap for key in keys):
            raise RateLimited("Too many sign-ins in progress, try again in a moment", headers={"Retry-After": "1"})
        for key in keys:
            self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            for key in keys:
                left = self._running[key] - 1
                if left:
                    self._running[key] = left
                else:
                    del self._running[key]


@dataclass
class PasswordCheck:
    """One counted password check; `passed()` gives its count back when the block ends."""

    limiter: RateLimiter
    charges: list[tuple[str, str, RateLimitItem]] = field(default_factory=list)
    ok: bool = False

    def passed(self) -> None:
        self.ok = True

    async def charge(self, bucket: str, key: str, per_minute: int) -> Decision | None:
        """Count the check in every window of `bucket`/`key`; the refusal, with nothing kept, once one is spent."""
        taken: list[tuple[str, str, RateLimitItem]] = []
        for item in budget(per_minute):
            decision = await self.limiter.acquire(bucket, key, item)
            if not decision.allowed:
                await _give_back(self.limiter, taken)
                return decision
            taken.append((bucket, key, item))
        self.charges.extend(taken)
        return None


async def _give_back(limiter: RateLimiter, charges: list[tuple[str, str, RateLimitItem]]) -> None:
    for bucket, key, item in charges:
        await limiter.refund(bucket, key, item)


@asynccontextmanager
async def password_check(hub: Hub, ip: str, account: str, user_id: uuid.UUID | None) -> AsyncIterator[PasswordCheck]:
    """Admit one password check of `account` (lower case) from `ip`, counted before it runs; RateLimited (with
    Retry-After) when a budget is spent or too many checks are running."""
    settings = hub.settings
    with hub.password_checks.slot((f"ip:{ip}", f"account:{account}"), settings.login_checks_in_flight):
        check = PasswordCheck(hub.limiter)
        limit = settings.login_failures_per_minute
        refused = await check.charge("login-ip", ip, limit)
        if refused is None:
            refused = await check.charge("login-account", account, limit)
            if refused is not None and user_id is not None and await audit.signed_in_from(hub.db, str(user_id), ip):
                refused = await check.charge("login-known", f"{account} {ip}", limit)
        if refused is not None:
            await _give_back(hub.limiter, check.charges)
            raise RateLimited(TOO_MANY_FAILURES, headers=refused.headers())
        yield check
        if check.ok:
            await _give_back(hub.limiter, check.charges)
