"""Calls from the worker to its runner: how an activity reaches the hub (`exekra.workflow.hubcalls`).

The worker writes a call as one more event on its event channel, and the runner answers on the worker's stdin,
which stays open after the job (the job is its first line):

    worker → runner   {"type": "call", "id": 3, "op": "children.start", "body": {...}}
    runner → worker   {"id": 3, "ok": true, "body": {...}}
                      {"id": 3, "ok": false, "error": "409 …", "status": 409, "code": "subworkflow_refused"}

Calls are answered in any order, each as soon as its hub request returns; the worker matches answers by id.
The worker imports this module before it has loaded the engine: the workflow package (whose errors a call raises)
is imported by the first call, which an activity of the loaded engine makes.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

CALL_EVENT = "call"
_CANCEL_CHECK_SECONDS = 0.1  # how soon a waiting call notices that its activity must stop


def answer(call_id: object, body: dict[str, Any]) -> dict[str, Any]:
    """The runner's answer to a call that succeeded."""
    return {"id": call_id, "ok": True, "body": body}


def refusal(call_id: object, message: str, *, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """The runner's answer to a call the hub refused or that could not be made."""
    return {"id": call_id, "ok": False, "error": message, "status": status, "code": code}


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] = field(default_factory=dict)


class RunnerCalls:
    """The worker's end (`HubCalls`): `call` sends through `send` (the event writer) and waits for the answer,
    which a reader thread takes from `replies` (the worker's stdin after the job line)."""

    def __init__(self, send: Callable[[dict[str, Any]], None], replies: IO[bytes]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._closed = False
        threading.Thread(target=self._read, args=(replies,), name="exekra-runner-calls", daemon=True).start()

    def call(
        self,
        op: str,
        body: dict[str, Any],
        *,
        cancelled: threading.Event | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        from exekra.workflow.hubcalls import CallInterrupted, HubCallFailed

        pending = _Pending()
        with self._lock:
            if self._closed:
                raise HubCallFailed(f"{op}: the runner no longer answers")
            call_id = next(self._ids)
            self._pending[call_id] = pending
        try:
            self._send({"type": CALL_EVENT, "id": call_id, "op": op, "body": body})
            deadline = None if timeout is None else time.monotonic() + timeout
            while not pending.done.wait(_CANCEL_CHECK_SECONDS):
                if cancelled is not None and cancelled.is_set():
                    raise CallInterrupted(f"{op}: interrupted")
                if deadline is not None and time.monotonic() >= deadline:
                    raise HubCallFailed(f"{op}: no answer within {timeout:g} s")
        finally:
            with self._lock:
                self._pending.pop(call_id, None)
        reply = pending.reply
        if not reply.get("ok"):
            status, code = reply.get("status"), reply.get("code")
            raise HubCallFailed(
                str(reply.get("error") or f"{op} failed"),
                status=status if isinstance(status, int) else None,
                code=code if isinstance(code, str) else None,
            )
        result = reply.get("body")
        return result if isinstance(result, dict) else {}

    def _read(self, replies: IO[bytes]) -> None:
        for line in replies:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if not isinstance(reply, dict):
                continue
            with self._lock:
                pending = self._pending.get(reply.get("id"))  # type: ignore[arg-type]
            if pending is not None:
                pending.reply = reply
                pending.done.set()
        # The runner closed our stdin: it is gone, or the run is over. Nothing more will be answered.
        with self._lock:
            self._closed = True
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.reply = {"ok": False, "error": "the runner no longer answers"}
            pending.done.set()
