"""The execution service: the one way in for everything that creates, stops, runs or reads an execution.

Built once per hub process (`exekra.hub.app.build_hub`) and called by the API routes, the dashboard, the
triggers and the maintenance loop. It opens the transactions and applies the rules of `lifecycle`; what a
rule brings with it (dispatch, the Redis queue, waking a runner, the audit row, the end's announcement)
follows from the rule's declared effects once the transaction commits (`exekra.hub.effects`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub import lifecycle, observability
from exekra.hub.artifacts import service as artifacts
from exekra.hub.artifacts.models import Artifact
from exekra.hub.artifacts.service import ArtifactUpload
from exekra.hub.audit.service import SYSTEM, Actor
from exekra.hub.auth.security import RunnerClaims
from exekra.hub.credentials.service import credential_for_runner
from exekra.hub.dispatch.dispatcher import Dispatcher, DuplicateMirror
from exekra.hub.dispatch.handed import answer_for
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.dispatch.wakeups import PollSignal
from exekra.hub.effects import Transition
from exekra.hub.errors import TRANSIENT_ERRORS, Conflict, Forbidden, NotAuthenticated, PayloadTooLarge
from exekra.hub.executions import children, creation, queries, retries
from exekra.hub.executions.children import ChildRequest
from exekra.hub.executions.creation import Created, ExecutionRequest
from exekra.hub.executions.endings import Endings
from exekra.hub.executions.follow import LogEvent, LogFollowers
from exekra.hub.executions.models import TERMINAL_STATUSES, Execution, ExecutionLog, ExecutionStatus
from exekra.hub.executions.names import names_of
from exekra.hub.executions.queries import ExecutionFilter, ExecutionView, LogLine, Page
from exekra.hub.executions.stale import StaleReport, check_stale
from exekra.hub.listener import Listener
from exekra.hub.lookup import get_or_404, parse_id
from exekra.hub.runners.liveness import Liveness
from exekra.hub.runners.service import Declaration, record_declaration
from exekra.workflow.definition import referenced_credentials


@dataclass(frozen=True)
class Heartbeat:
    """A heartbeat's answer: the runner's status, the executions it must stop, and whether the hub wants its
    catalogue again."""

    status: str
    stop_execution_ids: list[uuid.UUID]
    catalogue_wanted: bool


class ExecutionService:
    """Creating, stopping and retrying executions; the hub's side of the runner protocol; the stale rules."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        dispatcher: Dispatcher,
        listener: Listener,
        *,
        secret_key: bytes,
        dedup: DuplicateMirror | None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.dispatcher = dispatcher
        self.endings = Endings(listener)
        self.followers = LogFollowers(settings, listener, self.endings)
        self.secret_key = secret_key
        self.dedup = dedup  # the Redis mirror of idempotency keys, when Redis is configured
        self.workflows = creation.Remembered()  # what creates read of the workflows they run
        self.liveness = Liveness(db, interval=settings.liveness_flush_seconds)
        self.closing = False
        self.held_reads = 0  # `?wait=` reads waiting for an execution to end in this process

    def close(self) -> None:
        """The hub is shutting down: held long polls answer 204 and held reads answer now."""
        self.closing = True
        self.endings.notify_all()
        self.dispatcher.wakeups.notify_all()

    # --- users, triggers, retries ---------------------------------------------------------------------

    async def create(self, request: ExecutionRequest, actor: Actor) -> Created:
        """Queue an execution (never waits for a runner); a repeated idempotency key returns the first one.

        The same duplicate handling for every way in: the Redis mirror answers a repeated key before
        PostgreSQL is asked, and PostgreSQL's unique key enforces it. The key answers for
        `request.key_window_seconds` (default `EXEKRA_DEDUP_WINDOW_SECONDS`); the mirror holds it for the
        hub's window at most, so that Redis keeps nothing for long.
        """
        workflow_id = parse_id(request.workflow_id, "workflow")
        key = request.idempotency_key
        window = self.settings.dedup_window_seconds
        if request.key_window_seconds is not None:
            window = request.key_window_seconds
        mirror = self.dedup if key and window > 0 else None
        if mirror is not None and key:
            mirrored = await mirror.find_duplicate(workflow_id, key)
            if mirrored is not None:
                async with self.db.session() as session:
                    existing = await session.get(Execution, mirrored)
                if existing is not None:
                    return Created(existing, duplicate=True)
        # PostgreSQL stamps the key when the insert runs, never before this: the mirror's copy, counted from
        # here, expires no later than PostgreSQL's window.
        started = time.monotonic()
        for _ in range(3):  # a key another request won, and a workflow changed: a round each
            # Reads, then one self-committing statement that inserts the row with its audit entry and claims the
            # key (`lifecycle.insert_queued`): no BEGIN and COMMIT.
            async with self.db.statement() as session:
                if key:
                    existing = await creation.find_duplicate(session, workflow_id, key, window)
                    if existing is not None:
                        return Created(existing, duplicate=True)
                unsaved = await creation.new_execution(session, workflow_id, request, remembered=self.workflows)
                try:
                    execution = await lifecycle.insert_queued(
                        session, unsaved.execution, actor, key=key or None, key_window=window, revision=unsaved.revision
                    )
                except Exception as exc:
                    # The memory may be why: the workflow changed since it was remembered (NotInserted; the next
                    # round reads it), or a change no trigger counted made the insert fail.
                    self.workflows.forget(workflow_id)
                    if not isinstance(exc, lifecycle.NotInserted):
                        raise
                    continue  # or a concurrent request with the same key won: the next round returns its execution
            if mirror is not None and key:
                remaining = min(window, self.settings.dedup_window_seconds) - (time.monotonic() - started)
                await mirror.remember_duplicate(workflow_id, key, execution.id, remaining)
            return Created(execution, duplicate=False)
        raise Conflict("Could not create the execution: the idempotency key is in use")

    async def stop(self, execution_id: str | uuid.UUID, actor: Actor) -> Execution:
        """Stop per SPEC §4: at once when not yet running, else ask the runner (Conflict when it has ended)."""
        ident = parse_id(execution_id, "execution")
        async with self.db.transaction() as session:
            outcome = await lifecycle.request_stop(session, ident, actor)
            if outcome.requested:  # a RUNNING execution may have started sub-workflows: they stop with it
                why = f"parent execution {ident} was stopped"
                await children.stop_descendants(session, ident, actor, why, max_depth=self._max_depth)
            execution = await get_or_404(session, Execution, ident, "execution")  # as the rule left it
            if not outcome.stopped and not outcome.requested:
                raise Conflict(f"execution {execution_id} is {execution.status} and cannot be stopped")
        return execution

    async def retry(self, execution_id: str | uuid.UUID, actor: Actor) -> Created:
        """A new execution of the same version with the same inputs (refused once the workflow is archived or
        the version superseded, as creation refuses them)."""
        async with self.db.session() as session:
            original = await get_or_404(session, Execution, execution_id, "execution")
        return await self.create(creation.rerun_request(original, actor.id or ""), actor)

    # --- reads ----------------------------------------------------------------------------------------

    async def get(self, execution_id: str | uuid.UUID) -> ExecutionView:
        return await queries.get_execution(self.db, execution_id)

    async def wait_for_end(self, execution_id: str | uuid.UUID, seconds: float) -> ExecutionView:
        """The execution once it has ended (in any hub process), or as it is after `seconds`."""
        ident = parse_id(execution_id, "execution")
        # Registered before the first read, so an end committed from then on, in any hub process, wakes us.
        ended = self.endings.register(ident)
        self.held_reads += 1
        try:
            view = await queries.await_end(self.db, ident)  # its end is announced from now on
            if view.execution.status in TERMINAL_STATUSES or self.closing:
                return view
            # Its names, read while it runs: an end handed by a report in this process is answered with no read.
            names = await names_of(self.db, [view.execution])
            view = replace(view, names=names)
            if await ended.wait(seconds):
                handed = self.endings.ended(ident)
                if handed is None:  # ended by another process, a stop or a stale rule (or the hub is closing): read
                    view = await queries.get_execution(self.db, ident)
                    runner_id = view.execution.runner_id
                    if runner_id is None or runner_id in names.runners:  # the names read before still name it
                        view = replace(view, names=names)
                else:
                    execution = handed.execution
                    names = names.with_runner(execution.runner_id, handed.runner_name)
                    view = ExecutionView(execution, view.workflow_name, view.version_number, names)
        finally:
            self.held_reads -= 1
            self.endings.unregister(ident, ended)
        return view

    async def history(
        self, f: ExecutionFilter, *, offset: int, limit: int, cursor: str | None, exact_total: bool = False
    ) -> Page:
        """Newest first; the total is capped at `EXEKRA_EXECUTIONS_TOTAL_CAP` unless `exact_total`."""
        cap = None if exact_total else self.settings.executions_total_cap
        return await queries.list_executions(self.db, f, offset=offset, limit=limit, cursor=cursor, total_cap=cap)

    async def logs(self, execution_id: str | uuid.UUID, after_seq: int, limit: int) -> tuple[list[ExecutionLog], int]:
        """Log lines after `after_seq`, and the seq to ask for next."""
        return await queries.read_logs(self.db, execution_id, after_seq, limit)

    async def follow_logs(
        self, execution_id: str | uuid.UUID, after_seq: int, follower: str
    ) -> AsyncIterator[LogEvent]:
        """The execution's log lines after `after_seq` as they are written, then its end (see `follow`).

        NotFound and the per-user stream cap (429) are raised here, before the stream starts.
        """
        ident = (await self.get(execution_id)).execution.id
        self.followers.check_room(follower)
        return self.followers.follow(
            ident,
            after_seq,
            follower,
            read_lines=self.logs,
            read_status=self._status,
            closing=lambda: self.closing,
        )

    async def _status(self, execution_id: uuid.UUID) -> str:
        """For a log stream waiting for the end (registered in `endings` first): announced from now on."""
        return (await queries.await_end(self.db, execution_id)).execution.status

    # --- the runner protocol (SPEC §7.3) --------------------------------------------------------------

    async def heartbeat(
        self,
        claims: RunnerClaims,
        metrics: dict[str, float | None],
        catalogue_digest: str | None = None,
        declared: Declaration | None = None,
    ) -> Heartbeat:
        """A sign of life with metrics (written within a second); answers the executions the runner must stop,
        and whether the runner's `catalogue_digest` differs from the declaration the hub holds (an older runner
        sends none: nothing is wanted). A runner the hub asked sends its whole declaration: stored first.

        Nothing is read while the runner's long poll waits in this process, idle as its row showed it and not woken
        since, nor while the note of its last full heartbeat holds (`Wakeups.remembered`): that read answers."""
        runner_id, wakeups = claims.runner_id, self.dispatcher.wakeups
        if declared is not None:
            await record_declaration(self.db, runner_id, claims.epoch, declared)
            noted = None
        else:
            noted = wakeups.remembered(runner_id, claims.epoch)
        if noted is not None:
            self.liveness.renew(claims, metrics)
            status, stop_ids, digest = noted[0], [], noted[1]
        else:
            watch = wakeups.watch_beat(runner_id)  # before the read: what changes the runner from then on keeps no note
            try:
                sign = await self.liveness.sign(claims, metrics)
                if not sign.stop_ids:
                    wakeups.leave_beat(runner_id, watch, claims.epoch, sign.presence.status, sign.catalogue_digest)
            finally:
                wakeups.unwatch_beat(runner_id, watch)
            status, stop_ids, digest = sign.presence.status, sign.stop_ids, sign.catalogue_digest
        return Heartbeat(status, stop_ids, catalogue_digest is not None and catalogue_digest != digest)

    async def poll(self, claims: RunnerClaims, wait: float) -> dict[str, Any] | None:
        """The execution the runner holds (ASSIGNED or RUNNING), a newly claimed one, or None after `wait`
        seconds (at most `EXEKRA_MAX_LONG_POLL_SECONDS`), or at once when the hub shuts down. An execution that an
        assignment in this process handed over (`dispatch.handed`) is answered as its claim read it."""
        runner_id = claims.runner_id
        wakeups = self.dispatcher.wakeups
        wait = min(wait, self.settings.max_long_poll_seconds)
        # Registered before the runner shows up as idle, so an assignment made by anyone from then on wakes us.
        signal = wakeups.register(runner_id)
        try:
            # An execution assigned to the runner while it had no poll waiting here: as the claim read it.
            handed = wakeups.take_handed(runner_id, claims.epoch)
            if handed is not None:
                self.liveness.renew(claims)
                return handed
            # A long poll's renewal, nothing having happened to the runner since its last poll here, reads nothing.
            quiet = wakeups.take_quiet(runner_id, claims.epoch) if wait > 0 else None
            if quiet is not None:
                read_at, digest = quiet
                self.liveness.renew(claims)
                wakeups.vouch(signal, claims.epoch, digest)
                return await self._wait_for_work(claims, signal, wait, read_at)
            read_at = time.monotonic()
            held, idle = await self._sign_and_claim(claims, signal)
            if idle:
                return await self._wait_for_work(claims, signal, wait, read_at)
            return held
        finally:
            wakeups.unregister(runner_id, signal)

    async def _sign_and_claim(self, claims: RunnerClaims, signal: PollSignal) -> tuple[dict[str, Any] | None, bool]:
        """A full poll's sign of life and claim, in as many round trips as it takes to find its answer: the read of
        the runner's row, with the live execution it holds as the poll answers it; else, when it is idle (enabled,
        holding none: the row then vouches for the poll's `signal`), a claim, whose statement reads the execution it
        assigns. Returns the answer and whether the runner is idle (given nothing). None and not idle: a runner
        disabled, or whose row names an execution that is no longer live, or whose token the claim found revoked.
        Read here, not in `poll`, so that a held poll does not keep the row's objects for the length of its wait
        (the Redis dispatcher keeps its own copy of the runner's profile, its labels and declared activities, to
        match work: `RedisDispatcher._profiles`)."""
        sign = await self.liveness.sign(claims, poll=True)
        presence = sign.presence
        if presence.current_execution_id is not None or not presence.enabled:
            return sign.held, False
        profile = RunnerProfile(claims.runner_id, presence.type, presence.labels, presence.activities)
        assignment = await self.dispatcher.runner_idle(claims.runner_id, profile)
        if assignment is not None:
            return answer_for(assignment.handed, claims.epoch), False
        self.dispatcher.wakeups.vouch(signal, claims.epoch, sign.catalogue_digest)
        return None, True

    async def _wait_for_work(
        self, claims: RunnerClaims, signal: PollSignal, wait: float, read_at: float
    ) -> dict[str, Any] | None:
        if wait > 0 and not signal.is_set() and not self.closing:
            await signal.wait(wait)
        # Work assigned by a concurrent match (a create, the sweeper, another hub process) sets the signal; a
        # long poll that was not woken has nothing to read (a wake-up lost while the LISTEN connection was down
        # is repaired by waking every poll when it reconnects), and its runner's next poll may renew quietly.
        # A poll that did not wait still looks once: a match may have committed a moment before it set the
        # signal. At shutdown a poll answers 204.
        if self.closing:
            return None
        if wait > 0 and not signal.is_set():
            self.dispatcher.wakeups.leave_quiet(claims.runner_id, signal, read_at)
            return None
        # Woken by an assignment made in this process, which handed over the execution as its claim read it; else
        # whatever it was woken for, in one read (nothing if its token was revoked meanwhile).
        answer = answer_for(signal.handed, claims.epoch)
        return answer or await queries.held_execution(self.db, claims.runner_id, claims.epoch)

    async def start(self, claims: RunnerClaims, execution_id: str, attempt: int) -> None:
        """ASSIGNED → RUNNING for the runner holding this attempt (409 when stale, 401 when revoked). The start of
        an attempt this runner has started already changes nothing and is answered as the first was: a runner
        repeats a start whose answer it lost (a connection cut after the commit, a database failover)."""
        held = _held(claims, execution_id, attempt)
        async with self.db.statement() as session:
            started = await lifecycle.start(session, held)
        if started is None:
            if await queries.started(self.db, held):
                return
            raise await self._refused(claims, execution_id)
        observability.DISPATCH_SECONDS.observe(started.dispatch_seconds)
        observability.PICKUP_SECONDS.observe(started.pickup_seconds)

    async def append_logs(self, claims: RunnerClaims, execution_id: str, attempt: int, lines: list[LogLine]) -> bool:
        """Store a batch of log lines (may be empty) for the attempt this runner holds; returns stopRequested."""
        held = _held(claims, execution_id, attempt)
        async with self.db.statement() as session:
            stop_requested = await lifecycle.store_logs(session, held, self._batch(lines))
        if stop_requested is None:
            raise await self._refused(claims, execution_id)
        return stop_requested

    def _batch(self, lines: list[LogLine]) -> lifecycle.LogBatch:
        """The lines as stored (each message cut at `EXEKRA_MAX_LOG_LINE_CHARS`, a NUL character, which
        PostgreSQL cannot store, shown as U+FFFD) under the log's cap (413 past `EXEKRA_MAX_LOG_LINES_PER_BATCH`)."""
        if len(lines) > self.settings.max_log_lines_per_batch:
            raise PayloadTooLarge(f"At most {self.settings.max_log_lines_per_batch} lines per batch")
        max_chars = self.settings.max_log_line_chars
        stored = [
            line
            if len(line.message) <= max_chars and "\x00" not in line.message
            else replace(line, message=line.message[:max_chars].replace("\x00", "\ufffd"))
            for line in lines
        ]
        size = sum(len(line.message.encode()) for line in stored)
        cap = self.settings.max_log_bytes_per_execution
        marker = (
            f"log limit reached: this execution has logged {cap:,} bytes, the most it may keep "
            "(EXEKRA_MAX_LOG_BYTES_PER_EXECUTION); its later lines are dropped"
        )
        return lifecycle.LogBatch(stored, size, cap, marker)

    async def complete(
        self,
        claims: RunnerClaims,
        execution_id: str,
        attempt: int,
        status: ExecutionStatus,
        *,
        error: str | None,
        outputs: dict[str, Any] | None,
        metrics: dict[str, float | None],
        lines: list[LogLine] | None = None,
        take_next: bool = False,
        wait: float = 0,
    ) -> dict[str, Any] | None:
        """The runner's final report, with the log lines it had not sent yet (in the same statement, so a short
        execution is poll, start, complete). Its runner is offered the next execution before this returns
        (the rule's effect): were it offered after, the runner's next poll would race with it, and the loser's
        claim would be wasted (measured: a few per execution under load).

        With `take_next`, returns the execution that offer assigned to the runner, as its poll would answer it
        (the claim read it): the runner starts it without polling, so a short execution is start, complete. With
        `wait` too, a runner the report left idle, given nothing, waits here as in a long poll (at most
        `EXEKRA_MAX_LONG_POLL_SECONDS`) for an execution assigned to it: the report's statement read the runner's
        row as a full poll would, and its watch saw every wake-up since, so this costs no read and no request, in
        any number of hub processes.

        A runner the report left idle, offered nothing, renews its next long poll quietly, as after a poll that
        timed out (`Wakeups.leave_idle`): the statement read the runner's row as that poll would, and the offer
        looked at the queue with the profile the statement read."""
        batch = self._batch(lines or [])
        held = _held(claims, execution_id, attempt)
        runner_id = claims.runner_id
        wakeups = self.dispatcher.wakeups
        wait = min(wait, self.settings.max_long_poll_seconds) if take_next else 0
        watch = wakeups.watch(runner_id)
        poll = None
        try:
            async with self.db.statement() as session:
                hand = self.endings.is_waiting(held.execution_id)
                finished = await lifecycle.finish(
                    session, held, status, error=error, outputs=outputs, metrics=metrics, lines=batch, hand=hand
                )
                if finished is not None and finished.ended is not None:  # committed: its waiters answer now
                    self.endings.hand(finished.ended)
            if finished is not None and finished.runner_idle:
                if wait > 0:  # registered while the watch still sees every wake-up: nothing falls between
                    poll = wakeups.register(runner_id)
                    wakeups.vouch(poll, claims.epoch, finished.catalogue_digest)
                else:
                    wakeups.leave_idle(runner_id, watch, claims.epoch, finished.catalogue_digest)
        finally:
            wakeups.unwatch(runner_id, watch)
        try:
            if finished is None:
                raise await self._refused(claims, execution_id)
            if not take_next:
                return None
            handed = wakeups.hand_over(runner_id, watch, claims.epoch)
            if handed is not None or poll is None or watch.signal.is_set():
                return handed  # given one, or something changed the runner: its next poll reads
            self.liveness.renew(claims)
            return await self._wait_for_work(claims, poll, wait, watch.began)
        finally:
            if poll is not None:
                wakeups.unregister(runner_id, poll)

    async def store_artifact(
        self, claims: RunnerClaims, execution_id: str, attempt: int, upload: ArtifactUpload
    ) -> Artifact:
        """Store a file the runner uploads for the attempt it holds (409 when stale, 401 when revoked, 413 past
        `EXEKRA_ARTIFACT_MAX_BYTES` or the execution's `EXEKRA_ARTIFACT_EXECUTION_MAX_BYTES`)."""
        try:
            async with self.db.transaction() as session:
                return await artifacts.store(session, _held(claims, execution_id, attempt), upload, self.settings)
        except artifacts.NotHeld:
            raise await self._refused(claims, execution_id) from None

    async def credential(self, claims: RunnerClaims, execution_id: str, name: str, attempt: int) -> dict[str, Any]:
        """A decrypted credential, only for the runner running that attempt of a workflow that references it;
        each delivery is audited (`credential.read`, actor RUNNER)."""
        held = _held(claims, execution_id, attempt)
        async with self.db.transaction() as session:
            definition = await queries.held_definition(session, held)
            if definition is None:
                raise await self._refused(claims, execution_id)
            if name not in referenced_credentials(definition):
                raise Forbidden(f"The workflow does not reference credential {name}")
            reader = Actor("RUNNER", str(claims.runner_id))
            return await credential_for_runner(session, self.secret_key, name, reader, str(held.execution_id), attempt)

    async def _refused(self, claims: RunnerClaims, execution_id: str) -> Exception:
        """Why a fenced runner call changed nothing: the token was revoked (the runner is gone or its secret was
        regenerated since the token was issued: 401), else the attempt is stale or in the wrong state (409).

        Only asked after the fenced statement found nothing, so the calls that succeed never read the runner.
        """
        epoch = await queries.token_epoch(self.db, claims.runner_id)
        if epoch is None or epoch != claims.epoch:
            return NotAuthenticated("Runner token revoked: authenticate again")
        return Conflict(f"execution {execution_id}: stale attempt or wrong state; abandon it")

    # --- sub-workflows: the runner's side of `workflow.run` (see `children`) -----------------------------

    @property
    def _max_depth(self) -> int:
        return self.settings.max_subworkflow_depth

    async def start_child(
        self, claims: RunnerClaims, execution_id: str, attempt: int, request: ChildRequest
    ) -> Created:
        """Start a child of the RUNNING attempt this runner holds, or answer the one the request's key started
        (409 when stale, 401 when revoked; see `children.start_child` for the refusals). Audited
        `execution.create` with the runner as the actor and the parent's id."""
        held = _held(claims, execution_id, attempt)
        async with self.db.statements() as session:
            created = await children.start_child(
                session, held, request, Actor("RUNNER", str(claims.runner_id)), max_depth=self._max_depth
            )
        if created is None:
            raise await self._refused(claims, execution_id)
        return created

    async def wait_for_child(
        self, claims: RunnerClaims, execution_id: str, attempt: int, child_id: str, seconds: float
    ) -> ExecutionView:
        """A child of the attempt this runner holds, once it has ended or as it is after `seconds`."""
        child = parse_id(child_id, "execution")
        async with self.db.reading() as session:
            held = await children.holds_child(session, _held(claims, execution_id, attempt), child)
        if not held:
            raise await self._refused(claims, execution_id)
        return await self.wait_for_end(child, seconds)

    async def stop_child(self, claims: RunnerClaims, execution_id: str, attempt: int, child_id: str) -> None:
        """Stop a child of the attempt this runner holds, and its own descendants (its `workflow.run` node timed
        out or was cancelled while the parent goes on); a child that has ended is answered as it is."""
        child = parse_id(child_id, "execution")
        actor = Actor("RUNNER", str(claims.runner_id))
        why = f"its parent execution {execution_id} no longer waits for it"
        async with self.db.transaction() as session:
            held = await children.holds_child(session, _held(claims, execution_id, attempt), child)
            if held:
                details = {"reason": why, "ancestorId": str(execution_id)}
                await lifecycle.request_stop(session, child, actor, reason=f"stopped: {why}", details=details)
                await children.stop_descendants(session, child, actor, why, max_depth=self._max_depth)
        if not held:
            raise await self._refused(claims, execution_id)

    async def stop_children_of(self, transition: Transition) -> None:
        """End hook: an execution that started sub-workflows has ended; its live descendants are stopped."""
        if not transition.has_children or transition.execution_id is None:
            return
        why = children.ended_reason(transition.execution_id, transition.status or transition.rule)
        async with self.db.transaction() as session:
            await children.stop_descendants(session, transition.execution_id, SYSTEM, why, max_depth=self._max_depth)

    # --- the stale rules (SPEC §4) --------------------------------------------------------------------

    async def check_stale(self, *, not_before: datetime | None) -> StaleReport:
        """One pass of the stale checks (runners gone silent first, then each stale rule).

        This process's signs of life are written first; another process's are at most a flush period old.
        """
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.liveness.flush()  # kept for the next flush on failure; the checks then meet the error
        return await check_stale(self.db, self.settings, not_before=not_before)

    async def retry_due(self) -> int:
        """Retry the failures whose workflow's retry policy says so and whose delay has passed (see `retries`)."""
        return await retries.retry_due(self.db)


def _held(claims: RunnerClaims, execution_id: str, attempt: int) -> lifecycle.Attempt:
    return lifecycle.Attempt(parse_id(execution_id, "execution"), claims.runner_id, claims.epoch, attempt)
