"""Runner registration, administration and authentication (the rest of the runner protocol is the execution
service's: `exekra.hub.executions.service`)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.auth.security import hashes_match, new_secret, token_hash
from exekra.hub.errors import Conflict, NotAuthenticated
from exekra.hub.license.service import Licensing
from exekra.hub.lookup import IdPrefix, get_or_404, parse_id
from exekra.hub.runners.models import Runner, RunnerMetric
from exekra.hub.runners.schemas import CatalogueBody, NewRunner, RunnerPatch
from exekra.workflow.activities import BUILTIN
from exekra.workflow.catalogue import EVERY_RUNNER


@dataclass(frozen=True)
class Registered:
    runner: Runner
    machine_key: str
    machine_secret: str


def _clean_labels(labels: list[str]) -> list[str]:
    return sorted({label.strip() for label in labels if label.strip()})


async def register_runner(db: Database, data: NewRunner, actor: Actor, licensing: Licensing) -> Registered:
    """A new runner and its credentials; the secret is returned once and stored as a hash.

    LicenseLimit when an installed licence allows no more runners (community mode has no cap).
    """
    machine_key = "rk_" + secrets.token_hex(12)
    machine_secret = new_secret("rs_")
    async with db.transaction() as session:
        await licensing.check_runner_capacity(session)
        runner = Runner(
            name=data.name.strip(),
            machine_key=machine_key,
            secret_hash=token_hash(machine_secret),
            type=data.type or None,
            labels=_clean_labels(data.labels),
        )
        session.add(runner)
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"A runner named {data.name} already exists") from None
        await session.refresh(runner)
        audit.record(session, actor, "runner.register", "runner", runner.id, {"name": runner.name})
    return Registered(runner, machine_key, machine_secret)


async def list_runners(
    db: Database, *, offset: int, limit: int, status: str | None = None, id_prefix: IdPrefix | None = None
) -> tuple[list[Runner], int]:
    query = select(Runner)
    if status:
        query = query.where(Runner.status == status)
    if id_prefix is not None:
        query = query.where(id_prefix.matches(Runner.id))
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await session.execute(query.order_by(Runner.name).offset(offset).limit(limit))
        return list(rows.scalars()), int(total)


async def get_runner(db: Database, runner_id: str) -> Runner:
    async with db.session() as session:
        return await get_or_404(session, Runner, runner_id, "runner")


async def update_runner(db: Database, runner_id: str, patch: RunnerPatch, actor: Actor) -> Runner:
    changes: dict[str, Any] = patch.model_dump(exclude_unset=True)
    if "labels" in changes:
        changes["labels"] = _clean_labels(changes["labels"] or [])
    async with db.transaction() as session:
        runner = await get_or_404(session, Runner, runner_id, "runner", for_update=True)
        for field, value in changes.items():
            setattr(runner, field, value)
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"A runner named {patch.name} already exists") from None
        audit.record(session, actor, "runner.update", "runner", runner.id, changes)
        lifecycle.runner_changed(session, runner.id, "runner-update")
    return runner


async def delete_runner(db: Database, runner_id: str, actor: Actor) -> None:
    async with db.transaction() as session:
        runner = await get_or_404(session, Runner, runner_id, "runner", for_update=True)
        if runner.current_execution_id is not None:
            raise Conflict("The runner holds an execution: stop it or wait until it ends")
        await session.delete(runner)
        audit.record(session, actor, "runner.delete", "runner", runner.id, {"name": runner.name})
        lifecycle.runner_changed(session, runner.id, "runner-delete")


async def regenerate_secret(db: Database, runner_id: str, actor: Actor) -> Registered:
    """A new secret; every session made with the old one ends at once, and the runner is OFFLINE until it signs in
    with the new one (`lifecycle.RUNNER_REVOKED`)."""
    machine_secret = new_secret("rs_")
    async with db.transaction() as session:
        runner = await get_or_404(session, Runner, runner_id, "runner")
        await lifecycle.revoke_runner(session, runner.id, token_hash(machine_secret))
        await session.refresh(runner)
        audit.record(session, actor, "runner.regenerate_secret", "runner", runner.id)
    return Registered(runner, runner.machine_key, machine_secret)


async def metric_history(
    db: Database, runner_id: str, since: datetime | None, until: datetime | None, limit: int
) -> list[RunnerMetric]:
    ident = parse_id(runner_id, "runner")
    since = since or datetime.now(UTC) - timedelta(hours=24)
    async with db.session() as session:
        await get_or_404(session, Runner, ident, "runner")
        query = select(RunnerMetric).where(RunnerMetric.runner_id == ident, RunnerMetric.ts >= since)
        if until:
            query = query.where(RunnerMetric.ts < until)
        rows = await session.execute(query.order_by(RunnerMetric.ts).limit(limit))
        return list(rows.scalars())


@dataclass(frozen=True)
class MetricBucket:
    """The heartbeats of one time bucket: averages, and the CPU peak."""

    start: datetime
    samples: int
    cpu_percent: float | None
    cpu_peak: float | None
    memory_percent: float | None
    disk_percent: float | None


# One index range read per bucket, in ts order (a GROUP BY over a week of heartbeats sorted 20,000 rows first).
_METRIC_BUCKETS = text(
    """
SELECT b.start, m.samples, m.cpu, m.cpu_peak, m.memory, m.disk
  FROM generate_series(CAST(:since AS timestamptz), CAST(:until AS timestamptz), CAST(:step AS interval)) AS b(start)
 CROSS JOIN LATERAL (
       SELECT count(*) AS samples, avg(cpu_percent) AS cpu, max(cpu_percent) AS cpu_peak,
              avg(memory_percent) AS memory, avg(disk_percent) AS disk
         FROM runner_metrics
        WHERE runner_id = :runner AND ts >= b.start AND ts < b.start + CAST(:step AS interval)
       ) AS m
 WHERE m.samples > 0
 ORDER BY b.start"""
)


async def metric_buckets(db: Database, runner_id: str, since: datetime, step: timedelta) -> list[MetricBucket]:
    """Heartbeat metrics from `since` to now, averaged per `step` in the database: one row per bucket with
    heartbeats, however many heartbeats (a week of 30-second heartbeats is a few hundred index range reads)."""
    ident = parse_id(runner_id, "runner")
    params = {"runner": ident, "since": since, "until": datetime.now(UTC), "step": step}
    async with db.session() as session:
        rows = await session.execute(_METRIC_BUCKETS, params)
        return [MetricBucket(*row) for row in rows]


# --- the runner protocol ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Declaration:
    """What a runner can run, as stored on its row (docs/runner.md)."""

    activities: list[str]
    capabilities: list[str]
    digest: str | None
    plugin_activities: list[dict[str, Any]]  # catalogue entries of the activities the hub has not built in

    @classmethod
    def of(cls, catalogue: CatalogueBody | None) -> Declaration:
        """A runner's declaration; none at all (an older runner) declares the built-ins that need no capability."""
        if catalogue is None:
            return cls(sorted(EVERY_RUNNER), [], None, [])
        entries = {entry.name: entry for entry in catalogue.activities}
        plugins = [entries[name].model_dump() for name in sorted(entries) if name not in BUILTIN]
        capabilities = sorted({name for name in catalogue.capabilities if name})
        return cls(sorted(entries), capabilities, catalogue.digest, plugins)

    def values(self) -> dict[str, Any]:
        return {
            "activities": self.activities,
            "capabilities": self.capabilities,
            "catalogue_digest": self.digest,
            "plugin_activities": self.plugin_activities,
        }


async def authenticate_runner(
    db: Database,
    machine_key: str,
    machine_secret: str,
    hostname: str | None,
    os: str | None,
    version: str | None,
    declaration: Declaration,
) -> Runner:
    """The runner for these machine credentials (constant-time check), recording its host facts and what it
    declares it can run."""
    async with db.transaction() as session:
        runner = (await session.execute(select(Runner).where(Runner.machine_key == machine_key))).scalar_one_or_none()
        if runner is None or not hashes_match(runner.secret_hash, machine_secret):
            raise NotAuthenticated("Wrong machine key or secret")
        # Its polls must see a new declaration: it may run queued work it could not run before, and a heartbeat
        # answered from a waiting poll compares the catalogue digest that poll read.
        changed = set(declaration.activities) != set(runner.activities) or declaration.digest != runner.catalogue_digest
        await session.execute(
            update(Runner)
            .where(Runner.id == runner.id)
            .values(hostname=hostname, os=os, version=version, **declaration.values())
        )
        if changed:
            lifecycle.runner_changed(session, runner.id, "runner-declaration")
    return runner


async def record_declaration(db: Database, runner_id: uuid.UUID, epoch: int, declaration: Declaration) -> None:
    """Store what a runner declares in a heartbeat (after the hub asked for it: rare), unless its token is stale."""
    async with db.transaction() as session:
        await session.execute(
            update(Runner).where(Runner.id == runner_id, Runner.token_epoch == epoch).values(**declaration.values())
        )
        lifecycle.runner_changed(session, runner_id, "runner-declaration")  # it may now run queued work
