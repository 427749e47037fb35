"""Concurrency limits per workflow: at most `maxConcurrent` of a workflow's executions ASSIGNED or RUNNING at
once, per value of its `concurrencyKey` (a template over the inputs). See docs/queue.md, "Concurrency limits".

An execution's group is fixed when it is created: its workflow and the key template evaluated on its inputs
(`executions.concurrency_key`, "" without a template, NULL while the workflow has no limit). The slots of a group
are one row, `concurrency_slots`, whose `holders` are the group's ASSIGNED and RUNNING executions:

- a claim (`lifecycle.claim_for_runner`, `assign_to_best_runner`) takes a slot in its one statement with
  `INSERT … ON CONFLICT DO UPDATE … WHERE cardinality(holders) < limit`. PostgreSQL locks the row and checks the
  condition on its newest version, so two claims in different processes cannot both take the last slot (a count of
  the executions would be read from the statement's snapshot, and both would see room);
- every rule that takes an execution out of ASSIGNED or RUNNING lets go of its slot in the same statement as it
  frees the runner (`release_slots`), and its transition carries the group, whose waiting executions are offered
  after the commit (`Effects.frees_slot`).

Executions of workflows without a limit have no group: their claims and ends touch no slot row. This module holds
the SQL both sides share, and the reads that dispatch, the waiting reason and the workflow settings need.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import TextClause, text

from exekra.db.raw import Statements
from exekra.hub.errors import ValidationFailed
from exekra.workflow import expressions

MAX_KEY_LENGTH = 200
"""The longest key value an execution may get: a longer one is refused at creation (422)."""
MAX_OFFERED = 100
"""At most this many waiting executions of one group are offered when its slots free (a limit raised or removed)."""
NO_LIMIT = 2147483647  # a group whose workflow lost its limit: every claim still takes (and counts) a slot

SLOTS_TAKEN_CHECK = f"""cardinality(cs.holders) < coalesce(
        (SELECT w.max_concurrent FROM workflows w WHERE w.id = cs.workflow_id), {NO_LIMIT})"""


def key_template_problem(template: str) -> str | None:
    """Why `template` cannot be a workflow's concurrency key (None: it can): it must parse and read only `inputs`."""
    problem = expressions.syntax_problem(template)
    if problem is not None:
        return problem
    other = expressions.variables(template) - {"inputs"}
    if other:
        return f"a concurrency key may read only inputs, not {', '.join(sorted(other))}"
    return None


def group_key(template: str | None, inputs: Mapping[str, Any]) -> str:
    """An execution's key value: `template` evaluated on its inputs ("" without a template). 422 when the
    inputs do not give it one, or give one longer than `MAX_KEY_LENGTH`."""
    if not template:
        return ""
    try:
        value = expressions.evaluate(template, {"inputs": inputs})
    except (TemplateError, TypeError, ValueError, LookupError, ArithmeticError) as exc:
        raise ValidationFailed(f"concurrencyKey: cannot evaluate {template!r}: {exc}") from None
    key = "" if value is None else str(value)
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(f"concurrencyKey: the value is {len(key)} characters; at most {MAX_KEY_LENGTH}")
    return key


def has_room(execution: str) -> str:
    """SQL: the execution aliased `execution` has no group, or its group has a free slot, as the statement's
    snapshot sees it. The claims' filter (a claim then takes the slot under the row's lock) and the waiting
    reason's test. Evaluated only for executions with a group: the others pay nothing."""
    x = execution
    return f"""({x}.concurrency_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM concurrency_slots cs JOIN workflows cw ON cw.id = cs.workflow_id
         WHERE cs.workflow_id = {x}.workflow_id AND cs.key = {x}.concurrency_key
           AND cardinality(cs.holders) >= cw.max_concurrent))"""


def take_slot(execution: str, runner: str) -> str:
    """SQL, CTE `s`: the execution of CTE `execution` (columns id, workflow_id, concurrency_key) takes a slot of
    its group when CTE `runner` found a runner for it. A row of `s` means taken; none, for an execution with a
    group, means its group is full (as its locked row says now, whatever the snapshot said)."""
    return f"""s AS (
    INSERT INTO concurrency_slots AS cs (workflow_id, key, holders)
    SELECT {execution}.workflow_id, {execution}.concurrency_key, ARRAY[{execution}.id] FROM {execution}, {runner}
     WHERE {execution}.concurrency_key IS NOT NULL
    ON CONFLICT (workflow_id, key) DO UPDATE SET holders = cs.holders || EXCLUDED.holders
     WHERE {SLOTS_TAKEN_CHECK}
 RETURNING cs.workflow_id
)"""


def release_slots(source: str, *, many: bool) -> str:
    """SQL, CTE `us`: the executions of CTE `source` (columns id, workflow_id, concurrency_key) that held a slot
    let go of it; one row per group that had one freed (workflow_id, key).

    `many`: `source` may hold several executions of one group (a stale check), released together since an UPDATE
    changes a row once per statement, with the groups in one order so that two such statements lock them alike.
    Otherwise (one execution: a runner's end, a stop) the release is a plain `array_remove`, which costs an
    execution without a group nothing measurable (bench/RESULTS.md)."""
    if not many:
        return f"""us AS (
    UPDATE concurrency_slots cs SET holders = array_remove(cs.holders, {source}.id)
      FROM {source}
     WHERE {source}.concurrency_key IS NOT NULL
       AND cs.workflow_id = {source}.workflow_id AND cs.key = {source}.concurrency_key
       AND {source}.id = ANY(cs.holders)
 RETURNING cs.workflow_id, cs.key
)"""
    return f"""us AS (
    UPDATE concurrency_slots cs
       SET holders = ARRAY(SELECT h FROM unnest(cs.holders) AS h WHERE h <> ALL(g.ids))
      FROM (SELECT workflow_id, concurrency_key, array_agg(id) AS ids FROM {source}
             WHERE concurrency_key IS NOT NULL GROUP BY workflow_id, concurrency_key
             ORDER BY workflow_id, concurrency_key) AS g
     WHERE cs.workflow_id = g.workflow_id AND cs.key = g.concurrency_key AND cs.holders && g.ids
 RETURNING cs.workflow_id, cs.key
)"""


FREED_COLUMNS = "us.workflow_id AS slot_workflow_id, us.key AS slot_key"
"""The select-list items of an ending statement that name the group it freed a slot of (NULL: none)."""


def freed_join(source: str) -> str:
    """SQL: join an ending statement's rows of CTE `source` with the groups `release_slots` freed."""
    return f"LEFT JOIN us ON us.workflow_id = {source}.workflow_id AND us.key = {source}.concurrency_key"


@dataclass(frozen=True)
class Group:
    """A concurrency group: a workflow and a key value (None: every group of the workflow)."""

    workflow_id: uuid.UUID
    key: str | None


def freed_group(row: Any) -> Group | None:
    """The group whose slot an ending statement's row freed (`FREED_COLUMNS`), if any."""
    return None if row.slot_workflow_id is None else Group(row.slot_workflow_id, row.slot_key)


# The waiting executions of one group that its free slots can take now, best first.
_NEXT_IN_GROUP = f"""
SELECT {{columns}} FROM executions x
 WHERE x.workflow_id = :workflow_id AND x.concurrency_key = :key AND x.status = 'QUEUED'
 ORDER BY x.priority DESC, x.queued_at, x.id
 LIMIT greatest(0, least({MAX_OFFERED},
     coalesce((SELECT max_concurrent FROM workflows WHERE id = :workflow_id), {MAX_OFFERED})
     - coalesce((SELECT cardinality(holders) FROM concurrency_slots WHERE workflow_id = :workflow_id AND key = :key), 0)))"""

_WAITING_KEYS = text(
    """
SELECT DISTINCT concurrency_key AS key FROM executions
 WHERE workflow_id = :workflow_id AND status = 'QUEUED' AND concurrency_key IS NOT NULL"""
)


def next_in_group_statement(columns: str) -> TextClause:
    """The statement that reads `columns` (of `executions x`) of a group's executions its free slots can take."""
    return text(_NEXT_IN_GROUP.format(columns=columns))


async def waiting_keys(session: Statements, group: Group) -> list[str]:
    """The keys of `group` with waiting executions: the group's own, or every one of its workflow."""
    if group.key is not None:
        return [group.key]
    return [row.key for row in (await session.execute(_WAITING_KEYS, {"workflow_id": group.workflow_id})).all()]


# When a limit is set on a workflow that had none, its live executions join the workflow's keyless group: the
# queued ones wait for a slot, and the ASSIGNED or RUNNING ones hold one (a claim that assigns one meanwhile
# holds its row, which this waits for and then sees ASSIGNED). Executions keep a key they already have.
_JOIN_GROUP = text(
    """
WITH g AS (
    UPDATE executions SET concurrency_key = ''
     WHERE workflow_id = :workflow_id AND concurrency_key IS NULL AND status IN ('QUEUED','ASSIGNED','RUNNING')
 RETURNING id, status
)
INSERT INTO concurrency_slots AS cs (workflow_id, key, holders)
SELECT :workflow_id, '', coalesce(array_agg(id) FILTER (WHERE status <> 'QUEUED'), '{}') FROM g
ON CONFLICT (workflow_id, key) DO UPDATE SET holders = cs.holders || EXCLUDED.holders"""
)


async def limit_live_executions(session: Statements, workflow_id: uuid.UUID) -> None:
    """A limit was just set on the workflow: its live executions without a group join the keyless one."""
    await session.execute(_JOIN_GROUP, {"workflow_id": workflow_id})


# For each queued execution with a group that is full now: its workflow's limit and how many hold a slot.
_FULL_GROUPS = text(
    """
SELECT x.id, x.concurrency_key AS key, w.max_concurrent, cardinality(cs.holders) AS running
  FROM executions x
  JOIN workflows w ON w.id = x.workflow_id
  JOIN concurrency_slots cs ON cs.workflow_id = x.workflow_id AND cs.key = x.concurrency_key
 WHERE x.id = ANY(:ids) AND x.status = 'QUEUED' AND cardinality(cs.holders) >= w.max_concurrent"""
)


LIMIT_REACHED = "concurrency limit reached"
"""How the waiting reason of an execution whose group is full begins."""


def limit_reason(limit: int, running: int, key: str) -> str:
    """The waiting reason of an execution whose group is full."""
    where = f" for key {key!r}" if key else ""
    return f"{LIMIT_REACHED}: {running} of {limit} running{where}"


async def held_by_limit(session: Statements, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Those of `ids` that are QUEUED in a full group, with their waiting reason."""
    if not ids:
        return {}
    rows = (await session.execute(_FULL_GROUPS, {"ids": ids})).all()
    return {row.id: limit_reason(row.max_concurrent, row.running, row.key) for row in rows}
