"""Queue ordering and routing keys, and the retry backoff: pure functions, no servers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from exekra.hub.dispatch.matcher import QueuedExecution
from exekra.hub.dispatch.queue import score, signature
from exekra.hub.dispatch.redis_dispatcher import RETRY_CAP_SECONDS, backoff

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def execution(
    labels: tuple[str, ...] = (), runner_type: str | None = None, pinned: uuid.UUID | None = None
) -> QueuedExecution:
    return QueuedExecution(uuid.uuid4(), 5, NOW, pinned, runner_type, labels)


def test_score_puts_higher_priority_first_then_older_first() -> None:
    now_ms = int(NOW.timestamp() * 1000)
    ordered = [score(9, now_ms), score(9, now_ms + 1), score(5, now_ms - 10**9), score(0, now_ms - 10**11)]
    assert ordered == sorted(ordered)
    assert float(score(0, int((NOW + timedelta(days=365 * 200)).timestamp() * 1000))) < 2**53, "exact in a double"


def test_signature_depends_on_the_constraints_not_their_order() -> None:
    assert signature(execution(("gpu", "linux"))) == signature(execution(("linux", "gpu", "gpu")))
    assert signature(execution(("gpu",))) != signature(execution(("gpu",), runner_type="windows"))
    assert signature(execution()) != signature(execution(runner_type=""))


def test_pinned_executions_share_their_runner_signature_whatever_their_labels() -> None:
    runner_id = uuid.uuid4()
    sig, constraints = signature(execution(("gpu",), pinned=runner_id))
    assert sig == f"pin-{runner_id}" == signature(execution(pinned=runner_id))[0]
    assert constraints == f'{{"pin":"{runner_id}"}}'


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_backoff_doubles_with_jitter(attempt: int) -> None:
    delays = [backoff(attempt) for _ in range(200)]
    nominal = 0.1 * 2 ** (attempt - 1)
    assert nominal * 0.5 <= min(delays) and max(delays) <= nominal * 1.5
    assert len(set(delays)) > 1, "jittered"


def test_backoff_is_capped() -> None:
    assert max(backoff(30) for _ in range(100)) <= RETRY_CAP_SECONDS * 1.5
