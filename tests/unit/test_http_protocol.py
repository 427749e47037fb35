"""The hub's uvicorn protocol (hub/http_protocol.py): `LeanEvent` behaves as `asyncio.Event` where uvicorn uses one,
and a real uvicorn server with the protocol serves requests (keep-alive, pipelined, streamed bodies, a slow reader)
with the lean objects in place of uvicorn's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from exekra.hub.http_protocol import LeanEvent, LeanHttpToolsProtocol
from exekra.hub.server import APP_OPTIONS


async def test_lean_event_wakes_every_waiter_once_set_and_answers_true_as_an_event_does() -> None:
    for event in (LeanEvent(), asyncio.Event()):
        waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not event.is_set() and not any(w.done() for w in waiters)
        event.set()
        event.clear()  # cleared before the waiters resume: they were woken all the same
        assert await asyncio.gather(*waiters) == [True, True, True]
        assert not event.is_set()
        event.set()
        assert event.is_set() and await event.wait() is True


async def test_a_cancelled_wait_leaves_the_other_waiters_waiting() -> None:
    event = LeanEvent()
    first, second = asyncio.create_task(event.wait()), asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not second.done()
    event.set()
    assert await asyncio.wait_for(second, 1) is True


def test_the_names_the_protocol_relies_on_are_uvicorns() -> None:
    # An upgrade of uvicorn that renames them would leave the lean objects unused, or break the protocol.
    assert "_is_writable_event" in FlowControl.__init__.__code__.co_names
    assert "message_event" in RequestResponseCycle.__init__.__code__.co_names
    assert "pipeline" in HttpToolsProtocol.__init__.__code__.co_names
    assert "_start_asgi_task" in HttpToolsProtocol.on_headers_complete.__code__.co_names
    assert APP_OPTIONS["http"] is LeanHttpToolsProtocol


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes the request's body (read in as many messages as it comes), or streams `n` KiB for /big?n."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/big":
        size = int(scope["query_string"] or b"1")
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % (size * 1024))]}
        )
        for _ in range(size):
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int, list[LeanHttpToolsProtocol]]]:
    made: list[LeanHttpToolsProtocol] = []

    class Recorded(LeanHttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    config = uvicorn.Config(_app, http=Recorded, lifespan="off", log_level="warning")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve(sockets=[listener]))
    try:
        yield "127.0.0.1", listener.getsockname()[1], made
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 10)


async def _read_answers(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    bodies = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(
            next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1]
        )
        bodies.append(await asyncio.wait_for(reader.readexactly(length), 5))
    return bodies


async def test_keep_alive_pipelined_and_chunked_requests_are_answered_in_order(server: Any) -> None:
    host, port, made = server
    reader, writer = await asyncio.open_connection(host, port)
    # Three requests in one write: the second and third wait in the pipeline, their bodies already read.
    writer.write(
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\none"
        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\ntwo"
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n"
    )
    assert await _read_answers(reader, 3) == [b"one", b"two", b"three"]
    # A body that arrives in pieces, after the request started: the cycle's event wakes its reader each time.
    writer.write(b"POST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    await writer.drain()
    for piece in (b"4\r\nfour\r\n", b"4\r\nmore\r\n", b"0\r\n\r\n"):
        await asyncio.sleep(0.01)
        writer.write(piece)
        await writer.drain()
    assert await _read_answers(reader, 1) == [b"fourmore"]
    writer.close()
    (protocol,) = made
    assert isinstance(protocol.pipeline, list) and not protocol.pipeline
    assert isinstance(protocol.flow._is_writable_event, LeanEvent)
    assert isinstance(protocol.cycle.message_event, LeanEvent)


async def test_a_slow_reader_pauses_the_answer_and_gets_all_of_it(server: Any) -> None:
    host, port, made = server
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    size = 16384  # KiB: far above the socket's buffers and the transport's high-water mark while nothing is read
    writer.write(b"GET /big?%d HTTP/1.1\r\nHost: h\r\n\r\n" % size)
    await writer.drain()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if made and made[0].flow.write_paused:
            break
    assert made[0].flow.write_paused  # the app's send waits on the lean event
    assert await _read_answers(reader, 1) == [b"x" * size * 1024]
    assert not made[0].flow.write_paused
    writer.close()
