"""The sign-in budget (hub/auth/throttle.py): it backs off from a minute to a day, and a passed check gives
its count back, in memory and in Redis alike."""

from __future__ import annotations

import time

import pytest

from exekra.hub.auth.throttle import PasswordCheck
from exekra.hub.ratelimit import RateLimiter

PER_MINUTE = 3


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Wall-clock time as the limiter sees it, moved by the test (`clock[0] += seconds`). It starts just after
    01:00 UTC of a fixed day: the limiter's windows are aligned to the clock, and a test starting at 17:55 of
    the real clock would see the hour's window restart at 18:00."""
    now = [float(1_800_000_000 // 86_400 * 86_400 + 3_601)]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


async def test_failures_back_off_from_a_minute_to_an_hour(clock: list[float]) -> None:
    check = PasswordCheck(RateLimiter(None, 0.5))
    # Three a minute, while the hour allows fifteen: five quiet minutes apart, five bursts pass.
    for _ in range(5):
        for _ in range(PER_MINUTE):
            assert await check.charge("login-account", "a@example.com", PER_MINUTE) is None
        refused = await check.charge("login-account", "a@example.com", PER_MINUTE)
        assert refused is not None and refused.retry_after <= 60
        clock[0] += 120
    # The sixth burst meets the hour's window: waiting a minute is no longer enough.
    refused = await check.charge("login-account", "a@example.com", PER_MINUTE)
    assert refused is not None and refused.limit == 5 * PER_MINUTE and refused.retry_after > 60
    clock[0] += 3600
    assert await check.charge("login-account", "a@example.com", PER_MINUTE) is None
    # Other accounts were never concerned.
    assert await check.charge("login-account", "b@example.com", PER_MINUTE) is None


@pytest.mark.parametrize("storage", ["memory", "redis"])
async def test_a_refused_charge_keeps_nothing_and_a_refund_gives_the_count_back(
    storage: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    redis_url = request.getfixturevalue("redis_url") if storage == "redis" else None
    limiter = RateLimiter(redis_url, 0.5)
    key = f"refund-{time.monotonic_ns()}"
    check = PasswordCheck(limiter)
    for _ in range(PER_MINUTE):
        assert await check.charge("login-ip", key, PER_MINUTE) is None
    assert await check.charge("login-ip", key, PER_MINUTE) is not None
    assert "Redis unavailable" not in caplog.text  # Redis itself did the counting
    assert len(check.charges) == 3 * PER_MINUTE  # three windows each
    for bucket, client, item in check.charges[:3]:  # one passed check: each window gives one back
        await limiter.refund(bucket, client, item)
    assert await check.charge("login-ip", key, PER_MINUTE) is None
    assert await check.charge("login-ip", key, PER_MINUTE) is not None
    assert "Redis unavailable" not in caplog.text  # Redis itself did the counting
