"""Periodic maintenance (SPEC §4, §11): offline runners, stale executions, and the daily purge.

A pass runs at start-up and every `EXEKRA_MAINTENANCE_INTERVAL_SECONDS`. With several hub processes, one
pass runs at a time cluster-wide (a PostgreSQL advisory lock held on a dedicated connection; the others skip
their turn), and every action is a conditional update in `exekra.hub.lifecycle` anyway, so two passes that
overlapped would still change each row once. All times are the database's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub import lifecycle, retention
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import SYSTEM
from exekra.hub.context import Hub
from exekra.hub.executions.models import ExecutionStatus as S
from exekra.hub.lifecycle import HubAction, Rule

log = logging.getLogger(__name__)

# Advisory lock keys ("EXKR" + a number): one pass of the checks, one purge, at a time per database.
CHECKS_LOCK = 0x45584B5201
PURGE_LOCK = 0x45584B5202
BATCH = 500  # rows per maintenance transaction
PURGE_PERIOD_SECONDS = 24 * 3600
PURGE_RETRY_SECONDS = 3600


def stale_schedule(settings: Settings) -> list[tuple[Rule[S], float]]:
    """The stale rules in the order a pass applies them, each with its `seconds` setting."""
    return [
        (lifecycle.QUEUE_TIMEOUT, settings.queue_timeout_seconds),
        (lifecycle.PICKUP_FAILED, settings.pickup_timeout_seconds),
        (lifecycle.REQUEUE, settings.pickup_timeout_seconds),
        (lifecycle.RUNNER_LOST, settings.runner_offline_seconds + settings.running_grace_seconds),
        (lifecycle.STOP_UNCONFIRMED, settings.stop_grace_seconds),
        # The runner enforces the workflow timeout and reports it; the hub steps in a stop grace later.
        (lifecycle.HUB_TIMEOUT, settings.stop_grace_seconds),
    ]


def audit_action(rule: Rule[Any]) -> str:
    """The audit action recorded for a rule, e.g. `execution.runner_lost`."""
    if isinstance(rule.target, S):
        return "execution." + rule.name.replace("-", "_")
    return "runner." + rule.target.value.lower()


@dataclass
class PassReport:
    """What one pass did: runners marked OFFLINE, and executions moved per rule name."""

    runners_offline: int = 0
    executions: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.runners_offline + sum(self.executions.values())


async def run_pass(hub: Hub, *, not_before: datetime | None = None) -> PassReport:
    """One pass of the checks, batch by batch, each batch one transaction with its SYSTEM audit rows.

    `not_before` (database time) is the earliest moment a runner's silence counts from; the loop passes
    the hub's start so that runners get a full offline delay to reconnect after a hub outage.
    """
    settings = hub.settings
    report = PassReport()
    while True:
        async with hub.db.transaction() as session:
            runners = await lifecycle.mark_offline_runners(
                session, seconds=settings.runner_offline_seconds, not_before=not_before, limit=BATCH
            )
            for runner_id, last_seen in runners:
                details = {"lastHeartbeatAt": last_seen.isoformat() if last_seen else None}
                await audit.record(
                    session, SYSTEM, audit_action(lifecycle.RUNNER_OFFLINE), "runner", runner_id, details
                )
        report.runners_offline += len(runners)
        if len(runners) < BATCH:
            break
    for rule, seconds in stale_schedule(settings):
        while True:
            async with hub.db.transaction() as session:
                actions = await lifecycle.apply_stale_rule(
                    session, rule, seconds=seconds, not_before=not_before, limit=BATCH
                )
                for action in actions:
                    details = {"reason": action.reason, "runnerId": str(action.runner_id) if action.runner_id else None}
                    await audit.record(session, SYSTEM, audit_action(rule), "execution", action.execution_id, details)
            report.executions[rule.name] += len(actions)
            await _dispatch(hub, rule, actions)
            if len(actions) < BATCH:
                break
    return report


async def _dispatch(hub: Hub, rule: Rule[S], actions: list[HubAction]) -> None:
    """Offer re-queued executions and freed idle runners to the dispatcher at once (it is event-driven)."""
    for action in actions:
        try:
            if rule is lifecycle.REQUEUE:
                await hub.dispatcher.execution_queued(action.execution_id)
            elif rule is lifecycle.QUEUE_TIMEOUT:
                await hub.dispatcher.execution_unqueued(action.execution_id, rule.target.value)
            if action.freed_idle_runner is not None:
                await hub.dispatcher.runner_idle(action.freed_idle_runner)
        except Exception:
            # Committed already: the queued execution stays QUEUED for the dispatcher's own safety net.
            log.warning("dispatch after %s of %s failed", rule.name, action.execution_id, exc_info=True)


@contextlib.asynccontextmanager
async def advisory_lock(db: Database, key: int) -> AsyncIterator[bool]:
    """Try to take a session-level advisory lock on a dedicated connection for the block; yields whether it did.

    Should releasing it fail, the connection is dropped, which releases the lock too.
    """
    async with db.engine.connect() as connection:
        held = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        await connection.commit()
        try:
            yield held
        finally:
            if held:
                try:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    await connection.commit()
                except BaseException:
                    await connection.invalidate()
                    raise


async def database_now(db: Database) -> datetime:
    """The database clock."""
    async with db.session() as session:
        now: datetime = (await session.execute(text("SELECT now()"))).scalar_one()
    return now


class Maintenance:
    """The hub's background maintenance: the checks every interval, the purge daily; both at start-up."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.started_at: datetime | None = None  # database time of this hub's start: see `run_pass`
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._checks_forever(), name="exekra-maintenance"),
            asyncio.create_task(self._purge_forever(), name="exekra-purge"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def run_checks(self) -> PassReport | None:
        """One pass, unless another hub process is running one (then None)."""
        if self.started_at is None:
            self.started_at = await database_now(self.hub.db)
        async with advisory_lock(self.hub.db, CHECKS_LOCK) as held:
            if not held:
                return None
            return await run_pass(self.hub, not_before=self.started_at)

    async def run_purge(self) -> retention.PurgeReport | None:
        """The retention purge with the configured settings, unless another hub process is purging (None)."""
        settings = self.hub.settings
        async with advisory_lock(self.hub.db, PURGE_LOCK) as held:
            if not held:
                return None
            return await retention.purge(
                self.hub.db,
                retention_days=settings.retention_days,
                metrics_retention_days=settings.metrics_retention_days,
                batch=settings.purge_batch,
                pause_ratio=settings.purge_pause_ratio,
                archive_dir=settings.purge_archive_dir,
            )

    async def _checks_forever(self) -> None:
        while True:
            try:
                report = await self.run_checks()
                if report is not None and report.total:
                    log.info(
                        "maintenance: %d runner(s) offline, executions moved: %s",
                        report.runners_offline,
                        dict(report.executions),
                    )
            except Exception as exc:
                interval = self.hub.settings.maintenance_interval_seconds
                log.warning("maintenance pass failed (%s: %s); next try in %gs", type(exc).__name__, exc, interval)
            await asyncio.sleep(self.hub.settings.maintenance_interval_seconds)

    async def _purge_forever(self) -> None:
        while True:
            delay: float = PURGE_PERIOD_SECONDS
            try:
                report = await self.run_purge()
                if report is not None and report.total:
                    log.info("purge: %s", report)
            except Exception:
                log.warning("purge failed; next try in %ds", PURGE_RETRY_SECONDS, exc_info=True)
                delay = PURGE_RETRY_SECONDS
            await asyncio.sleep(delay)
