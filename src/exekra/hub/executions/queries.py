"""Reading executions: the filtered history (keyset paging at a million rows), one execution, its logs;
and the reads of the runner protocol (the execution a runner holds, the definition its credentials need)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, Subquery, func, literal_column, select, text, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from exekra.db.raw import Statements
from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.dispatch.handed import HELD_FROM, held_columns, poll_answer
from exekra.hub.errors import BadRequest, NotFound
from exekra.hub.executions.models import TERMINAL_STATUSES, Execution, ExecutionLog
from exekra.hub.executions.names import ExecutionNames
from exekra.hub.lookup import IdPrefix, parse_id
from exekra.hub.workflows.models import Workflow, WorkflowVersion

QueryT = TypeVar("QueryT", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True)
class ExecutionFilter:
    workflow_id: uuid.UUID | None = None
    runner_id: uuid.UUID | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    id_prefix: IdPrefix | None = None
    retry_of: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None


def _filtered(query: QueryT, f: ExecutionFilter) -> QueryT:
    if f.id_prefix is not None:
        query = query.where(f.id_prefix.matches(Execution.id))
    if f.workflow_id:
        query = query.where(Execution.workflow_id == f.workflow_id)
    if f.runner_id:
        query = query.where(Execution.runner_id == f.runner_id)
    if f.retry_of:
        query = query.where(Execution.retry_of == f.retry_of)
    if f.parent_id:
        query = query.where(Execution.parent_id == f.parent_id)
    if f.statuses:
        query = query.where(Execution.status.in_(f.statuses))
    if f.since:
        query = query.where(Execution.created_at >= f.since)
    if f.until:
        query = query.where(Execution.created_at < f.until)
    return query


def encode_cursor(e: Execution) -> str:
    return base64.urlsafe_b64encode(f"{e.created_at.isoformat()}|{e.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, ident = raw.split("|")
        return datetime.fromisoformat(ts), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Invalid cursor") from None


@dataclass(frozen=True)
class Count:
    """How many executions match, counted up to a cap: `capped` when there are more than `value`."""

    value: int
    capped: bool


async def count_executions(session: AsyncSession, f: ExecutionFilter, cap: int | None) -> Count:
    """Count the matches of `f`, reading at most `cap + 1` of them (every one when `cap` is None).

    A full count of a large history reads every matching index entry (80 ms for 1,000,000); a capped one
    stops after the cap, whatever the size of the history.
    """
    read = None if cap is None else cap + 1
    # Selecting no column lets an index on the filtered columns answer alone (an index-only scan).
    matches: Select[Any] = _filtered(select(literal_column("1")).select_from(Execution), f).limit(read)
    found = int((await session.execute(select(func.count()).select_from(matches.subquery()))).scalar_one())
    if cap is not None and found > cap:
        return Count(cap, capped=True)
    return Count(found, capped=False)


@dataclass(frozen=True)
class ExecutionView:
    """An execution with the names a person reads beside it."""

    execution: Execution
    workflow_name: str
    version_number: int
    names: ExecutionNames | None = None  # read with it (a held read's), or None: read when it is answered


@dataclass(frozen=True)
class Page:
    rows: list[ExecutionView]
    total: Count | None  # None when not counted
    next_cursor: str | None


def _newest_first(query: QueryT, source: type[Execution] = Execution) -> QueryT:
    return query.order_by(source.created_at.desc(), source.id.desc())


def _matching(f: ExecutionFilter, needed: int, after: tuple[datetime, uuid.UUID] | None) -> Subquery:
    """The executions `f` matches (older than `after`, the cursor's row, when given), as a subquery to page.

    Several statuses become one index scan per status, each at most `needed` rows, newest first, which
    PostgreSQL merges in order. As one `status IN (…)` no index gives the order, and where the planner takes
    the filters as independent while they are not (a workflow that never failed, filtered by FAILED) it walks
    the workflow's whole history newest first looking for rows that do not exist: 140 to 250 ms at 1,000,000
    executions instead of 0.2 ms.
    """

    def scan(g: ExecutionFilter) -> Select[Any]:
        query = _filtered(select(Execution), g)
        if after is not None:
            # A row comparison is an index range condition; the equivalent OR is a filter that scans every
            # newer row first (322 ms instead of 2 ms half-way through 1,000,000 executions).
            query = query.where(tuple_(Execution.created_at, Execution.id) < tuple_(*after))
        return query

    statuses = tuple(dict.fromkeys(f.statuses))
    if len(statuses) <= 1:
        return scan(f).subquery("matching")
    per_status = [_newest_first(scan(replace(f, statuses=(status,)))).limit(needed) for status in statuses]
    return union_all(*per_status).subquery("matching")


async def list_executions(
    db: Database,
    f: ExecutionFilter,
    *,
    offset: int,
    limit: int,
    cursor: str | None,
    total_cap: int | None,
) -> Page:
    """Newest first; page/limit with a total, or keyset paging by `cursor` for large histories.

    The total counts the matches up to `total_cap` (all of them when None). Keyset pages are not counted:
    the first page gave the total, and a walk through a large history costs one page query per page.
    """
    after = decode_cursor(cursor) if cursor else None
    skip = 0 if cursor else offset
    execution = aliased(Execution, _matching(f, skip + limit + 1, after), name="execution")
    query = _newest_first(_with_names(execution), execution)
    async with db.session() as session:
        result = await session.execute(query.offset(skip).limit(limit + 1))
        rows = [_view(row) for row in result]
        total = None if cursor else await count_executions(session, f, total_cap)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, total, encode_cursor(rows[-1].execution) if more and rows else None)


def _with_names(execution: type[Execution]) -> Select[Execution, str, int]:
    return (
        select(execution, Workflow.name.label("workflow_name"), WorkflowVersion.number.label("version_number"))
        .join(Workflow, Workflow.id == execution.workflow_id)
        .join(WorkflowVersion, WorkflowVersion.id == execution.version_id)
    )


def _view(row: Any) -> ExecutionView:
    return ExecutionView(row.execution, row.workflow_name, row.version_number)


# On the driver: the `?wait=` read is a hot path (a script waiting for its run asks it again and again).
_GET_EXECUTION = text(
    f"""
SELECT {lifecycle.execution_columns("e")}, w.name AS workflow_name, v.number AS version_number
  FROM executions e
  JOIN workflows w ON w.id = e.workflow_id
  JOIN workflow_versions v ON v.id = e.version_id
 WHERE e.id = :ident"""
)


async def get_execution(db: Database, execution_id: str | uuid.UUID) -> ExecutionView:
    ident = parse_id(execution_id, "execution")
    async with db.reading() as session:
        row = (await session.execute(_GET_EXECUTION, {"ident": ident})).first()
    if row is None:
        raise NotFound(f"execution {execution_id} not found")
    return ExecutionView(lifecycle.execution_of(row), row.workflow_name, row.version_number)


# A client's look at an execution whose end it is about to wait for (`endings`), in one statement: marked as awaited
# and read as the mark left it (`lifecycle.MARK_END_AWAITED`), or, when there was nothing to mark, read as it is.
_AWAIT_END = text(
    f"""
WITH m AS ({lifecycle.MARK_END_AWAITED}
), found AS (
    SELECT {lifecycle.execution_columns("m")}, true AS marked FROM m
     UNION ALL
    SELECT {lifecycle.execution_columns("e")}, false FROM executions e
     WHERE e.id = :ident AND NOT EXISTS (SELECT FROM m)
)
SELECT found.*, w.name AS workflow_name, v.number AS version_number
  FROM found
  JOIN workflows w ON w.id = found.workflow_id
  JOIN workflow_versions v ON v.id = found.version_id"""
)


async def await_end(db: Database, execution_id: uuid.UUID) -> ExecutionView:
    """The execution; when it has not ended, its end is announced from now on. (Neither marked before nor now,
    and not ended: it ended, or another client marked it, between this statement's snapshot and its mark, so it
    is read again.)"""
    async with db.statement() as session:
        row = (await session.execute(_AWAIT_END, {"ident": execution_id})).first()
    if row is None:
        raise NotFound(f"execution {execution_id} not found")
    view = ExecutionView(lifecycle.execution_of(row), row.workflow_name, row.version_number)
    if not row.marked and not row.end_awaited and view.execution.status not in TERMINAL_STATUSES:
        view = await get_execution(db, execution_id)
    return view


async def read_logs(
    db: Database, execution_id: str | uuid.UUID, after_seq: int, limit: int
) -> tuple[list[ExecutionLog], int]:
    """Log lines after `after_seq`, and the seq to ask for next."""
    ident = parse_id(execution_id, "execution")
    async with db.session() as session:
        if await session.get(Execution, ident) is None:
            raise NotFound(f"execution {execution_id} not found")
        lines = list(
            (
                await session.execute(
                    select(ExecutionLog)
                    .where(ExecutionLog.execution_id == ident, ExecutionLog.seq > after_seq)
                    .order_by(ExecutionLog.seq)
                    .limit(limit)
                )
            ).scalars()
        )
    return lines, lines[-1].seq if lines else after_seq


# --- the runner protocol's reads ---------------------------------------------------------------------------

# The token's epoch is checked too: a poll made with a token revoked while it waited gets nothing.
_HELD_NOW = text(
    f"""SELECT {held_columns()} FROM {HELD_FROM}
 WHERE e.id = (SELECT current_execution_id FROM runners WHERE id = :runner_id AND token_epoch = :epoch)
   AND e.runner_id = :runner_id AND e.status IN ('ASSIGNED','RUNNING')"""
)


async def held_execution(db: Database, runner_id: uuid.UUID, epoch: int) -> dict[str, Any] | None:
    """The poll answer for the execution this runner holds now (None when it holds none, or when its token's epoch is
    no longer current): for a poll woken by something other than an assignment made in this process."""
    async with db.reading() as session:
        row = (await session.execute(_HELD_NOW, {"runner_id": runner_id, "epoch": epoch})).first()
    return None if row is None else poll_answer(row)


_HELD_DEFINITION = text(
    f"""
SELECT v.definition FROM executions e JOIN workflow_versions v ON v.id = e.version_id
 WHERE {lifecycle.held_by("e")} AND e.status IN ('ASSIGNED','RUNNING')"""
)


async def held_definition(session: Statements, held: lifecycle.Attempt) -> dict[str, Any] | None:
    """The definition of an execution this runner holds at this attempt (None if it does not, or if the
    runner's token was revoked)."""
    row = (await session.execute(_HELD_DEFINITION, held.params())).first()
    return row.definition if row else None


_STARTED = text(f"SELECT 1 FROM executions WHERE {lifecycle.held_by()} AND status = 'RUNNING'")


async def started(db: Database, held: lifecycle.Attempt) -> bool:
    """Whether this runner has started this attempt already (it runs, and its token is current)."""
    async with db.reading() as session:
        return (await session.execute(_STARTED, held.params())).first() is not None


_TOKEN_EPOCH = text("SELECT token_epoch FROM runners WHERE id = :runner_id")


async def token_epoch(db: Database, runner_id: uuid.UUID) -> int | None:
    """The runner's current token epoch (None: the runner is gone)."""
    async with db.reading() as session:
        epoch: int | None = (await session.execute(_TOKEN_EPOCH, {"runner_id": runner_id})).scalar_one_or_none()
    return epoch


@dataclass(frozen=True)
class LogLine:
    """One line of a runner's log upload: `node` and `event` are the engine's marks (see `LineSink`)."""

    ts: datetime | None
    level: str
    message: str
    node: str | None = None
    event: str | None = None
