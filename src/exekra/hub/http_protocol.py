"""uvicorn's httptools protocol without three empty deques per connection.

A connected runner holds one connection to the hub, and a long poll open on it for most of its life. uvicorn's
protocol keeps, per connection, a `deque` for pipelined requests and an `asyncio.Event` for flow control, and per
request another `asyncio.Event`; each Event holds a `deque` of waiters. An empty deque allocates its first block
(64 slots) up front: the three cost 2.2 KB of the 22 KB an open poll costs the hub (`python -m bench.poll_memory`,
bench/RESULTS.md). `LeanHttpToolsProtocol` is uvicorn's protocol with a list for the pipeline and `LeanEvent`s
for the two events: the same behaviour, in about 0.2 KB.

The hub's server is given this class (`exekra.hub.server`); it relies on the names uvicorn gives these three
objects (`pipeline`, `FlowControl._is_writable_event`, `RequestResponseCycle.message_event`) and on the methods
uvicorn calls on them. `pyproject.toml` holds uvicorn below its next minor release; tests/unit/test_http_protocol.py
checks the names and runs the protocol, so a bump that breaks them fails there.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class LeanEvent:
    """`asyncio.Event`'s `set`, `clear`, `is_set` and `wait` in two slots: its waiters' futures are kept in a list
    made only when a task waits (several may)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> Literal[True]:
        """Until the event is set (True, as an Event answers, even if it was cleared again since)."""
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)  # cancelled before the event was set
        return True


class _Pipeline(list[tuple[RequestResponseCycle, Any]]):
    """The queue of pipelined requests as uvicorn uses its deque (`appendleft`, `pop`, truth): nearly always empty,
    and an empty list is 56 bytes where an empty deque is 624."""

    def appendleft(self, item: tuple[RequestResponseCycle, Any]) -> None:
        self.insert(0, item)


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the pipeline queue and both events made lean (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = _Pipeline()  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _lean_flow_control(transport)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # Nothing waits on the cycle's event before its task starts; a pipelined request's may have been set (its
        # body arrived while it was queued).
        event = LeanEvent()
        if cycle.message_event.is_set():
            event.set()
        cycle.message_event = event  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)


def _lean_flow_control(transport: asyncio.Transport) -> FlowControl:
    flow = FlowControl(transport)
    writable = LeanEvent()
    writable.set()
    flow._is_writable_event = writable  # type: ignore[assignment]
    return flow
