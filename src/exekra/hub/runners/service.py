"""Runner registration, administration, and the hub side of the runner protocol."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.auth.security import RunnerClaims, hashes_match, new_secret, token_hash
from exekra.hub.errors import Conflict, NotAuthenticated
from exekra.hub.executions.models import ExecutionLog
from exekra.hub.lookup import get_or_404, parse_id
from exekra.hub.runners.models import Runner, RunnerMetric
from exekra.hub.runners.schemas import LogLine, NewRunner, RunnerPatch


@dataclass(frozen=True)
class Registered:
    runner: Runner
    machine_key: str
    machine_secret: str


def _clean_labels(labels: list[str]) -> list[str]:
    return sorted({label.strip() for label in labels if label.strip()})


async def register_runner(db: Database, data: NewRunner, actor: Actor) -> Registered:
    """A new runner and its credentials; the secret is returned once and stored as a hash."""
    machine_key = "rk_" + secrets.token_hex(12)
    machine_secret = new_secret("rs_")
    async with db.transaction() as session:
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
        await audit.record(session, actor, "runner.register", "runner", runner.id, {"name": runner.name})
    return Registered(runner, machine_key, machine_secret)


async def list_runners(db: Database, *, offset: int, limit: int, status: str | None = None) -> tuple[list[Runner], int]:
    query = select(Runner)
    if status:
        query = query.where(Runner.status == status)
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
        await audit.record(session, actor, "runner.update", "runner", runner.id, changes)
    return runner


async def delete_runner(db: Database, runner_id: str, actor: Actor) -> None:
    async with db.transaction() as session:
        runner = await get_or_404(session, Runner, runner_id, "runner", for_update=True)
        if runner.current_execution_id is not None:
            raise Conflict("The runner holds an execution: stop it or wait until it ends")
        await session.delete(runner)
        await audit.record(session, actor, "runner.delete", "runner", runner.id, {"name": runner.name})


async def regenerate_secret(db: Database, runner_id: str, actor: Actor) -> Registered:
    """A new secret; bumping the token epoch ends every session made with the old one at once."""
    machine_secret = new_secret("rs_")
    async with db.transaction() as session:
        runner = await get_or_404(session, Runner, runner_id, "runner", for_update=True)
        runner.secret_hash = token_hash(machine_secret)
        runner.token_epoch += 1
        await audit.record(session, actor, "runner.regenerate_secret", "runner", runner.id)
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


# --- the runner protocol ----------------------------------------------------------------------------


async def authenticate_runner(
    db: Database, machine_key: str, machine_secret: str, hostname: str | None, os: str | None, version: str | None
) -> Runner:
    """The runner for these machine credentials (constant-time check), recording its host facts."""
    async with db.transaction() as session:
        runner = (await session.execute(select(Runner).where(Runner.machine_key == machine_key))).scalar_one_or_none()
        if runner is None or not hashes_match(runner.secret_hash, machine_secret):
            raise NotAuthenticated("Wrong machine key or secret")
        await session.execute(
            update(Runner).where(Runner.id == runner.id).values(hostname=hostname, os=os, version=version)
        )
    return runner


async def refused(db: Database, claims: RunnerClaims, execution_id: str) -> Exception:
    """Why a fenced runner call changed nothing: the token was revoked (the runner is gone or its secret was
    regenerated since the token was issued: 401), else the attempt is stale or in the wrong state (409).

    Only asked after the fenced statement found nothing, so the calls that succeed never read the runner.
    """
    async with db.session() as session:
        epoch = (
            await session.execute(select(Runner.token_epoch).where(Runner.id == claims.runner_id))
        ).scalar_one_or_none()
    if epoch is None or epoch != claims.epoch:
        return NotAuthenticated("Runner token revoked: authenticate again")
    return Conflict(f"execution {execution_id}: stale attempt or wrong state; abandon it")


_HELD_COLUMNS = """
SELECT e.id, e.attempt, e.status, e.inputs, e.timeout_seconds, w.id, w.name, v.id, v.number, v.definition
  FROM executions e
  JOIN workflows w ON w.id = e.workflow_id
  JOIN workflow_versions v ON v.id = e.version_id"""
_HELD_EXECUTION = text(
    f"""{_HELD_COLUMNS}
 WHERE e.id = :execution_id AND e.runner_id = :runner_id AND e.status IN ('ASSIGNED','RUNNING')"""
)
_HELD_NOW = text(
    f"""{_HELD_COLUMNS}
 WHERE e.id = (SELECT current_execution_id FROM runners WHERE id = :runner_id)
   AND e.runner_id = :runner_id AND e.status IN ('ASSIGNED','RUNNING')"""
)


async def held_execution(
    db: Database, runner_id: uuid.UUID, execution_id: uuid.UUID | None = None
) -> dict[str, Any] | None:
    """The poll answer for the execution this runner holds: `execution_id`, or whichever it holds now."""
    async with db.session() as session:
        if execution_id is None:
            row = (await session.execute(_HELD_NOW, {"runner_id": runner_id})).first()
        else:
            params = {"execution_id": execution_id, "runner_id": runner_id}
            row = (await session.execute(_HELD_EXECUTION, params)).first()
    if row is None:
        return None
    return {
        "id": str(row[0]),
        "attempt": row[1],
        "status": row[2],
        "inputs": row[3],
        "timeoutSeconds": row[4],
        "workflow": {"id": str(row[5]), "name": row[6]},
        "version": {"id": str(row[7]), "number": row[8], "definition": row[9]},
    }


async def append_logs(
    db: Database,
    claims: RunnerClaims,
    execution_id: str,
    attempt: int,
    lines: list[LogLine],
    max_chars: int,
) -> bool | None:
    """Store a batch of log lines for the attempt this runner holds; returns stopRequested (None: fenced)."""
    held = lifecycle.Attempt(parse_id(execution_id, "execution"), claims.runner_id, claims.epoch, attempt)
    ident = held.execution_id
    async with db.transaction() as session:
        reserved = await lifecycle.reserve_log_seq(session, held, len(lines))
        if reserved is None:
            return None
        last_seq, stop_requested = reserved
        if lines:
            now = datetime.now(UTC)
            first = last_seq - len(lines) + 1
            await session.execute(
                insert(ExecutionLog),
                [
                    {
                        "execution_id": ident,
                        "seq": first + i,
                        "ts": line.ts or now,
                        "level": line.level,
                        "message": line.message[:max_chars],
                    }
                    for i, line in enumerate(lines)
                ],
            )
    return stop_requested


_HELD_DEFINITION = text(
    f"""
SELECT v.definition FROM executions e JOIN workflow_versions v ON v.id = e.version_id
 WHERE {lifecycle.held_by("e")} AND e.status IN ('ASSIGNED','RUNNING')"""
)


async def held_definition(session: AsyncSession, held: lifecycle.Attempt) -> dict[str, Any] | None:
    """The definition of an execution this runner holds at this attempt (None if it does not, or if the
    runner's token was revoked)."""
    row = (await session.execute(_HELD_DEFINITION, held.params())).first()
    return row[0] if row else None
