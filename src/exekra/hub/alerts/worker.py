"""The delivery worker of one hub process: collects alert events and sends due deliveries.

It wakes when an execution of this process ends FAILED or STOPPED (an end hook, which does no I/O on the
runner's request), and at least every `EXEKRA_ALERT_POLL_SECONDS`. Each pass: the executions that ended since the
last pass (minus a margin for transactions that committed late) become events, then due deliveries are claimed
and sent. Several hub processes may each run one: collection is idempotent and serialised, claims skip
what another worker holds. Runner offline episodes are collected by the maintenance loop (`collect_offline`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub.alerts import outbox
from exekra.hub.alerts.models import DeliveryStatus
from exekra.hub.alerts.senders import Senders
from exekra.hub.audit.service import SYSTEM
from exekra.hub.credentials.service import read_credential
from exekra.hub.effects import Transition
from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.executions.models import ExecutionStatus
from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CLAIM_BATCH = 20
# An execution's `completed_at` is its transaction's start: one that commits this much later is still seen.
LATE_COMMIT_MARGIN = timedelta(seconds=60)
ALERTING_STATUSES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.STOPPED})


def utc_now() -> datetime:
    return datetime.now(UTC)


class AlertWorker:
    """Collects alert events and delivers alert messages for one hub process (`start`/`stop`), or pass by pass
    (`run_once`, for tests and tools), on an injectable clock."""

    def __init__(self, db: Database, settings: Settings, secret_key: bytes, clock: Clock = utc_now) -> None:
        self.db = db
        self.settings = settings
        self.secret_key = secret_key
        self.clock = clock
        self.senders = Senders(settings, secret_key, self._smtp_login, lambda: clock().timestamp())
        self._since: datetime | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._forever(), name="exekra-alerts")]

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks = []
        await self.senders.aclose()

    def wake(self) -> None:
        """Look for events and due deliveries now (a test message or a retry was just queued)."""
        self._wake.set()

    async def execution_ended(self, transition: Transition) -> None:
        """End hook: wake the worker for an end that may alert (no I/O here)."""
        if transition.status in ALERTING_STATUSES:
            self._wake.set()

    async def run_once(self) -> int:
        """Collect new execution events, then send every due delivery; returns how many were settled."""
        await self.collect_executions()
        settled = 0
        while True:
            batch = await self.deliver_due()
            settled += batch
            if batch < CLAIM_BATCH:
                return settled

    async def collect_executions(self) -> int:
        lookback = self.settings.alert_lookback_seconds
        async with self.db.transaction() as session:
            new, started = await outbox.collect_execution_events(session, self._since, lookback, self.clock())
        self._since = started - LATE_COMMIT_MARGIN
        return new

    async def collect_offline(self) -> int:
        """Events for runners offline longer than a rule allows (the maintenance loop calls it)."""
        async with self.db.transaction() as session:
            new = await outbox.collect_runner_offline(session, self.clock(), self.settings.retention_days)
        if new:
            self.wake()  # their deliveries are due now
        return new

    async def deliver_due(self) -> int:
        """Claim up to a batch of due deliveries, send them side by side, and settle each; returns how many."""
        async with self.db.transaction() as session:
            claimed = await outbox.claim(session, self.clock(), CLAIM_BATCH)
        outcomes = await asyncio.gather(*(self.senders.send(c.channel, c.payload) for c in claimed))
        async with self.db.transaction() as session:
            for item, outcome in zip(claimed, outcomes, strict=True):
                status = await outbox.settle(
                    session,
                    item,
                    outcome,
                    self.clock(),
                    max_attempts=self.settings.alert_max_attempts,
                    retry_base_seconds=self.settings.alert_retry_base_seconds,
                )
                if status is not None and status != DeliveryStatus.SENT:
                    log.warning("alert delivery %s attempt %d: %s (%s)", item.id, item.attempt, outcome.error, status)
        return len(claimed)

    async def _smtp_login(self) -> tuple[str, str] | None:
        name = self.settings.smtp_credential
        if not name:
            return None
        async with self.db.transaction() as session:
            credential = await read_credential(session, self.secret_key, name, SYSTEM, {"purpose": "alert email"})
        fields = credential["fields"]
        return fields.get("username", ""), fields.get("password", "")

    async def _forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.alert_poll_seconds)
            self._wake.clear()
            try:
                await self.run_once()
            except TRANSIENT_ERRORS as exc:
                log.warning("alerts pass failed (%s: %s); next try soon", type(exc).__name__, exc)
            except Exception:  # a bug must not stop alerting: logged in full, and tried again
                log.exception("alerts pass failed")
