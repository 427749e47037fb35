"""The Redis execution queue (SPEC §5): ordering, routing by constraint signature, job records with
bounded history, and the duplicate-detection mirror. PostgreSQL stays the truth; everything here can be
rebuilt from it.

The client never hangs: short socket and connect timeouts and no retries inside the client. Any Redis
failure is reported to `on_error` (the switch to direct mode) and raised as `QueueUnavailable`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from exekra.hub.concurrency import Group
from exekra.hub.dispatch import lua
from exekra.hub.dispatch.matcher import QueuedExecution
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.observability import time_redis_commands
from exekra.hub.redis_client import follow_failover, redis_client

PREFIX = "exekra:"
MAX_CONNECTIONS = 128
POOL_WAIT_SECONDS = 2.0  # a burst of commands waits this long for a pooled connection, at most
_PRIORITY_STEP = 10**13  # above any epoch millisecond until the year 2286; score stays an exact double
COMPLETED = "completed"
FAILED = "failed"


class QueueUnavailable(Exception):
    """Redis did not answer (down, timeout, authentication, out of memory…)."""


def signature(execution: QueuedExecution) -> tuple[str, str]:
    """The constraint signature of an execution and its constraints as JSON.

    Executions with equal constraints share one ordered set. A pinned execution's set is its runner's, one per
    set of required activities (pinning ignores type and labels, never the activities).
    """
    activities = sorted(set(execution.activities))
    if execution.pinned_runner_id is not None:
        pin: dict[str, Any] = {"pin": str(execution.pinned_runner_id)}
        if not activities:
            return f"pin-{execution.pinned_runner_id}", orjson.dumps(pin).decode()
        pin["activities"] = activities
        encoded = orjson.dumps(pin, option=orjson.OPT_SORT_KEYS).decode()
        return f"pin-{execution.pinned_runner_id}-" + _digest(encoded), encoded
    constraints: dict[str, Any] = {"labels": sorted(set(execution.labels))}
    if execution.runner_type is not None:
        constraints["type"] = execution.runner_type
    if activities:
        constraints["activities"] = activities
    encoded = orjson.dumps(constraints, option=orjson.OPT_SORT_KEYS).decode()
    return "c-" + _digest(encoded), encoded


def _digest(encoded: str) -> str:
    return hashlib.sha256(encoded.encode()).hexdigest()[:24]


def score(priority: int, queued_at_ms: int) -> int:
    """Lower is first: higher priority first, then older."""
    return (9 - priority) * _PRIORITY_STEP + queued_at_ms


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _str(value: Any) -> str:
    """A reply value as text (the client decodes replies; this satisfies the typing of redis-py)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Head:
    """The best waiting execution for a runner, as seen when peeked."""

    execution_id: uuid.UUID
    signature: str
    seq: str


class RedisQueue:
    """Redis data structures of the queue. Every method raises `QueueUnavailable` when Redis fails."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        keep_completed: int,
        keep_failed: int,
        prefix: str = PREFIX,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.redis = redis_client(
            url, timeout=timeout, max_connections=MAX_CONNECTIONS, pool_wait=max(timeout, POOL_WAIT_SECONDS)
        )
        time_redis_commands(self.redis)
        self.keep_completed = keep_completed
        self.keep_failed = keep_failed
        self.prefix = prefix
        self.on_error = on_error
        self.signatures_key = prefix + "signatures"
        self.completed_key = prefix + "jobs:completed"
        self.failed_key = prefix + "jobs:failed"
        self.marker_key = prefix + "marker"
        self.held_index_key = prefix + "held"
        self._enqueue = self.redis.register_script(lua.ENQUEUE)
        self._park = self.redis.register_script(lua.PARK)
        self._peek = self.redis.register_script(lua.PEEK)
        self._finish = self.redis.register_script(lua.FINISH)
        self._fail = self.redis.register_script(lua.FAIL)

    def queue_key(self, sig: str) -> str:
        return f"{self.prefix}q:{sig}"

    def held_key(self, group: Group) -> str:
        """The held set of a concurrency group (`lua.PARK`)."""
        return f"{self.prefix}held:{group.workflow_id}:{_digest(group.key or '')}"

    def job_key(self, execution_id: uuid.UUID | str) -> str:
        return f"{self.prefix}job:{execution_id}"

    def dedup_key(self, workflow_id: uuid.UUID, key: str) -> str:
        return f"{self.prefix}dedup:{workflow_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisError, OSError, TimeoutError) as exc:
            if self.on_error is not None:
                self.on_error(exc)
            await self._disconnect(in_use=False)
            raise QueueUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _disconnect(self, *, in_use: bool) -> None:
        # After an outage every pooled connection is dead; without this each would fail once, later.
        with contextlib.suppress(RedisError, OSError):
            await self.redis.connection_pool.disconnect(inuse_connections=in_use)

    async def reset(self) -> None:
        """Close every connection: the next commands connect afresh (before switching back to Redis)."""
        await self._disconnect(in_use=True)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()

    async def identity(self) -> str:
        """Changes whenever Redis restarts or loses the queue's data: the server's run id and a marker key.

        (The client reconnects silently, so a quick restart would otherwise go unnoticed.) Behind Sentinel, a
        failover shows as a change too: the master is asked for first.
        """
        await follow_failover(self.redis)
        async with self._guard():
            info = await self.redis.info("server")
            marker = await self.redis.get(self.marker_key)
        return f"{info.get('run_id')}:{_str(marker) if marker else ''}"

    async def mark(self) -> str:
        """Make sure the marker exists (shared by every hub process); returns the identity."""
        async with self._guard():
            await self.redis.set(self.marker_key, uuid.uuid4().hex, nx=True)
        return await self.identity()

    def _enqueue_args(
        self, execution: QueuedExecution, now: int, *, release: bool = False
    ) -> tuple[list[str], list[Any]]:
        sig, constraints = signature(execution)
        queued_at = _ms(execution.queued_at)
        keys = [self.signatures_key, self.queue_key(sig), self.job_key(execution.id), self.held_index_key]
        args = [sig, constraints, str(execution.id), score(execution.priority, queued_at), now]
        group = execution.group
        held, info = "", ""
        if group is not None:
            held = self.held_key(group)
            info = orjson.dumps({"workflowId": str(group.workflow_id), "key": group.key}).decode()
        return keys, [*args, execution.priority, queued_at, held, info, "1" if release else "0"]

    async def enqueue(self, execution: QueuedExecution, *, release: bool = False) -> bool:
        """Put an execution in its signature's queue; False if it was already there. A parked one (`park`) is
        left where it is, unless `release`: then it goes back to its signature's queue, with its place."""
        keys, args = self._enqueue_args(execution, _now_ms(), release=release)
        async with self._guard():
            return bool(await self._enqueue(keys, args))

    async def park(self, execution_id: uuid.UUID, seq: str = "") -> bool:
        """Move a waiting id whose concurrency group is full to its group's held set, where no peek finds it
        (unless it was enqueued again since `seq`, when given)."""
        keys = [self.signatures_key, self.job_key(execution_id), self.held_index_key]
        async with self._guard():
            return bool(await self._park(keys, [self.queue_key(""), str(execution_id), seq]))

    async def held_groups(self) -> dict[str, Group]:
        """Every held set with parked ids, and its group."""
        async with self._guard():
            index = await self.redis.hgetall(self.held_index_key)
        groups = {}
        for held, info in index.items():
            group = orjson.loads(info)
            groups[_str(held)] = Group(uuid.UUID(group["workflowId"]), group["key"])
        return groups

    async def enqueue_many(self, executions: Iterable[QueuedExecution]) -> int:
        """Enqueue a batch in one round trip; returns how many were missing."""
        now = _now_ms()
        async with self._guard(), self.redis.pipeline(transaction=False) as pipe:
            for execution in executions:
                keys, args = self._enqueue_args(execution, now)
                await self._enqueue(keys, args, client=pipe)
            return sum(int(added) for added in await pipe.execute())

    async def peek(self, runner: RunnerProfile) -> Head | None:
        """The best waiting execution this runner may take (its pin, its type, subsets of its labels, and of
        its declared activities)."""
        args = [self.queue_key(""), self.job_key(""), str(runner.id)]
        args += ["1", runner.type] if runner.type is not None else ["0", ""]
        args += [str(len(runner.labels)), *runner.labels, *runner.activities]
        async with self._guard():
            found = await self._peek([self.signatures_key], args)
        return Head(uuid.UUID(found[0]), found[1], found[2]) if found else None

    def _finish_args(
        self, execution_id: uuid.UUID, outcome: str, sig: str, seq: str, runner_id: uuid.UUID | None
    ) -> tuple[list[str], list[Any]]:
        keys = [self.signatures_key, self.job_key(execution_id), self.completed_key, self.held_index_key]
        runner = str(runner_id) if runner_id else ""
        args = [self.queue_key(""), str(execution_id), sig, seq, outcome, runner, _now_ms(), self.keep_completed]
        return keys, args

    async def mark_assigned(
        self, execution_id: uuid.UUID, runner_id: uuid.UUID, announce: tuple[str, str] | None = None
    ) -> int:
        """The execution was assigned: its job leaves the queue for the completed history (recorded there even
        when the execution never waited in Redis: a runner claimed it straight away). `announce`: a (channel,
        message) published by the same script (`wakeups`); returns how many subscribers received it (-1: Redis
        refused the publish)."""
        keys, args = self._finish_args(execution_id, "assigned", "", "", runner_id)
        if announce is not None:
            args += announce
        async with self._guard():
            return int(await self._finish(keys, args))

    async def drop(self, head: Head, status: str) -> bool:
        """Remove an id whose execution is no longer QUEUED, unless it was enqueued again since `head`."""
        keys, args = self._finish_args(head.execution_id, f"gone: {status}", head.signature, head.seq, None)
        async with self._guard():
            return bool(await self._finish(keys, args))

    async def withdraw(self, execution_id: uuid.UUID, status: str) -> bool:
        """Take a waiting id out of the queue because its execution left QUEUED (stopped, timed out); a no-op
        when it is not waiting. Saves the next idle runner from finding it stale."""
        async with self._guard():
            seq = await self.redis.hget(self.job_key(execution_id), "seq")
            if seq is None:
                return False
            keys, args = self._finish_args(execution_id, f"gone: {status}", "", _str(seq), None)
            return bool(await self._finish(keys, args))

    async def drop_many(self, heads: Iterable[Head], status: str) -> int:
        async with self._guard(), self.redis.pipeline(transaction=False) as pipe:
            for head in heads:
                keys, args = self._finish_args(head.execution_id, f"gone: {status}", head.signature, head.seq, None)
                await self._finish(keys, args, client=pipe)
            return sum(int(done) for done in await pipe.execute())

    async def record_failure(self, execution_id: uuid.UUID, error: str, attempts: int) -> None:
        """A dispatch job gave up after `attempts` tries; the execution stays queued."""
        keys = [self.job_key(execution_id), self.failed_key]
        async with self._guard():
            await self._fail(keys, [str(execution_id), error[:1000], attempts, _now_ms(), self.keep_failed])

    async def signatures(self) -> dict[str, dict[str, Any]]:
        """Every signature with waiting executions, and its constraints."""
        async with self._guard():
            index = await self.redis.hgetall(self.signatures_key)
        return {_str(sig): orjson.loads(constraints) for sig, constraints in index.items()}

    async def waiting(self, sig: str, batch: int = 500, *, held: str = "") -> AsyncGenerator[list[Head], None]:
        """The waiting ids of one signature (or of the held set `held`) with their enqueue counters, `batch` at a
        time."""
        cursor = 0
        while True:
            async with self._guard():
                cursor, members = await self.redis.zscan(held or self.queue_key(sig), cursor, count=batch)
                ids = [_str(member) for member, _ in members]
                seqs = await self._seqs(ids)
            if ids:
                yield [Head(uuid.UUID(i), sig, seq) for i, seq in zip(ids, seqs, strict=True)]
            if cursor == 0:
                return

    async def _seqs(self, ids: list[str]) -> list[str]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(self.job_key(i), "seq")
            return [_str(seq) if seq else "" for seq in await pipe.execute()]

    async def waiting_ids(self) -> list[uuid.UUID]:
        """Every waiting id, best first per signature (inspection and tests)."""
        async with self._guard():
            sigs = await self.redis.hkeys(self.signatures_key)
            found: list[uuid.UUID] = []
            for sig in sigs:
                found += [uuid.UUID(_str(i)) for i in await self.redis.zrange(self.queue_key(_str(sig)), 0, -1)]
        return found

    async def held_ids(self) -> list[uuid.UUID]:
        """Every parked id, best first per group (inspection and tests)."""
        async with self._guard():
            found: list[uuid.UUID] = []
            for held in await self.redis.hkeys(self.held_index_key):
                found += [uuid.UUID(_str(i)) for i in await self.redis.zrange(_str(held), 0, -1)]
        return found

    async def job(self, execution_id: uuid.UUID) -> dict[str, str]:
        async with self._guard():
            job = await self.redis.hgetall(self.job_key(execution_id))
        return {_str(field): _str(value) for field, value in job.items()}

    async def history(self, kind: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest job records of `kind` ("completed" or "failed")."""
        key = {COMPLETED: self.completed_key, FAILED: self.failed_key}[kind]
        async with self._guard():
            return [orjson.loads(record) for record in await self.redis.lrange(key, 0, limit - 1)]

    async def history_sizes(self) -> tuple[int, int]:
        async with self._guard():
            return int(await self.redis.llen(self.completed_key)), int(await self.redis.llen(self.failed_key))

    async def find_duplicate(self, workflow_id: uuid.UUID, key: str) -> uuid.UUID | None:
        async with self._guard():
            found = await self.redis.get(self.dedup_key(workflow_id, key))
        return uuid.UUID(_str(found)) if found else None

    async def remember_duplicate(
        self, workflow_id: uuid.UUID, key: str, execution_id: uuid.UUID, seconds: float
    ) -> None:
        millis = int(seconds * 1000)
        if millis <= 0:
            return
        async with self._guard():
            await self.redis.set(self.dedup_key(workflow_id, key), str(execution_id), nx=True, px=millis)
