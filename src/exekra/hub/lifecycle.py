"""The one module that writes execution and runner state (SPEC §4).

Every change is a conditional update in PostgreSQL: the WHERE clause names the states a transition may
start from (and the attempt and runner for runner calls), so a stale or late call changes nothing and the
caller learns it from the empty result. Terminal states appear in no rule's sources, so they never change.

Each rule also declares its consequences (`Effects`): what a change records on its transaction is applied
once, after the commit, by `exekra.hub.effects`, so no caller has to remember to dispatch, audit or wake.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from sqlalchemy import ARRAY, Row, Text, TextClause, bindparam, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm.attributes import instance_dict
from sqlalchemy.orm.instrumentation import manager_of_class

from exekra.db.raw import Statements
from exekra.hub import concurrency, effects
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import SYSTEM, Actor
from exekra.hub.dispatch.handed import Handed, poll_answer
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.effects import NO_EFFECTS, Effects, Transition
from exekra.hub.executions import endings
from exekra.hub.executions.models import LIVE_STATUSES, Execution
from exekra.hub.executions.models import ExecutionStatus as S
from exekra.hub.runners.models import RunnerStatus as R
from exekra.hub.runners.models import idle

StatusT = TypeVar("StatusT", S, R)


@dataclass(frozen=True)
class Rule(Generic[StatusT]):
    """A named transition: the states it may start from, the state it leads to, and its consequences."""

    name: str
    sources: tuple[StatusT, ...]
    target: StatusT
    effects: Effects = field(default=NO_EFFECTS)


def _ended(audit: str | None = None) -> Effects:
    """An execution ended: the runner holding it and its concurrency slot are freed, and the end is announced (to
    the clients waiting for it)."""
    return Effects(frees_runner=True, frees_slot=True, ends=True, audit=audit)


# Creation: the one rule without a source state (the row is inserted QUEUED).
CREATE = Rule("create", (), S.QUEUED, Effects(queued=True, audit="execution.create"))

# Runner calls and user actions.
ASSIGN = Rule("assign", (S.QUEUED,), S.ASSIGNED, Effects(assigned=True))
START = Rule("start", (S.ASSIGNED,), S.RUNNING)
COMPLETE = Rule("complete", (S.RUNNING,), S.COMPLETED, _ended())
FAIL = Rule("fail", (S.ASSIGNED, S.RUNNING), S.FAILED, _ended())
RUNNER_STOPPED = Rule("runner-stopped", (S.ASSIGNED, S.RUNNING), S.STOPPED, _ended())
STOP_NOW = Rule(
    "stop-now",
    (S.QUEUED, S.ASSIGNED),
    S.STOPPED,
    Effects(unqueued=True, frees_runner=True, frees_slot=True, ends=True, audit="execution.stop"),
)
# The runner learns of it from its next heartbeat or log upload: a heartbeat answered from memory reads its row again.
REQUEST_STOP = Rule("request-stop", (S.RUNNING,), S.RUNNING, Effects(wakes_runner=True, audit="execution.stop"))

# The hub's stale checks (SPEC §4), run by the maintenance loop on the database clock.
QUEUE_TIMEOUT = Rule(
    "queue-timeout", (S.QUEUED,), S.FAILED, Effects(unqueued=True, ends=True, audit="execution.queue_timeout")
)
REQUEUE = Rule(
    "requeue",
    (S.ASSIGNED,),
    S.QUEUED,
    Effects(queued=True, frees_runner=True, frees_slot=True, audit="execution.requeue"),
)
PICKUP_FAILED = Rule("pickup-failed", (S.ASSIGNED,), S.FAILED, _ended("execution.pickup_failed"))
RUNNER_LOST = Rule("runner-lost", (S.RUNNING,), S.FAILED, _ended("execution.runner_lost"))
STOP_UNCONFIRMED = Rule("stop-unconfirmed", (S.RUNNING,), S.STOPPED, _ended("execution.stop_unconfirmed"))
HUB_TIMEOUT = Rule("hub-timeout", (S.RUNNING,), S.FAILED, _ended("execution.hub_timeout"))
# A runner's changes wake its polls (`Effects.wakes_runner`): a poll that renewed without reading the runner's row
# (`exekra.hub.dispatch.wakeups`, quiet renewals) reads it again.
RUNNER_OFFLINE = Rule(
    "runner-offline", (R.ONLINE, R.BUSY), R.OFFLINE, Effects(wakes_runner=True, audit="runner.offline")
)
# Its secret was replaced: every token made with the old one stops working, and the runner is OFFLINE until it
# signs in with the new one and shows a sign of life (work it holds is then the stale rules' to settle).
RUNNER_REVOKED = Rule("runner-revoked", (R.ONLINE, R.BUSY, R.OFFLINE), R.OFFLINE, Effects(wakes_runner=True))
# An operator changed the runner (enabled, labels, name…) or deleted it, or the runner declared what it can run.
RUNNER_CHANGED = Effects(wakes_runner=True)

EXECUTION_RULES = (
    CREATE,
    ASSIGN,
    START,
    COMPLETE,
    FAIL,
    RUNNER_STOPPED,
    STOP_NOW,
    REQUEST_STOP,
    QUEUE_TIMEOUT,
    REQUEUE,
    PICKUP_FAILED,
    RUNNER_LOST,
    STOP_UNCONFIRMED,
    HUB_TIMEOUT,
)
RUNNER_FINISH_RULES = {S.COMPLETED: COMPLETE, S.FAILED: FAIL, S.STOPPED: RUNNER_STOPPED}


def _transition(rule: Rule[Any], **fields: Any) -> Transition:
    return Transition(rule.name, rule.effects, **fields)


def _listed(states: Sequence[StrEnum]) -> str:
    return "(" + ",".join(f"'{state.value}'" for state in states) + ")"


def _sources(rule: Rule[Any]) -> str:
    return _listed(rule.sources)


def _unindexed(condition: str) -> str:
    """SQL: `condition` on a row found by its primary key, as a filter that no index can serve (wrapped in `IS TRUE`):
    the key is left as the one index to find the row by. Written plainly, a prepared statement's generic plan, made
    while the statistics showed few rows meeting it, may find the one row through an index of the condition
    instead, and so read every row that meets it: with a backlog of 1,700 QUEUED executions, each claim for a new one
    read all of them, twice (bench/RESULTS.md, 2026-12-06 07:58); a poll's claim read every idle runner to find its
    own (tests/integration/test_claim_plans.py)."""
    return f"({condition}) IS TRUE"


def found_in(alias: str, states: Sequence[StrEnum]) -> str:
    """SQL: the row `alias`, found by its primary key, is in one of `states` (`_unindexed`). For a statement that finds
    one row by its key; a statement's rows in a state capped by the runners (ASSIGNED, RUNNING, with the runner's id)
    need it less."""
    return _unindexed(f"{alias}.status IN {_listed(states)}")


# Signs of life and log uploads commit without waiting for the WAL flush (PostgreSQL asynchronous commit, for
# their transaction only): a database crash may lose their last fraction of a second (a heartbeat's metrics,
# log lines the runner was told were stored), never a state change. WAL is flushed in order, so a durable
# commit after them (start, complete) makes them durable too. Selected by the statement: no extra round trip.
_ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"

# The `ends` effect's announcement to clients waiting for an execution to end, in any hub process
# (`exekra.hub.executions.endings`): selected by the ending statement itself, delivered when its transaction
# commits and dropped if it rolls back, so it costs no round trip of its own. Sent only when somebody waits
# (`end_awaited`, set by the waiter's first look: `MARK_END_AWAITED`), since every listening hub process reads
# each notification in a transaction of its own. The flag is read from the row the statement changes, so a
# waiter's mark committed before the end, or waited for by it, is always seen.
_ANNOUNCE_END = f"CASE WHEN {{0}}.end_awaited THEN pg_notify('{endings.CHANNEL}', CAST({{0}}.id AS text)) END"


def _announce_end(rule: Rule[Any], source: str) -> str:
    """The select-list item that announces the end of the execution in CTE `source` (columns id, end_awaited),
    for a rule that ends one."""
    assert rule.effects.ends, rule.name
    return _ANNOUNCE_END.format(source)


# Every column of an execution, by attribute: a statement that returns them all gives its caller the `Execution`
# as stored, without a read (and without the ORM's unit of work).
_EXECUTION_ATTRIBUTES = tuple((a.key, a.columns[0].name) for a in sa_inspect(Execution).column_attrs)
EXECUTION_COLUMNS = ", ".join(column for _, column in _EXECUTION_ATTRIBUTES)
"""Every column of `executions`, for a statement whose row becomes an `Execution` (`execution_of`)."""


def execution_columns(alias: str) -> str:
    """`EXECUTION_COLUMNS` of the table aliased `alias`, for a statement that joins others."""
    return ", ".join(f"{alias}.{column}" for _, column in _EXECUTION_ATTRIBUTES)


_HANDED = "ended_"


def _handed(source: str, runner: str) -> str:
    """Every column of the execution ended in CTE `source`, named `ended_…`, and the name of its runner in CTE `runner`
    (`ended_by`), when a client waits for its end (`end_awaited`) in this process (`:hand`, as the caller saw it
    before the statement), else NULL: those waiters take the row from the ending statement instead of reading it
    (`Ended`), and an end nobody waits for here sends nothing more."""
    values = [(f"{source}.{column}", _HANDED + column) for _, column in _EXECUTION_ATTRIBUTES]
    values.append((f"{runner}.name", "ended_by"))
    handed = f"{source}.end_awaited AND CAST(:hand AS boolean)"
    return ", ".join(f"CASE WHEN {handed} THEN {value} END AS {name}" for value, name in values)


def _let_go(source: str, *, many: bool = False) -> str:
    """CTEs `ur` and `us`: the runner holding each execution of CTE `source` (columns id, runner_id, workflow_id,
    concurrency_key) lets go of it, and so does its concurrency slot (`concurrency.release_slots`); `many`: the
    statement may end several executions.

    A BUSY runner becomes ONLINE (idle); an OFFLINE one stays OFFLINE until it shows a sign of life. `ur` returns the
    runner's row as it is then: its status and enabled flag, and what its next poll would read (catalogue digest,
    type, labels, activities), which the end report uses (`finish`).
    """
    return f"""ur AS (
    UPDATE runners SET current_execution_id = NULL,
                       status = CASE WHEN runners.status = 'BUSY' THEN 'ONLINE' ELSE runners.status END
      FROM {source} WHERE runners.id = {source}.runner_id AND runners.current_execution_id = {source}.id
 RETURNING runners.id, runners.name, runners.status, runners.enabled, runners.catalogue_digest, runners.type,
           runners.labels, runners.activities
), {concurrency.release_slots(source, many=many)}"""


@dataclass(frozen=True)
class Assignment:
    """An execution just handed to a runner."""

    execution_id: uuid.UUID
    runner_id: uuid.UUID
    attempt: int
    handed: Handed  # as the runner's poll answers it (the claim statements read it)


# Shared tail of both claim statements: given CTEs `e` (the execution: id, workflow_id, concurrency_key) and `r` (the
# runner), both locked, take the execution's concurrency slot if it has a group (`concurrency.take_slot`), and mark
# it ASSIGNED with attempt + 1 and the runner BUSY, in one statement, which also reads what the runner's poll is
# handed (`dispatch.handed`: the poll answers it without reading it again; LEFT JOINs, so that what the claim did never
# depends on that read). An execution whose group is full stays
# QUEUED: the second row shape (no runner) says so; it is also returned when no runner was found and the snapshot
# shows the group full. Without a group, `s` and that second part find no row. The execution it updates is found by
# its key as a value (`x.id = (SELECT id FROM e)`): only joined to `e`, a generic plan made while the table was small
# scanned all of executions to find the one row (bench/RESULTS.md, 2026-12-06 07:58). So `e` holds one row at most
# (a key, or LIMIT 1): a claim of several executions at once needs another update. The join beside the value
# (`x.id = e.id`) is deliberate: it brings `e`'s columns.
_ASSIGN_TAIL = f"""
, {concurrency.take_slot("e", "r")}
, ue AS (
    UPDATE executions x
       SET status = 'ASSIGNED', attempt = x.attempt + 1, runner_id = r.id, assigned_at = now()
      FROM e, r
     WHERE x.id = (SELECT id FROM e) AND x.id = e.id AND {found_in("x", ASSIGN.sources)}
       AND (e.concurrency_key IS NULL OR EXISTS (SELECT FROM s))
 RETURNING x.id, x.attempt, x.runner_id, x.status, x.inputs, x.timeout_seconds, x.workflow_id, x.version_id
), ur AS (
    UPDATE runners SET status = 'BUSY', current_execution_id = ue.id
      FROM ue WHERE runners.id = ue.runner_id
 RETURNING runners.id, runners.token_epoch
)
SELECT ue.id, ue.runner_id, ue.attempt, ur.token_epoch, ue.status, ue.inputs, ue.timeout_seconds, ue.workflow_id,
       w.name AS workflow_name, ue.version_id, v.number AS version_number, v.definition
  FROM ue JOIN ur ON true
  LEFT JOIN workflows w ON w.id = ue.workflow_id
  LEFT JOIN workflow_versions v ON v.id = ue.version_id
 UNION ALL
SELECT e.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM e
 WHERE e.concurrency_key IS NOT NULL
   AND CASE WHEN EXISTS (SELECT FROM r) THEN NOT EXISTS (SELECT FROM s) ELSE NOT {concurrency.has_room("e")} END
"""


def may_run(runner: str, execution: str) -> str:
    """SQL: the runner (alias `runner`) may run the execution (alias `execution`) by SPEC §6: pinned to it, or of
    its type and labels. The one copy of the rule, for the claims and for an execution's waiting reason."""
    r, x = runner, execution
    return f"""({r}.id = {x}.pinned_runner_id
         OR ({x}.pinned_runner_id IS NULL
             AND ({x}.runner_type IS NULL OR {r}.type = {x}.runner_type)
             AND {r}.labels @> {x}.required_labels))"""


def _eligible(runner: str, execution: str) -> str:
    """SQL: the runner may take the execution (`may_run`, and it has every activity the execution needs: a pinned
    execution ignores type and labels, never the activities, so no runner is handed work it would fail).

    One CASE: PostgreSQL does not look inside it and gives it a fixed estimate. Bare, it takes each containment test
    (`@>`) to pass for 1 row in 200, so it expected one eligible runner among 5,000 idle ones (or one eligible execution in a
    backlog), and read and sorted them all instead of stopping at the first in its index's order
    (tests/integration/test_claim_plans.py)."""
    r, x = runner, execution
    return f"CASE WHEN {r}.activities @> {x}.required_activities AND {may_run(r, x)} THEN true ELSE false END"


_ELIGIBLE_RUNNER = f"""
    {idle("rn")} AND {_eligible("rn", "e")}
"""

# The runner's own row is locked without SKIP LOCKED: a concurrent claim for the same runner (the sweeper, a
# create's match) is waited for, and its result seen, so that a poll never answers 204 while an assignment to
# it is committing. No deadlock: every other lock these claims take is SKIP LOCKED. The runner's row is found by its
# key: its idle state is a filter that the idle runners' index cannot serve (`_unindexed`).
_CLAIM_FOR_RUNNER = text(
    f"""
WITH r AS (
    SELECT id, type, labels, activities FROM runners
     WHERE id = :runner_id AND {_unindexed(idle())}
       FOR UPDATE
), e AS (
    SELECT x.id, x.workflow_id, x.concurrency_key FROM executions x, r
     WHERE x.status = 'QUEUED'
       AND {_eligible("r", "x")}
       AND {concurrency.has_room("x")}
     ORDER BY x.priority DESC, x.queued_at, x.id
     LIMIT 1
       FOR UPDATE OF x SKIP LOCKED
){_ASSIGN_TAIL}"""
)

# The best free runner is taken first (`SKIP LOCKED`): concurrent matches, which all prefer the runner with the
# freshest sign of life, take one runner each instead of queueing behind one row, each waiting for the commit of
# the claim before it (measured: bench/RESULTS.md, 2026-12-05 16:24). Only when every eligible runner's row was
# locked, the best one is waited for (`r_held`) and then re-checked (busy now: the next one is taken): when a
# poll's claim holds it, that claim skips this execution, which this statement holds, and skipping both ways
# made both claims miss. No deadlock: a poll's claim waits on nothing but its own runner's row, and this statement
# waits holding only the execution's row and runner rows its re-check found busy.
_ASSIGN_TO_BEST_RUNNER = text(
    f"""
WITH e AS (
    SELECT id, workflow_id, concurrency_key, pinned_runner_id, runner_type, required_labels, required_activities
      FROM executions
     WHERE id = :execution_id AND {found_in("executions", ASSIGN.sources)}
       FOR UPDATE SKIP LOCKED
), r_free AS (
    SELECT rn.id FROM runners rn, e
     WHERE {_ELIGIBLE_RUNNER}
     ORDER BY rn.last_heartbeat_at DESC NULLS LAST
     LIMIT 1
       FOR UPDATE OF rn SKIP LOCKED
), r_held AS (
    SELECT rn.id FROM runners rn, e
     WHERE NOT EXISTS (SELECT FROM r_free) AND {_ELIGIBLE_RUNNER}
     ORDER BY rn.last_heartbeat_at DESC NULLS LAST
     LIMIT 1
       FOR UPDATE OF rn
), r AS (
    SELECT id FROM r_free UNION ALL SELECT id FROM r_held
){_ASSIGN_TAIL}"""
)


@dataclass(frozen=True)
class GroupFull:
    """A claim found the execution but left it QUEUED: its concurrency group had no free slot."""

    execution_id: uuid.UUID


Claim = Assignment | GroupFull | None
"""What a claim did: assigned, refused for the concurrency limit, or found nothing to do."""


def _assigned(session: Statements, row: Row[Any] | None) -> Claim:
    if row is None:
        return None
    if row.runner_id is None:
        return GroupFull(row.id)
    handed = Handed(row.token_epoch, poll_answer(row))
    assignment = Assignment(execution_id=row.id, runner_id=row.runner_id, attempt=row.attempt, handed=handed)
    effects.record(
        session,
        _transition(ASSIGN, execution_id=row.id, runner_id=row.runner_id, attempt=row.attempt, handed=handed),
    )
    return assignment


async def claim_for_runner(session: Statements, runner_id: uuid.UUID) -> Claim:
    """Give an idle runner the best queued execution it may run (priority, then age) whose concurrency group has
    room. `GroupFull`: the group of the one it chose filled up meanwhile (a fresh claim chooses another)."""
    result = await session.execute(_CLAIM_FOR_RUNNER, {"runner_id": runner_id})
    return _assigned(session, result.first())


async def assign_to_best_runner(session: Statements, execution_id: uuid.UUID) -> Claim:
    """Give a queued execution to the eligible idle runner with the most recent heartbeat; `GroupFull` when there
    is one but the execution's concurrency group has no free slot."""
    result = await session.execute(_ASSIGN_TO_BEST_RUNNER, {"execution_id": execution_id})
    return _assigned(session, result.first())


# Runner calls are fenced by the attempt and the runner, and by the runner's token epoch: a token issued before
# the runner's secret was regenerated changes nothing, with no separate look-up of the runner's row.
def held_by(alias: str = "executions") -> str:
    """The fence of every runner call about an execution (`Attempt.params()`): this runner holds this attempt,
    and its token's epoch is current. `alias` names the executions table in the statement."""
    return f"""{alias}.id = :execution_id AND {alias}.runner_id = :runner_id AND {alias}.attempt = :attempt
   AND EXISTS (SELECT 1 FROM runners WHERE runners.id = :runner_id AND runners.token_epoch = :epoch)"""


_HELD_BY = held_by()

_START = text(
    f"""
UPDATE executions SET status = 'RUNNING', started_at = now()
 WHERE {_HELD_BY} AND status IN {_sources(START)}
RETURNING EXTRACT(EPOCH FROM assigned_at - queued_at) AS dispatch_seconds,
          EXTRACT(EPOCH FROM started_at - assigned_at) AS pickup_seconds"""
)


@dataclass(frozen=True)
class Attempt:
    """Who calls about which attempt: the runner and its token epoch (`RunnerClaims`), the execution."""

    execution_id: uuid.UUID
    runner_id: uuid.UUID
    epoch: int
    attempt: int

    def params(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "runner_id": self.runner_id,
            "epoch": self.epoch,
            "attempt": self.attempt,
        }


class Started(NamedTuple):
    """How long the started execution waited: for a runner (QUEUED → ASSIGNED), then for its start report."""

    dispatch_seconds: float
    pickup_seconds: float


async def start(session: Statements, held: Attempt) -> Started | None:
    """ASSIGNED → RUNNING for the runner holding this attempt (None: it does not hold it)."""
    row = (await session.execute(_START, held.params())).first()
    return None if row is None else Started(float(row.dispatch_seconds or 0), float(row.pickup_seconds or 0))


class LogLine(Protocol):
    """A log line as the statements store it (`exekra.hub.executions.queries.LogLine`)."""

    @property
    def ts(self) -> datetime | None: ...
    @property
    def level(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def node(self) -> str | None: ...
    @property
    def event(self) -> str | None: ...


class LogBatch(NamedTuple):
    """A batch of log lines to store under the execution's log size cap (`cap` bytes): while the log is under
    it the batch is stored whole (the log ends at most a batch past it); the first batch past it is replaced by
    the `marker` line; later batches are counted in `log_dropped`, not stored."""

    lines: Sequence[LogLine]
    size: int  # of the lines' messages, in bytes
    cap: int
    marker: str

    def params(self) -> dict[str, Any]:
        lines = self.lines
        return {
            "log_count": len(lines),
            "log_size": self.size,
            "log_cap": self.cap,
            "log_marker": self.marker,
            "line_ts": [line.ts for line in lines],
            "line_levels": [line.level for line in lines],
            "line_messages": [line.message for line in lines],
            "line_nodes": [line.node for line in lines],
            "line_events": [line.event for line in lines],
        }


# The SET clause that admits a batch (`LogBatch.params`); the statement returns `log_seq` and `log_dropped`.
_ADMIT_LOG = """log_seq = log_seq + CASE WHEN log_bytes < :log_cap THEN :log_count
                                          WHEN log_dropped = 0 AND :log_count > 0 THEN 1 ELSE 0 END,
           log_bytes = log_bytes + CASE WHEN log_bytes < :log_cap THEN :log_size ELSE 0 END,
           log_dropped = log_dropped + CASE WHEN log_bytes < :log_cap THEN 0 ELSE :log_count END"""


def _store_lines(source: str) -> str:
    """CTE `sl`: the batch's lines stored at the numbers `_ADMIT_LOG` reserved in CTE `source` (columns id,
    log_seq, log_dropped, as admitted): all of them while nothing was dropped, the marker line for the first
    batch past the cap (all it carried was dropped), nothing later. Runs in the fencing statement itself: a log
    upload and a `complete` with lines are one round trip each, their lines stored exactly when admitted."""
    return f"""sl AS (
    INSERT INTO execution_logs (execution_id, seq, ts, level, message, node, event)
    SELECT {source}.id, {source}.log_seq - :log_count + l.n, coalesce(l.ts, now()), l.level, l.message, l.node,
           l.event
      FROM {source},
           unnest(CAST(:line_ts AS timestamptz[]), CAST(:line_levels AS text[]), CAST(:line_messages AS text[]),
                  CAST(:line_nodes AS text[]), CAST(:line_events AS text[]))
                  WITH ORDINALITY AS l(ts, level, message, node, event, n)
     WHERE {source}.log_dropped = 0
    UNION ALL
    SELECT {source}.id, {source}.log_seq, now(), 'WARNING', :log_marker, NULL, NULL
      FROM {source}
     WHERE {source}.log_dropped > 0 AND {source}.log_dropped = :log_count
)"""


# An upload with lines announces them to whoever follows the execution's log (`endings.log_channel`; delivered
# at commit, heard only where someone listens), selected by the statement: no round trip of its own.
_STORE_LOGS = text(
    f"""
WITH ue AS (
    UPDATE executions SET {_ADMIT_LOG}
     WHERE {_HELD_BY} AND status IN ('ASSIGNED','RUNNING')
 RETURNING id, log_seq, log_dropped, stop_requested
), {_store_lines("ue")}
SELECT ue.stop_requested, {_ASYNC_COMMIT},
       CASE WHEN :log_count > 0
            THEN pg_notify('{endings.LOG_CHANNEL_PREFIX}' || replace(CAST(ue.id AS text), '-', ''), '') END
  FROM ue"""
)


async def store_logs(session: Statements, held: Attempt, batch: LogBatch) -> bool | None:
    """Fence a log upload and store its lines under the log's cap, in one statement; returns whether a stop was
    requested (None: the attempt is not held)."""
    row = (await session.execute(_STORE_LOGS, {**held.params(), **batch.params()})).first()
    return None if row is None else bool(row.stop_requested)


# A runner's `workflow.run` starts a child only for the RUNNING attempt it holds. The row lock this takes makes
# the child's creation and the parent's end (or another child's creation) wait for each other: a parent that
# ended first refuses the child, and one that ends after sees `has_children` and stops it.
_HOLD_PARENT = text(
    f"""
UPDATE executions SET has_children = true
 WHERE {_HELD_BY} AND status = 'RUNNING'
RETURNING id, workflow_id, priority, stop_requested"""
)


class Parent(NamedTuple):
    """A RUNNING execution about to start a child, as `hold_parent` locked it."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    priority: int
    stop_requested: bool


async def hold_parent(session: Statements, held: Attempt) -> Parent | None:
    """Lock the RUNNING execution whose attempt this runner holds, and mark it as having children, until the
    transaction ends (None: not held, or not RUNNING)."""
    row = (await session.execute(_HOLD_PARENT, held.params())).first()
    return None if row is None else Parent(row.id, row.workflow_id, row.priority, row.stop_requested)


_FINISH = text(
    f"""
WITH ue AS (
    UPDATE executions
       SET status = :status, error = :error, outputs = :outputs, completed_at = now(),
           cpu_avg = :cpu_avg, cpu_peak = :cpu_peak, mem_avg_mb = :mem_avg_mb, mem_peak_mb = :mem_peak_mb,
           {_ADMIT_LOG}
     WHERE {_HELD_BY} AND status = ANY(:sources)
 RETURNING {EXECUTION_COLUMNS}
), {_let_go("ue")}, {_store_lines("ue")}
SELECT ue.id, ue.has_children, ur.status AS runner_status, ur.enabled AS runner_enabled, ur.catalogue_digest,
       ur.type AS runner_type, ur.labels AS runner_labels, ur.activities AS runner_activities,
       {concurrency.FREED_COLUMNS}, {_handed("ue", "ur")}, {_announce_end(COMPLETE, "ue")}
  FROM ue LEFT JOIN ur ON ur.id = ue.runner_id {concurrency.freed_join("ue")}"""
).bindparams(bindparam("outputs", type_=JSONB))


class Ended(NamedTuple):
    """An execution as its ending statement stored it, and the name of the runner it ran on (None: that runner no
    longer held it, and was not let go of by the end)."""

    execution: Execution
    runner_name: str | None


class Finished(NamedTuple):
    """What a runner's end report left: whether its runner is idle (ONLINE and enabled: it may take work), the
    catalogue digest its row holds, and the ended execution when a client of this process waits for its end."""

    runner_idle: bool
    catalogue_digest: str | None
    ended: Ended | None


async def finish(
    session: Statements,
    held: Attempt,
    status: S,
    *,
    error: str | None,
    outputs: dict[str, Any] | None,
    metrics: dict[str, float | None],
    lines: LogBatch,
    hand: bool = False,
) -> Finished | None:
    """A runner's final report, in one statement: ends the execution, frees the runner and stores the final log
    lines it carries (`lines`). `hand`: a client of this process waits for its end, and gets the ended row
    (`Finished.ended`). None when the attempt is not held."""
    rule = RUNNER_FINISH_RULES[status]
    assert rule.effects == COMPLETE.effects  # the statement announces the end of each (when somebody waits)
    result = await session.execute(
        _FINISH,
        {
            **held.params(),
            "status": rule.target.value,
            "sources": [s.value for s in rule.sources],
            "error": error,
            "outputs": outputs,
            "cpu_avg": metrics.get("cpuAvg"),
            "cpu_peak": metrics.get("cpuPeak"),
            "mem_avg_mb": metrics.get("memAvgMb"),
            "mem_peak_mb": metrics.get("memPeakMb"),
            "hand": hand,
            **lines.params(),
        },
    )
    row = result.first()
    if row is None:
        return None
    # Idle: alive, holding nothing, and enabled (a runner disabled while it ran is offered nothing). A runner whose
    # row is gone has no status.
    idle = row.runner_status == R.ONLINE and bool(row.runner_enabled)
    profile = (
        RunnerProfile(held.runner_id, row.runner_type, tuple(row.runner_labels), tuple(row.runner_activities))
        if idle
        else None
    )
    effects.record(
        session,
        _transition(
            rule,
            execution_id=row.id,
            runner_id=held.runner_id,
            runner_idle=idle,
            runner_profile=profile,
            attempt=held.attempt,
            status=rule.target.value,
            slot=concurrency.freed_group(row),
            has_children=row.has_children,
        ),
    )
    ended = Ended(execution_of(row, _HANDED), row.ended_by) if row.ended_id is not None else None
    return Finished(idle, row.catalogue_digest, ended)


_STOP_NOW = text(
    f"""
WITH ue AS (
    UPDATE executions SET status = 'STOPPED', completed_at = now(), stop_requested = true,
                          stop_requested_at = now(), error = :reason
     WHERE id = :execution_id AND {found_in("executions", STOP_NOW.sources)}
 RETURNING id, runner_id, workflow_id, concurrency_key, end_awaited
), {_let_go("ue")}
SELECT ue.id, ur.id AS runner_id, ur.status AS runner_status, {concurrency.FREED_COLUMNS},
       {_announce_end(STOP_NOW, "ue")}
  FROM ue LEFT JOIN ur ON ur.id = ue.runner_id {concurrency.freed_join("ue")}"""
)

_REQUEST_STOP = text(
    f"""
UPDATE executions SET stop_requested = true, stop_requested_at = coalesce(stop_requested_at, now())
 WHERE id = :execution_id AND {found_in("executions", REQUEST_STOP.sources)}
RETURNING id, runner_id"""
)


@dataclass(frozen=True)
class StopOutcome:
    """What a stop request did: stopped at once, or asked the runner (neither: nothing to stop)."""

    stopped: bool
    requested: bool


STOPPED_BY_USER = "stopped by user"


async def request_stop(
    session: Statements,
    execution_id: uuid.UUID,
    actor: Actor,
    *,
    reason: str = STOPPED_BY_USER,
    details: dict[str, Any] | None = None,
) -> StopOutcome:
    """QUEUED/ASSIGNED → STOPPED at once, with `reason` as its error; RUNNING → stopRequested (the runner
    confirms). `details` go into the audit entry beside `immediate`."""
    row = (await session.execute(_STOP_NOW, {"execution_id": execution_id, "reason": reason})).first()
    if row:
        transition = _transition(
            STOP_NOW,
            execution_id=execution_id,
            runner_id=row.runner_id,
            runner_idle=row.runner_status == R.ONLINE,
            status=STOP_NOW.target.value,
            slot=concurrency.freed_group(row),
        )
        effects.record(session, transition, actor=actor, details={"immediate": True, **(details or {})})
        return StopOutcome(stopped=True, requested=False)
    requested = (await session.execute(_REQUEST_STOP, {"execution_id": execution_id})).first()
    if requested is None:
        return StopOutcome(stopped=False, requested=False)
    transition = _transition(
        REQUEST_STOP, execution_id=execution_id, runner_id=requested.runner_id, status=REQUEST_STOP.target.value
    )
    effects.record(session, transition, actor=actor, details={"immediate": False, **(details or {})})
    return StopOutcome(stopped=False, requested=True)


_EXECUTIONS = manager_of_class(Execution)
_EXECUTION_KEYS = frozenset(key for key, _ in _EXECUTION_ATTRIBUTES)


def execution_from(values: dict[str, Any]) -> Execution:
    """An `Execution` in no session (transient) with these attributes, written into its state directly, without the
    change history the constructor records, which nothing reads here: 6 to 8 µs against the constructor's 56
    (measured). A name that is no column is refused, as the constructor refuses it."""
    unknown = values.keys() - _EXECUTION_KEYS
    if unknown:
        raise TypeError(f"not attributes of Execution: {sorted(unknown)}")
    return _transient(values)


def _transient(values: dict[str, Any]) -> Execution:
    execution: Execution = _EXECUTIONS.new_instance()
    instance_dict(execution).update(values)
    return execution


def execution_of(row: Any, prefix: str = "") -> Execution:
    """An `Execution` (in no session) from a row with `EXECUTION_COLUMNS`, each name after `prefix` (every name a
    column: nothing to check)."""
    return _transient({key: getattr(row, prefix + column) for key, column in _EXECUTION_ATTRIBUTES})


# A client about to wait for the end of execution :ident (`endings`) marks it `end_awaited`, if it is live and not
# marked yet, and gets its columns as the mark left them: from the mark's commit on, the statement that ends it
# announces it (`_ANNOUNCE_END`). The row lock orders the two: an end that comes later sees the mark, and one that
# came first leaves no live row to mark. Only an execution's first waiter takes the lock (a claim meeting it skips
# the row for that moment). A hint, committed without waiting for the WAL flush: a database crash may lose it, and
# every hub's listener then reconnects and its waiters look again. The CTE of `queries.await_end`'s look.
MARK_END_AWAITED = f"""
    UPDATE executions e SET end_awaited = true
     WHERE e.id = :ident AND {found_in("e", LIVE_STATUSES)} AND NOT e.end_awaited
 RETURNING {execution_columns("e")}, {_ASYNC_COMMIT}"""


_CREATED_WITH = (
    "id",
    "workflow_id",
    "version_id",
    "pinned_runner_id",
    "runner_type",
    "required_labels",
    "required_activities",
    "status",
    "priority",
    "trigger_type",
    "triggered_by",
    "inputs",
    "idempotency_key",
    "timeout_seconds",
    "retry_of",
    "retry_attempt",
    "concurrency_key",
    "parent_id",
    "parent_key",
)
_AUDITED_WITH = ("actor_type", "actor_id", "ip", "action", "entity_type", "entity_id", "details")

# A create is one statement: the row, the audit entry of rule CREATE (the entry `audit.record` would write at
# commit, with the same columns: `audit.entry`) and, for a request with an idempotency key, the key's claim,
# on which the row depends: a key that another execution holds within its window inserts nothing at all. With a
# `revision`, nothing either unless the workflow is still at that revision (it was built from what the process
# remembered of the workflow: `creation.new_execution`). The parameters take their types from the columns they fill
# (INSERT … SELECT), as INSERT … VALUES does.
_INSERT_QUEUED = text(
    f"""
WITH unchanged AS (
    SELECT CAST(:revision AS bigint) IS NULL
           OR EXISTS (SELECT FROM workflows WHERE id = :workflow_id AND revision = CAST(:revision AS bigint)) AS yes
), claimed AS (
    INSERT INTO execution_keys (workflow_id, key, execution_id, created_at)
    SELECT :workflow_id, CAST(:claimed_key AS varchar), :id, now()
     WHERE CAST(:claimed_key AS varchar) IS NOT NULL AND (SELECT yes FROM unchanged)
    ON CONFLICT (workflow_id, key) DO UPDATE
       SET execution_id = EXCLUDED.execution_id, created_at = EXCLUDED.created_at
     WHERE execution_keys.created_at < now() - make_interval(secs => :key_window)
    RETURNING execution_id
), created AS (
    INSERT INTO executions ({", ".join(_CREATED_WITH)})
    SELECT {", ".join(f":{name}" for name in _CREATED_WITH)}
     WHERE (SELECT yes FROM unchanged) AND (CAST(:claimed_key AS varchar) IS NULL OR EXISTS (SELECT FROM claimed))
    RETURNING {EXECUTION_COLUMNS}
), audited AS (
    INSERT INTO audit_log ({", ".join(_AUDITED_WITH)})
    SELECT {", ".join(f":audit_{name}" for name in _AUDITED_WITH)} FROM created
)
SELECT {EXECUTION_COLUMNS} FROM created"""
).bindparams(
    bindparam("inputs", type_=JSONB),
    bindparam("required_labels", type_=ARRAY(Text)),
    bindparam("required_activities", type_=ARRAY(Text)),
    bindparam("audit_details", type_=JSONB),
)


class NotInserted(Exception):
    """Nothing was inserted: the idempotency key is held by another execution within its window, or the workflow
    changed since the revision the execution was built from."""


async def insert_queued(
    session: Statements,
    execution: Execution,
    actor: Actor,
    *,
    key: str | None = None,
    key_window: float = 0,
    revision: int | None = None,
) -> Execution:
    """Create an execution, in one statement (it may run self-committing, `Database.statement`): its row is
    inserted QUEUED (the one state it may start in), and offered. Returns the row as stored; `execution` is the
    unsaved one `creation.new_execution` built. Audited as `execution.create` with the workflow and the trigger
    type. With `key`, the row is inserted only if the key is free or was last claimed over `key_window` seconds
    ago, and the key then names it. With `revision`, only if the workflow is still at that revision. NotInserted
    otherwise."""
    details: dict[str, str | None] = {
        "workflowId": str(execution.workflow_id),
        "triggerType": str(execution.trigger_type),
    }
    if execution.parent_id is not None:
        details |= {"parentId": str(execution.parent_id), "key": execution.parent_key}
    entry = audit.entry(actor, str(CREATE.effects.audit), "execution", execution.id, details)
    params = (
        {name: getattr(execution, name) for name in _CREATED_WITH}
        | {"status": CREATE.target, "claimed_key": key, "key_window": key_window, "revision": revision}
        | {f"audit_{name}": value for name, value in entry.items()}
    )
    row = (await session.execute(_INSERT_QUEUED, params)).first()
    if row is None:
        raise NotInserted(key)
    stored = execution_of(row)
    transition = _transition(CREATE, execution_id=stored.id, status=CREATE.target.value)
    effects.record(session, transition, actor=actor, audit_written=True)
    return stored


_REVOKE_RUNNER = text(
    f"""
UPDATE runners SET secret_hash = :secret_hash, token_epoch = token_epoch + 1, status = '{RUNNER_REVOKED.target.value}'
 WHERE id = :runner_id AND status IN {_sources(RUNNER_REVOKED)}
RETURNING id"""
)


async def revoke_runner(session: Statements, runner_id: uuid.UUID, secret_hash: str) -> bool:
    """Replace the runner's secret: its tokens stop working at once (the epoch) and it is OFFLINE."""
    if (await session.execute(_REVOKE_RUNNER, {"runner_id": runner_id, "secret_hash": secret_hash})).first() is None:
        return False
    target = RUNNER_REVOKED.target.value
    effects.record(session, _transition(RUNNER_REVOKED, runner_id=runner_id, status=target), entity_type="runner")
    return True


def runner_changed(session: Statements, runner_id: uuid.UUID, what: str) -> None:
    """Record a change of the runner (`what`: "runner-update", "runner-delete", "runner-declaration") on the
    transaction, so that its polls see it (`RUNNER_CHANGED`)."""
    effects.record(session, Transition(what, RUNNER_CHANGED, runner_id=runner_id), entity_type="runner")


_TOUCH_RUNNER = text(
    """
UPDATE runners
   SET last_heartbeat_at = now(),
       status = CASE WHEN current_execution_id IS NULL THEN 'ONLINE' ELSE 'BUSY' END
 WHERE id = :runner_id AND token_epoch = :epoch
RETURNING id, status, enabled, current_execution_id, type, labels, activities"""
)

# Signs of life kept in memory by each hub process (`exekra.hub.runners.liveness`), written once a second:
# the time of the latest sign (as an age, so that the hub's clock does not matter) and the latest metrics on
# the runner's row, and every heartbeat's metrics in the runner's history (`h`). The write never waits for a
# lock: a runner row that a state change (or another hub process's write) holds right now is skipped, and named
# in `skipped` so that the caller keeps its sign for the next write. Waiting made this write a party to
# deadlocks with the state changes (measured: one `complete` in 3,000 answered 500). A runner whose secret was
# replaced since its sign (the epoch) is left alone. Not a state change: status stays as it is (`touch_runner`
# is the one that brings an OFFLINE runner back, at once).
_RECORD_SIGNS = text(
    """
WITH s AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:epochs AS int[]), CAST(:ages AS float8[]),
                         CAST(:measured AS bool[]), CAST(:cpu_percent AS float8[]), CAST(:memory_percent AS float8[]),
                         CAST(:memory_used_mb AS float8[]), CAST(:disk_percent AS float8[]),
                         CAST(:disk_free_gb AS float8[]))
        AS s(id, epoch, age, measured, cpu_percent, memory_percent, memory_used_mb, disk_percent, disk_free_gb)
), locked AS (
    SELECT r.id FROM runners r JOIN s ON s.id = r.id AND s.epoch = r.token_epoch FOR NO KEY UPDATE OF r SKIP LOCKED
), ur AS (
    UPDATE runners r
       SET last_heartbeat_at = greatest(r.last_heartbeat_at, now() - make_interval(secs => s.age)),
           cpu_percent = CASE WHEN s.measured THEN s.cpu_percent ELSE r.cpu_percent END,
           memory_percent = CASE WHEN s.measured THEN s.memory_percent ELSE r.memory_percent END,
           memory_used_mb = CASE WHEN s.measured THEN s.memory_used_mb ELSE r.memory_used_mb END,
           disk_percent = CASE WHEN s.measured THEN s.disk_percent ELSE r.disk_percent END,
           disk_free_gb = CASE WHEN s.measured THEN s.disk_free_gb ELSE r.disk_free_gb END
      FROM s JOIN locked ON locked.id = s.id
     WHERE r.id = s.id
 RETURNING r.id
), h AS (
    SELECT * FROM unnest(CAST(:h_ids AS uuid[]), CAST(:h_ages AS float8[]), CAST(:h_cpu_percent AS float8[]),
                         CAST(:h_memory_percent AS float8[]), CAST(:h_memory_used_mb AS float8[]),
                         CAST(:h_disk_percent AS float8[]), CAST(:h_disk_free_gb AS float8[]))
        AS h(id, age, cpu_percent, memory_percent, memory_used_mb, disk_percent, disk_free_gb)
), m AS (
    INSERT INTO runner_metrics (runner_id, ts, cpu_percent, memory_percent, memory_used_mb, disk_percent, disk_free_gb)
    SELECT h.id, now() - make_interval(secs => h.age), h.cpu_percent, h.memory_percent, h.memory_used_mb,
           h.disk_percent, h.disk_free_gb
      FROM h JOIN ur ON ur.id = h.id
)
SELECT (SELECT count(*) FROM ur) AS written,
       ARRAY(SELECT s.id FROM s JOIN runners r ON r.id = s.id AND r.token_epoch = s.epoch
              WHERE s.id NOT IN (SELECT id FROM locked)) AS skipped"""
)

METRIC_FIELDS = ("cpu_percent", "memory_percent", "memory_used_mb", "disk_percent", "disk_free_gb")


Metrics = dict[str, float | None]


@dataclass(frozen=True)
class SignOfLife:
    """A runner's signs of life not yet written: how long ago the latest was, and each heartbeat's metrics
    (age in seconds, metrics), oldest first."""

    runner_id: uuid.UUID
    epoch: int
    age_seconds: float
    samples: list[tuple[float, Metrics]]


async def record_signs_of_life(session: Statements, signs: list[SignOfLife]) -> tuple[int, set[uuid.UUID]]:
    """Write the runners' latest signs of life and all their metrics in one statement, without waiting for a lock;
    returns how many runners were written, and the runners skipped because their row was locked."""
    latest = [sign.samples[-1][1] if sign.samples else None for sign in signs]
    samples = [(sign.runner_id, age, metrics) for sign in signs for age, metrics in sign.samples]
    params: dict[str, list[Any]] = {
        "ids": [sign.runner_id for sign in signs],
        "epochs": [sign.epoch for sign in signs],
        "ages": [sign.age_seconds for sign in signs],
        "measured": [metrics is not None for metrics in latest],
        "h_ids": [runner_id for runner_id, _, _ in samples],
        "h_ages": [age for _, age, _ in samples],
    }
    for name in METRIC_FIELDS:
        params[name] = [None if metrics is None else metrics.get(name) for metrics in latest]
        params[f"h_{name}"] = [metrics.get(name) for _, _, metrics in samples]
    row = (await session.execute(_RECORD_SIGNS, params)).one()
    return int(row.written), set(row.skipped)


@dataclass(frozen=True)
class RunnerPresence:
    """The runner's row as a sign of life finds it."""

    runner_id: uuid.UUID
    status: str
    enabled: bool
    current_execution_id: uuid.UUID | None
    type: str | None  # what it may run: its type, labels and declared activities
    labels: tuple[str, ...]
    activities: tuple[str, ...]


def presence_of(row: Any) -> RunnerPresence | None:
    """The runner's presence from a row with its id, status, enabled, current execution, type, labels and
    activities (None for no row)."""
    if row is None:
        return None
    return RunnerPresence(
        row.id,
        row.status,
        row.enabled,
        row.current_execution_id,
        row.type,
        tuple(row.labels or ()),
        tuple(row.activities or ()),
    )


async def touch_runner(session: Statements, runner_id: uuid.UUID, epoch: int) -> RunnerPresence | None:
    """An OFFLINE runner's sign of life: it is ONLINE again (or BUSY while it holds work), at once, as a state
    change. None if its token is revoked."""
    result = await session.execute(_TOUCH_RUNNER, {"runner_id": runner_id, "epoch": epoch})
    return presence_of(result.first())


# --- what kind of failure a FAILED execution was -------------------------------------------------------------

TIMED_OUT = "timed out after "
"""How the error of a timed-out execution begins: the runner's kill (`runner/executor.py`) and `HUB_TIMEOUT`."""
RUNNER_LOST_ERROR = "runner lost"
"""The error `RUNNER_LOST` records."""


class FailureKind(StrEnum):
    """What a FAILED execution's end was, as retry policies and alert rules name it."""

    FAILED = "FAILED"  # any other failure: a step failed, no runner in time, not picked up
    TIMEOUT = "TIMEOUT"  # the workflow's `timeoutSeconds` ran out (runner or hub)
    RUNNER_LOST = "RUNNER_LOST"  # its runner went silent while running it


def failure_kind(alias: str) -> str:
    """SQL: the `FailureKind` of the FAILED execution aliased `alias`, from the error its end recorded; the one
    place that tells them apart."""
    return f"""(CASE WHEN {alias}.error LIKE '{TIMED_OUT}%' THEN '{FailureKind.TIMEOUT.value}'
            WHEN {alias}.error = '{RUNNER_LOST_ERROR}' THEN '{FailureKind.RUNNER_LOST.value}'
            ELSE '{FailureKind.FAILED.value}' END)"""


# --- the hub's stale checks (SPEC §4) ------------------------------------------------------------------
#
# Each statement takes at most `limit` candidates, locks them (skipping rows a runner call holds right now:
# the next pass sees them again) and changes them in the same statement, so a check run twice, or by two hub
# processes at once, changes each row once. `:seconds` is the rule's setting; `:not_before` is when this hub
# started: waits for a runner's sign of life count from then at the earliest, since no runner could reach a
# hub that was down (NULL: no floor).


@dataclass(frozen=True)
class StaleCheck:
    """A stale rule, its one conditional update, and the reason it records (`{seconds}` filled in)."""

    rule: Rule[S]
    statement: TextClause
    reason: str


_AGO = "now() - make_interval(secs => :seconds)"
_NOT_BEFORE = "CAST(:not_before AS timestamptz)"
_ENDED = "completed_at = now(), error = c.reason"


def _stale_check(rule: Rule[S], candidates: str, changes: str, reason: str) -> StaleCheck:
    """`candidates` selects (id, runner_id, reason) from `executions x`; they are locked and changed at once."""
    announce = f", {_announce_end(rule, 'ue')}" if rule.effects.ends else ""
    statement = text(
        f"""
WITH c AS ({candidates}
     LIMIT :limit FOR UPDATE OF x SKIP LOCKED
), ue AS (
    UPDATE executions x SET status = '{rule.target.value}', {changes}
      FROM c WHERE x.id = c.id AND {found_in("x", rule.sources)}
 RETURNING x.id, c.runner_id, c.reason, x.has_children, x.workflow_id, x.concurrency_key, x.end_awaited
), {_let_go("ue", many=True)}
SELECT ue.id, ue.runner_id, ue.reason, ue.has_children, ur.status AS runner_status, {concurrency.FREED_COLUMNS}{announce}
  FROM ue LEFT JOIN ur ON ur.id = ue.runner_id {concurrency.freed_join("ue")}"""
    )
    return StaleCheck(rule, statement, reason)


# ASSIGNED and not started: the runner is OFFLINE (or gone), or the pick-up timeout passed.
_NOT_PICKED_UP = f"""
    SELECT x.id, x.runner_id,
           CASE WHEN r.id IS NULL OR r.status = 'OFFLINE' THEN 'runner offline before starting it'
                ELSE CAST(:reason AS text) END {{suffix}} AS reason
      FROM executions x LEFT JOIN runners r ON r.id = x.runner_id
     WHERE x.status = 'ASSIGNED' AND x.requeue_count {{requeued}}
       AND (r.id IS NULL OR r.status = 'OFFLINE' OR greatest(x.assigned_at, {_NOT_BEFORE}) < {_AGO})"""
_CONSTANT_REASON = "SELECT x.id, x.runner_id, CAST(:reason AS text) AS reason FROM executions x"

STALE_CHECKS = {
    check.rule: check
    for check in (
        _stale_check(
            QUEUE_TIMEOUT,
            f"{_CONSTANT_REASON} WHERE x.status = 'QUEUED' AND x.queued_at < {_AGO}",
            _ENDED,
            "no runner available within {seconds:g} s",
        ),
        # Keeps its attempt (the next assignment makes it attempt + 1) and `queued_at`, so its place in the queue.
        _stale_check(
            REQUEUE,
            _NOT_PICKED_UP.format(requeued="= 0", suffix=""),
            "runner_id = NULL, assigned_at = NULL, requeue_count = x.requeue_count + 1",
            "not started within {seconds:g} s",
        ),
        _stale_check(
            PICKUP_FAILED,
            _NOT_PICKED_UP.format(requeued="> 0", suffix="|| ' (already re-queued once)'"),
            _ENDED,
            "not started within {seconds:g} s",
        ),
        # `seconds` here is how long the runner has been silent: the offline delay plus the running grace.
        _stale_check(
            RUNNER_LOST,
            f"""{_CONSTANT_REASON}
     WHERE x.status = 'RUNNING'
       AND NOT EXISTS (SELECT 1 FROM runners r WHERE r.id = x.runner_id
                          AND (r.status <> 'OFFLINE' OR greatest(r.last_heartbeat_at, {_NOT_BEFORE}) >= {_AGO}))""",
            _ENDED,
            RUNNER_LOST_ERROR,
        ),
        _stale_check(
            STOP_UNCONFIRMED,
            f"""{_CONSTANT_REASON}
     WHERE x.status = 'RUNNING' AND x.stop_requested AND greatest(x.stop_requested_at, {_NOT_BEFORE}) < {_AGO}""",
            _ENDED,
            "stopped by the hub: the runner did not confirm the stop within {seconds:g} s",
        ),
        # `seconds` is the grace after the workflow's own timeout, which the runner enforces first.
        _stale_check(
            HUB_TIMEOUT,
            f"""
    SELECT x.id, x.runner_id, '{TIMED_OUT}' || x.timeout_seconds || ' s (hub)' AS reason FROM executions x
     WHERE x.status = 'RUNNING' AND x.timeout_seconds IS NOT NULL
       AND greatest(x.started_at + make_interval(secs => x.timeout_seconds), {_NOT_BEFORE}) < {_AGO}""",
            _ENDED,
            "",
        ),
    )
}


async def apply_stale_rule(
    session: Statements, rule: Rule[S], *, seconds: float, not_before: datetime | None, limit: int
) -> int:
    """Apply one stale rule of SPEC §4 to at most `limit` executions; returns how many it moved."""
    check = STALE_CHECKS[rule]
    reason = check.reason.format(seconds=seconds)
    params = {"seconds": seconds, "not_before": not_before, "reason": reason, "limit": limit}
    rows = (await session.execute(check.statement, params)).all()
    for row in rows:
        transition = _transition(
            rule,
            execution_id=row.id,
            runner_id=row.runner_id,
            runner_idle=row.runner_status == R.ONLINE,
            status=rule.target.value,
            slot=concurrency.freed_group(row),
            has_children=row.has_children,
        )
        details = {"reason": row.reason, "runnerId": str(row.runner_id) if row.runner_id else None}
        effects.record(session, transition, actor=SYSTEM, details=details)
    return len(rows)


_MARK_OFFLINE = text(
    f"""
WITH c AS (
    SELECT id FROM runners
     WHERE status IN {_sources(RUNNER_OFFLINE)} AND greatest(last_heartbeat_at, {_NOT_BEFORE}) < {_AGO}
     LIMIT :limit FOR UPDATE SKIP LOCKED
)
UPDATE runners r SET status = '{RUNNER_OFFLINE.target.value}'
  FROM c WHERE r.id = c.id AND r.status IN {_sources(RUNNER_OFFLINE)}
RETURNING r.id, r.last_heartbeat_at"""
)


async def mark_offline_runners(session: Statements, *, seconds: float, not_before: datetime | None, limit: int) -> int:
    """Runners with neither a heartbeat nor a poll for `seconds` → OFFLINE; returns how many.

    An OFFLINE runner keeps the execution it holds: the stale rules decide what becomes of it.
    """
    rows = (await session.execute(_MARK_OFFLINE, {"seconds": seconds, "not_before": not_before, "limit": limit})).all()
    for row in rows:
        details = {"lastHeartbeatAt": row.last_heartbeat_at.isoformat() if row.last_heartbeat_at else None}
        transition = _transition(RUNNER_OFFLINE, runner_id=row.id, status=RUNNER_OFFLINE.target.value)
        effects.record(session, transition, actor=SYSTEM, entity_type="runner", details=details)
    return len(rows)
