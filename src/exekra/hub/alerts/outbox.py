"""The alert outbox: events become deliveries, and delivery workers claim, send and settle them.

- `collect_execution_events` / `collect_runner_offline`: one INSERT … SELECT each, from the executions and
  runners tables (the source of truth) into `alert_events`, unique on (rule, source): an execution's end or a
  runner's offline episode becomes an event of a rule once, whichever hub process sees it and however often.
- `route`: in the same transaction, each new event joins a delivery: the first of a cool-down window goes out
  at once (ALERT), later ones join the window's DIGEST, due when the window ends.
- `claim` / `settle`: a worker takes due deliveries with `FOR UPDATE SKIP LOCKED` and a lease, so two hub
  processes never send the same one at once; the result is written only if the claim is still the worker's
  (status SENDING and the same attempt), like the lifecycle's fenced updates.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.locks import ALERTS_COLLECT_LOCK
from exekra.hub import lifecycle
from exekra.hub.alerts.models import (
    AlertChannel,
    AlertDelivery,
    AlertEvent,
    AlertEventType,
    AlertRule,
    DeliveryKind,
    DeliveryStatus,
)
from exekra.hub.audit import service as audit
from exekra.hub.lifecycle import FailureKind

EVENTS_IN_PAYLOAD = 50
MAX_RETRY_SECONDS = 3600.0
LEASE_SECONDS = 120.0

_COLLECT_EXECUTIONS = text(f"""
INSERT INTO alert_events (id, rule_id, type, source_key, occurred_at, execution_id, workflow_id, runner_id, details)
SELECT gen_random_uuid(), r.id, k.type, x.id::text, x.completed_at, x.id, x.workflow_id, x.runner_id,
       jsonb_build_object('workflowName', w.name, 'status', x.status, 'error', left(x.error, 2000),
                          'runnerName', u.name)
  FROM executions x
  JOIN workflows w ON w.id = x.workflow_id
  LEFT JOIN runners u ON u.id = x.runner_id
 CROSS JOIN LATERAL (SELECT CASE WHEN x.status = 'STOPPED' THEN 'STOPPED'
                                 WHEN {lifecycle.failure_kind("x")} = '{FailureKind.TIMEOUT.value}' THEN 'TIMEOUT'
                                 ELSE 'FAILED' END AS type) k
  JOIN alert_rules r ON r.enabled AND k.type = ANY(r.events)
                    AND (r.workflow_id IS NULL OR r.workflow_id = x.workflow_id)
                    AND x.completed_at >= r.created_at
 WHERE x.status IN ('FAILED','STOPPED') AND x.completed_at > :since
   -- evaluated once: without an enabled rule the executions are not read at all
   AND EXISTS (SELECT 1 FROM alert_rules WHERE enabled)
ON CONFLICT (rule_id, source_key) DO NOTHING
RETURNING id, rule_id
""")

# One offline episode is one event: its key is the runner and the last sign of life before it.
_COLLECT_OFFLINE = text("""
INSERT INTO alert_events (id, rule_id, type, source_key, occurred_at, runner_id, details)
SELECT gen_random_uuid(), r.id, 'RUNNER_OFFLINE', u.id::text || '@' || extract(epoch FROM s.seen)::text,
       s.seen + make_interval(mins => r.offline_minutes), u.id,
       jsonb_build_object('runnerName', u.name, 'lastSeenAt', s.seen, 'offlineMinutes', r.offline_minutes)
  FROM runners u
 CROSS JOIN LATERAL (SELECT coalesce(u.last_heartbeat_at, u.created_at) AS seen) s
  JOIN alert_rules r ON r.enabled AND 'RUNNER_OFFLINE' = ANY(r.events)
 WHERE u.status = 'OFFLINE' AND u.enabled AND s.seen < now() - make_interval(mins => r.offline_minutes)
   -- an episode older than the retention was alerted long ago, and its event may have been purged since
   AND s.seen > now() - make_interval(days => :retention_days)
ON CONFLICT (rule_id, source_key) DO NOTHING
RETURNING id, rule_id
""")

# Collections are serialised cluster-wide for the length of their transaction: the routing of one rule's
# events then always sees the deliveries the previous collection made.
_COLLECT_LOCK = text(f"SELECT pg_advisory_xact_lock({ALERTS_COLLECT_LOCK})")
# Without an enabled rule a collection takes no lock and reads no execution.
_NOW_AND_ANY_RULE = text("SELECT now() AS now, EXISTS (SELECT 1 FROM alert_rules WHERE enabled) AS any_rule")

_CLAIM = text("""
UPDATE alert_deliveries d SET status = 'SENDING', attempts = d.attempts + 1, lease_until = :lease_until
 WHERE d.id IN (SELECT id FROM alert_deliveries
                 WHERE status IN ('PENDING','SENDING') AND next_attempt_at <= :now
                   AND (status = 'PENDING' OR lease_until < :now)
                 ORDER BY next_attempt_at
                 LIMIT :limit
                   FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.attempts
""")


async def collect_execution_events(
    session: AsyncSession, since: datetime | None, lookback_seconds: float, now: datetime
) -> tuple[int, datetime]:
    """Events for the executions that FAILED (TIMEOUT when they timed out) or were STOPPED after `since`
    (the database's clock; None: `lookback_seconds` ago), routed into deliveries. Returns how many were new,
    and the database's time the look started at."""
    look = (await session.execute(_NOW_AND_ANY_RULE)).one()
    started: datetime = look.now
    if not look.any_rule:
        return 0, started
    await session.execute(_COLLECT_LOCK)
    since = since or started - timedelta(seconds=lookback_seconds)
    rows = (await session.execute(_COLLECT_EXECUTIONS, {"since": since})).all()
    await route(session, [row.id for row in rows], now)
    return len(rows), started


async def collect_runner_offline(session: AsyncSession, now: datetime, retention_days: int) -> int:
    """Events for runners OFFLINE longer than a rule's `offlineMinutes`, once per offline episode (an episode
    that began more than `retention_days` ago is not looked at: its event may have been purged)."""
    if not (await session.execute(_NOW_AND_ANY_RULE)).one().any_rule:
        return 0
    await session.execute(_COLLECT_LOCK)
    rows = (await session.execute(_COLLECT_OFFLINE, {"retention_days": retention_days})).all()
    await route(session, [row.id for row in rows], now)
    return len(rows)


def new_delivery(
    channel_id: uuid.UUID, rule_id: uuid.UUID | None, kind: DeliveryKind, due: datetime, now: datetime
) -> AlertDelivery:
    """A delivery to send at `due`, not yet attempted (a rule's, or a channel's test message without a rule)."""
    return AlertDelivery(
        id=uuid.uuid4(),
        rule_id=rule_id,
        channel_id=channel_id,
        kind=kind,
        status=DeliveryStatus.PENDING,
        event_count=0,
        attempts=0,
        next_attempt_at=due,
        created_at=now,
        history=[],
    )


async def _open_digest(session: AsyncSession, rule: AlertRule) -> AlertDelivery | None:
    """The rule's digest of its current window, if one is still waiting (not yet claimed)."""
    query = (
        select(AlertDelivery)
        .where(
            AlertDelivery.rule_id == rule.id,
            AlertDelivery.kind == DeliveryKind.DIGEST,
            AlertDelivery.status == DeliveryStatus.PENDING,
            AlertDelivery.attempts == 0,
            AlertDelivery.next_attempt_at == rule.window_ends_at,
        )
        .with_for_update()
    )
    return (await session.execute(query)).scalars().first()


async def route(session: AsyncSession, event_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Give each new event its delivery, rule by rule (each rule row locked while its window is read):

    - no cool-down, or the rule's window is over: a delivery of its own, due now; it opens a new window;
    - inside the window: the window's digest, due when the window ends.
    """
    if not event_ids:
        return
    events = (
        (await session.execute(select(AlertEvent).where(AlertEvent.id.in_(event_ids)).order_by(AlertEvent.occurred_at)))
        .scalars()
        .all()
    )
    by_rule: dict[uuid.UUID, list[AlertEvent]] = {}
    for event in events:
        by_rule.setdefault(event.rule_id, []).append(event)
    for rule_id in sorted(by_rule):
        # FOR NO KEY UPDATE: the events inserted for this rule hold a key-share lock on it (their foreign key)
        rule = await session.get(AlertRule, rule_id, with_for_update={"key_share": True})
        assert rule is not None
        digest: AlertDelivery | None = None
        for event in by_rule[rule_id]:
            window = rule.window_ends_at
            if rule.cooldown_seconds == 0 or window is None or now >= window:
                delivery = new_delivery(rule.channel_id, rule.id, DeliveryKind.ALERT, now, now)
                session.add(delivery)
                if rule.cooldown_seconds:
                    rule.window_ends_at = now + timedelta(seconds=rule.cooldown_seconds)
                    digest = None
            else:
                if digest is None:
                    digest = await _open_digest(session, rule)
                if digest is None:
                    digest = new_delivery(rule.channel_id, rule.id, DeliveryKind.DIGEST, window, now)
                    session.add(digest)
                delivery = digest
            delivery.event_count += 1
            event.delivery_id = delivery.id
        await session.flush()


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds until its lease ends: send `payload` to `channel`, then settle it."""

    id: uuid.UUID
    attempt: int
    payload: dict[str, Any]
    channel: AlertChannel | None


async def claim(session: AsyncSession, now: datetime, limit: int) -> list[Claimed]:
    """Take up to `limit` due deliveries (or ones whose worker's lease ran out); a digest's message is fixed
    now, with the events its window gathered."""
    params = {"now": now, "lease_until": now + timedelta(seconds=LEASE_SECONDS), "limit": limit}
    rows = (await session.execute(_CLAIM, params)).all()
    claimed = []
    for row in rows:
        delivery = await session.get(AlertDelivery, row.id, populate_existing=True)
        assert delivery is not None
        if delivery.payload is None:
            delivery.payload = await _message(session, delivery)
        channel = None if delivery.channel_id is None else await session.get(AlertChannel, delivery.channel_id)
        claimed.append(Claimed(delivery.id, row.attempts, delivery.payload, channel))
    await session.flush()
    return claimed


async def _message(session: AsyncSession, delivery: AlertDelivery) -> dict[str, Any]:
    """The JSON payload of a delivery: its rule, how many events, the first `EVENTS_IN_PAYLOAD`, and a text."""
    count, first, last = (
        await session.execute(
            select(func.count(), func.min(AlertEvent.occurred_at), func.max(AlertEvent.occurred_at)).where(
                AlertEvent.delivery_id == delivery.id
            )
        )
    ).one()
    grouped = await session.execute(
        select(AlertEvent.type, func.count()).where(AlertEvent.delivery_id == delivery.id).group_by(AlertEvent.type)
    )
    types: Counter[str] = Counter({row[0]: row[1] for row in grouped})
    listed = (
        (
            await session.execute(
                select(AlertEvent)
                .where(AlertEvent.delivery_id == delivery.id)
                .order_by(AlertEvent.occurred_at, AlertEvent.id)
                .limit(EVENTS_IN_PAYLOAD)
            )
        )
        .scalars()
        .all()
    )
    rule = None if delivery.rule_id is None else await session.get(AlertRule, delivery.rule_id)
    rule_name = rule.name if rule is not None else "(deleted rule)"
    events = [_event_to_api(e) for e in listed]
    return {
        "id": str(delivery.id),
        "kind": delivery.kind,
        "rule": None if rule is None else {"id": str(rule.id), "name": rule.name},
        "count": count,
        "firstAt": _iso(first),
        "lastAt": _iso(last),
        "events": events,
        "eventsOmitted": max(0, count - len(events)),
        "text": _text(delivery.kind, rule_name, count, first, types, events),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _event_to_api(event: AlertEvent) -> dict[str, Any]:
    details = event.details
    return {
        "id": str(event.id),
        "type": event.type,
        "occurredAt": _iso(event.occurred_at),
        "executionId": None if event.execution_id is None else str(event.execution_id),
        "workflowId": None if event.workflow_id is None else str(event.workflow_id),
        "workflowName": details.get("workflowName"),
        "runnerId": None if event.runner_id is None else str(event.runner_id),
        "runnerName": details.get("runnerName"),
        "error": details.get("error"),
        "lastSeenAt": details.get("lastSeenAt"),
    }


def _describe(event: dict[str, Any]) -> str:
    kind = event["type"]
    if kind == AlertEventType.RUNNER_OFFLINE:
        return f"Runner {event['runnerName']} is offline (last seen {event['lastSeenAt']})"
    verb = {"FAILED": "failed", "TIMEOUT": "timed out", "STOPPED": "was stopped"}[kind]
    text = f"Workflow {event['workflowName']} {verb} (execution {event['executionId']})"
    if event["error"] and kind != AlertEventType.STOPPED:
        text += f": {event['error']}"
    return text


_PLURALS = {"FAILED": "failures", "TIMEOUT": "timeouts", "STOPPED": "stops", "RUNNER_OFFLINE": "runners offline"}


def _text(
    kind: str, rule: str, count: int, first: datetime | None, types: Counter[str], events: list[dict[str, Any]]
) -> str:
    if kind == DeliveryKind.ALERT and events:
        return f"[{rule}] {_describe(events[0])}"
    subjects = sorted({e["workflowName"] or e["runnerName"] or "?" for e in events})
    what = ", ".join(f"{n} {_PLURALS.get(t, t)}" for t, n in sorted(types.items()))
    since = first.strftime("%Y-%m-%d %H:%M:%S UTC") if first else "?"
    return f"[{rule}] {count} more: {what} of {', '.join(subjects)} since {since}"


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: ok, or the HTTP status and/or the error."""

    ok: bool
    http_status: int | None = None
    error: str | None = None


def retry_delay(attempt: int, base_seconds: float) -> float:
    """Exponential backoff: `base`, then twice, four times as long … after attempts 1, 2, 3 …, at most an hour."""
    return float(min(base_seconds * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


async def settle(
    session: AsyncSession,
    claimed: Claimed,
    outcome: Outcome,
    now: datetime,
    *,
    max_attempts: int,
    retry_base_seconds: float,
) -> DeliveryStatus | None:
    """Write the attempt's result, if the claim is still this worker's (else None: the lease ran out and
    another worker took it over). A failure is retried with backoff, and given up (FAILED, audited) after
    `max_attempts`."""
    entry = {"at": _iso(now), "ok": outcome.ok, "httpStatus": outcome.http_status, "error": outcome.error}
    values: dict[str, Any] = {
        "lease_until": None,
        "last_http_status": outcome.http_status,
        "last_error": outcome.error,
        "history": AlertDelivery.history.op("||")(type_coerce([entry], JSONB)),
    }
    if outcome.ok:
        status = DeliveryStatus.SENT
        values["sent_at"] = now
    elif claimed.attempt >= max_attempts:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
        values["next_attempt_at"] = now + timedelta(seconds=retry_delay(claimed.attempt, retry_base_seconds))
    fenced = (
        update(AlertDelivery)
        .where(
            AlertDelivery.id == claimed.id,
            AlertDelivery.status == DeliveryStatus.SENDING,
            AlertDelivery.attempts == claimed.attempt,
        )
        .values(status=status, **values)
    )
    if (await session.execute(fenced)).rowcount == 0:  # type: ignore[attr-defined]
        return None
    if status == DeliveryStatus.FAILED:
        details = {"attempts": claimed.attempt, "error": outcome.error, "httpStatus": outcome.http_status}
        audit.record(session, audit.SYSTEM, "alert.delivery.failed", "alert_delivery", claimed.id, details)
    return status
