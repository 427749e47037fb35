"""The stale checks of SPEC §4: runners gone silent, and executions nobody will finish."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.audit.service import SYSTEM
from exekra.hub.executions import children
from exekra.hub.executions.models import ExecutionStatus as S
from exekra.hub.lifecycle import Rule

BATCH = 500  # rows per transaction
ORPHANS = "orphaned-child"  # the report's name for live children of ended parents, stopped by the pass


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


@dataclass
class StaleReport:
    """What one pass did: runners marked OFFLINE, executions moved per rule name, and failures retried."""

    runners_offline: int = 0
    executions: Counter[str] = field(default_factory=Counter)
    retried: int = 0

    @property
    def total(self) -> int:
        return self.runners_offline + sum(self.executions.values()) + self.retried


async def check_stale(db: Database, settings: Settings, *, not_before: datetime | None) -> StaleReport:
    """One pass of the checks, batch by batch, each batch one transaction (its effects follow its commit).

    `not_before` (database time) is the earliest moment a runner's silence counts from: the maintenance loop
    passes the hub's start, so that runners get a full offline delay to reconnect after a hub outage.
    """
    report = StaleReport()
    while True:
        async with db.transaction() as session:
            marked = await lifecycle.mark_offline_runners(
                session, seconds=settings.runner_offline_seconds, not_before=not_before, limit=BATCH
            )
        report.runners_offline += marked
        if marked < BATCH:
            break
    for rule, seconds in stale_schedule(settings):
        while True:
            async with db.transaction() as session:
                moved = await lifecycle.apply_stale_rule(
                    session, rule, seconds=seconds, not_before=not_before, limit=BATCH
                )
            report.executions[rule.name] += moved
            if moved < BATCH:
                break
    while True:  # children whose parent's end did not stop them (see `children`)
        async with db.transaction() as session:
            stopped = await children.stop_orphans(session, SYSTEM, limit=BATCH)
        report.executions[ORPHANS] += stopped
        if stopped < BATCH:
            break
    return report
