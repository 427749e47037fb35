"""Periodic maintenance (SPEC §4, §10.7, §11): offline runners (and their alerts), stale executions, automatic
retries, the licence, the daily purge; and the planner statistics of the claims' tables while a new hub's tables
grow (`exekra.db.planner`).

Only the leader runs it (`exekra.hub.leader`): a pass when it becomes the leader and every
`EXEKRA_MAINTENANCE_INTERVAL_SECONDS` after. Every action is a conditional update in `exekra.hub.lifecycle`, so
the passes of an old and a new leader that overlapped during a hand-over would still change each row once. The
purge keeps its own lock, `PURGE_LOCK`, as a fence against `exekra purge` run by hand. All times are the
database's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from exekra.db import planner
from exekra.db.locks import PURGE_LOCK, advisory_lock, database_now
from exekra.hub import retention
from exekra.hub.context import Hub
from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.executions.stale import StaleReport
from exekra.hub.license.service import LicenseStatus
from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

PURGE_PERIOD_SECONDS = 24 * 3600
LICENSE_PERIOD_SECONDS = 3600
PURGE_RETRY_SECONDS = 3600


class Maintenance:
    """The hub's background maintenance: the checks every interval, the licence hourly, the purge daily; all
    at start-up."""

    def __init__(self, hub: Hub, started_at: datetime | None = None) -> None:
        self.hub = hub
        self.started_at = started_at  # database time of this hub's start (None: the first pass's): `check_stale`
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._tasks:  # started already: its loops run
            return
        self._tasks = [
            asyncio.create_task(
                self._every("maintenance pass", self._checks_interval, self._checks_once), name="exekra-maintenance"
            ),
            asyncio.create_task(self._purge_forever(), name="exekra-purge"),
            asyncio.create_task(self._license_forever(), name="exekra-license"),
            asyncio.create_task(
                self._every("planner statistics", lambda: planner.EVERY_SECONDS, self._statistics_once),
                name="exekra-statistics",
            ),
        ]

    def _checks_interval(self) -> float:
        return self.hub.settings.maintenance_interval_seconds  # read each turn: a changed setting takes effect

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks = []

    async def run_checks(self) -> StaleReport:
        """One pass of the stale checks, the due automatic retries and the runner-offline alerts."""
        if self.started_at is None:
            self.started_at = await database_now(self.hub.db)
        report = await self.hub.executions.check_stale(not_before=self.started_at)
        report.retried = await self.hub.executions.retry_due()
        if self.hub.settings.alerts_enabled:
            await self.hub.alerts.collect_offline()
        return report

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
                audit_retention_days=settings.audit_retention_days,
                artifact_dir=settings.artifact_dir,
            )

    async def revalidate_license(self) -> LicenseStatus:
        """Check the installed licence again; a change of its status is audited once, whichever process sees it
        first (the installation row is locked while it is compared)."""
        return await self.hub.licensing.revalidate()

    async def _license_forever(self) -> None:
        while True:
            try:
                status = await self.revalidate_license()
                if status.problem:
                    log.warning("licence: %s", status.problem)
            except Exception:  # transient or not: logged, and tried again on schedule
                log.warning("licence revalidation failed", exc_info=True)
            await asyncio.sleep(LICENSE_PERIOD_SECONDS)

    async def _checks_once(self) -> None:
        report = await self.run_checks()
        if report.total:
            log.info(
                "maintenance: %d runner(s) offline, executions moved: %s, retried: %d",
                report.runners_offline,
                dict(report.executions),
                report.retried,
            )

    async def _statistics_once(self) -> None:
        analysed = await planner.analyse_grown_tables(self.hub.db)
        if analysed:
            log.debug("planner statistics: grown, analysed unless locked: %s", ", ".join(analysed))

    @staticmethod
    async def _every(what: str, seconds: Callable[[], float], once: Callable[[], Awaitable[None]]) -> None:
        """`once()`, then again `seconds()` after each, until cancelled. A failure is logged (one line for a
        transient one, in full for any other: a bug must not stop the work) and the next turn comes as usual."""
        while True:
            try:
                await once()
            except TRANSIENT_ERRORS as exc:
                log.warning("%s failed (%s: %s); next try in %gs", what, type(exc).__name__, exc, seconds())
            except Exception:
                log.exception("%s failed", what)
            await asyncio.sleep(seconds())

    async def _purge_forever(self) -> None:
        while True:
            delay: float = PURGE_PERIOD_SECONDS
            try:
                report = await self.run_purge()
                if report is not None and report.total:
                    log.info("purge: %s", report)
            except Exception:  # transient or not: logged in full (it runs daily), and tried again within the hour
                log.warning("purge failed; next try in %ds", PURGE_RETRY_SECONDS, exc_info=True)
                delay = PURGE_RETRY_SECONDS
            await asyncio.sleep(delay)
