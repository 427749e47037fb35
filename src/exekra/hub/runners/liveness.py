"""Signs of life are not transactions: a hub process keeps its runners' latest heartbeats and polls in memory and
writes them to PostgreSQL in one statement a second.

Liveness needs no per-request durability: a runner is OFFLINE after `EXEKRA_RUNNER_OFFLINE_SECONDS` (120 s)
without a sign, so a sign written up to a second late changes nothing, and a hub that crashes loses at most
its last second of them, which leaves every runner that showed a sign within the last `offline - 1` seconds
ONLINE. What stays immediate:

- the token check: each sign reads the runner's row (one round trip, no transaction), so a token revoked a
  moment ago is refused at once; but a long poll's quiet renewal, a heartbeat answered from a waiting idle poll,
  and one answered from the note of the runner's last full heartbeat, read nothing: the revocation wakes the
  runner, and its next sign reads the row (`exekra.hub.dispatch.wakeups`);
- state changes: a runner found OFFLINE is brought back at once (`lifecycle.touch_runner`, a transaction),
  since a claim needs it ONLINE; assignment, start and end are fenced transitions as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.auth.security import RunnerClaims
from exekra.hub.dispatch.handed import HELD_FROM, held_columns, poll_answer
from exekra.hub.errors import TRANSIENT_ERRORS, NotAuthenticated
from exekra.hub.lifecycle import Metrics, RunnerPresence, SignOfLife
from exekra.hub.runners.models import RunnerStatus
from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

# Heartbeats' metrics kept per runner between two writes: a runner heartbeats every few seconds at the most,
# so this only bounds memory while the database is down (the oldest are kept, the rest dropped).
MAX_SAMPLES = 100

# The runner as a sign of life finds it, in one read without a lock: a heartbeat's also with the live executions it
# holds whose stop was requested (its answer), a poll's with the live execution it holds as the poll answers it
# (`held_*`: a full poll reads nothing else). Two statements, each planned for its own use, not one whose parts a
# parameter switches off: PostgreSQL keeps a prepared statement's generic plan on the connection, and the one
# statement, planned by heartbeats while the executions table was small, then scanned the whole table for every poll
# (measured: bench/RESULTS.md, 2026-12-06 05:23).
_RUNNER_COLUMNS = """SELECT r.id, r.status, r.enabled, r.current_execution_id, r.type, r.labels, r.activities,
       r.catalogue_digest, r.token_epoch"""
_HEARTBEAT_READ = text(
    f"""{_RUNNER_COLUMNS},
       CASE WHEN r.current_execution_id IS NOT NULL THEN ARRAY(
           SELECT x.id FROM executions x
            WHERE x.runner_id = r.id AND x.status IN ('ASSIGNED', 'RUNNING') AND x.stop_requested)
       END AS stop_ids
  FROM runners r
 WHERE r.id = :runner_id"""
)
_POLL_READ = text(
    f"""{_RUNNER_COLUMNS}, h.*
  FROM runners r
  LEFT JOIN LATERAL (
       SELECT {held_columns("held_")} FROM {HELD_FROM}
        WHERE e.id = r.current_execution_id AND e.runner_id = r.id AND e.status IN ('ASSIGNED', 'RUNNING')) h ON true
 WHERE r.id = :runner_id"""
)


@dataclass
class _Pending:
    epoch: int
    at: float  # time.monotonic() of the latest sign
    samples: list[tuple[float, Metrics]] = field(default_factory=list)  # each heartbeat's (monotonic time, metrics)


@dataclass(frozen=True)
class Sign:
    """What a sign of life answers: the runner as it is, and (for a heartbeat) the stops it must carry out."""

    presence: RunnerPresence
    stop_ids: list[uuid.UUID]
    catalogue_digest: str | None  # of the runner's declaration, as the hub holds it
    held: dict[str, Any] | None = None  # (for a poll) the live execution the runner holds, as the poll answers it


class Liveness:
    """One hub process's signs of life: read the runner, remember the sign, write all of them once a second."""

    def __init__(self, db: Database, *, interval: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self._pending: dict[uuid.UUID, _Pending] = {}
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # one write at a time: see `flush`

    async def sign(self, claims: RunnerClaims, metrics: Metrics | None = None, *, poll: bool = False) -> Sign:
        """A heartbeat (with `metrics`; its answer's stops) or a poll's (`poll`: the execution the runner holds).
        NotAuthenticated if the token was revoked."""
        runner_id = claims.runner_id
        async with self.db.reading() as session:
            row = (await session.execute(_POLL_READ if poll else _HEARTBEAT_READ, {"runner_id": runner_id})).first()
        if row is None or row.token_epoch != claims.epoch:
            raise NotAuthenticated("Runner token revoked: authenticate again")
        presence = lifecycle.presence_of(row)
        if row.status == RunnerStatus.OFFLINE:
            async with self.db.statements() as session:
                presence = await lifecycle.touch_runner(session, runner_id, claims.epoch)
        if presence is None:
            raise NotAuthenticated("Runner token revoked: authenticate again")
        self.renew(claims, metrics)
        if not poll:
            return Sign(presence, list(row.stop_ids or ()), row.catalogue_digest)
        held = poll_answer(row, "held_") if row.held_id is not None else None
        return Sign(presence, [], row.catalogue_digest, held)

    def renew(self, claims: RunnerClaims, metrics: Metrics | None = None) -> None:
        """Remember a sign of life, to be written with the next flush; without reading the runner's row: for a
        poll that renews quietly, or a heartbeat answered from a waiting poll or from the note of the runner's last
        full heartbeat (`exekra.hub.dispatch.wakeups`), whose read of the row still holds."""
        now = time.monotonic()
        pending = self._pending.get(claims.runner_id)
        if pending is None or pending.epoch != claims.epoch:
            pending = self._pending[claims.runner_id] = _Pending(claims.epoch, now)
        pending.at = now
        if metrics is not None and len(pending.samples) < MAX_SAMPLES:
            pending.samples.append((now, metrics))

    @property
    def pending(self) -> int:
        """Signs held in memory, not yet written."""
        return len(self._pending)

    async def flush(self) -> int:
        """Write every sign held so far in one statement; returns how many runners were written. The signs of
        runners whose row was locked at that moment, and all of them on a database error, are kept for the next
        flush (newer signs of the same runners are merged with them).

        A write in flight (the loop's) is waited for first: when this returns, every sign received before the call
        is written, or kept as above. Otherwise a caller that must see them written (the stale checks) could find
        nothing held, while the write that holds them has not committed yet."""
        async with self._flushing:
            return await self._write()

    async def _write(self) -> int:
        if not self._pending:
            return 0
        taken, self._pending = self._pending, {}
        now = time.monotonic()
        signs = [
            SignOfLife(rid, p.epoch, max(0.0, now - p.at), [(max(0.0, now - at), m) for at, m in p.samples])
            for rid, p in taken.items()
        ]
        try:
            async with self.db.statements() as session:
                written, skipped = await lifecycle.record_signs_of_life(session, signs)
        except BaseException:
            self._keep(taken)
            raise
        self._keep({runner_id: taken[runner_id] for runner_id in skipped})
        return written

    def _keep(self, held: dict[uuid.UUID, _Pending]) -> None:
        """Put back signs that were not written, behind any newer ones of the same runner."""
        for runner_id, sign in held.items():
            newer = self._pending.get(runner_id)
            if newer is None:
                self._pending[runner_id] = sign
            elif newer.epoch == sign.epoch:
                newer.samples[:0] = sign.samples[: MAX_SAMPLES - len(newer.samples)]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="exekra-liveness")

    async def stop(self) -> None:
        """Stop the loop and write what is held (a clean shutdown loses no sign)."""
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except TRANSIENT_ERRORS as exc:
                log.warning("could not write runners' signs of life (kept for the next try): %s", exc)
