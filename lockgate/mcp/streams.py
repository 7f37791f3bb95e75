"""MCP answers written as event streams: a POST's progress then its answer, and the GET stream.

Both follow the one rule of any stream: once the first byte is out there is no status to change,
so an error after that is an event (a JSON-RPC error), and a caller that goes away takes the work
with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import orjson

from lockgate.mcp.jsonrpc import McpError, error_body, result_body
from lockgate.mcp.notices import Outbox
from lockgate.server.types import Receive, Send

_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def progress_then_answer(
    send: Send,
    request_id: Any,
    answer: Coroutine[Any, Any, dict[str, Any]],
    notes: asyncio.Queue[dict[str, Any]],
) -> dict[str, Any] | None:
    """Run ``answer``; each progress notification put on ``notes`` meanwhile goes out as an event, then
    the answer. Returns the answer instead when it came before any progress (the caller sends it as
    JSON; an error raises, for the caller's error handling), else None: it was streamed."""
    task = asyncio.ensure_future(answer)
    started = False
    try:
        while not task.done():
            note = asyncio.ensure_future(notes.get())
            await asyncio.wait({task, note}, return_when=asyncio.FIRST_COMPLETED)
            if not note.done():
                note.cancel()
                break
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": _SSE})
                started = True
            await event(send, orjson.dumps(note.result()))
        if not started:
            return task.result()
        while not notes.empty():
            await event(send, orjson.dumps(notes.get_nowait()))
        try:
            body = result_body(request_id, task.result())
        except McpError as exc:
            body = error_body(request_id, exc)
        await event(send, body)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return None
    finally:
        task.cancel()  # the client went away mid-stream: the call goes too


async def notices(send: Send, receive: Receive, box: Outbox, closing: asyncio.Event, seconds: float) -> None:
    """The handshake era's GET stream: what lands in ``box`` as it comes, until the client goes, the
    worker stops, or ``seconds`` pass (then it ends; clients reconnect, and the outbox keeps what
    comes meanwhile)."""
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    await send({"type": "http.response.body", "body": b": lockgate\n\n", "more_body": True})
    disconnect = asyncio.ensure_future(_until_disconnect(receive))
    stopping = asyncio.ensure_future(closing.wait())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while True:
            for message in box.take():
                await event(send, orjson.dumps(message))
            ready = asyncio.ensure_future(box.ready.wait())
            await asyncio.wait(
                {disconnect, stopping, ready},
                timeout=max(deadline - loop.time(), 0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            woke = ready.done()
            ready.cancel()
            if disconnect.done():
                return
            if stopping.done() or not woke:
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        disconnect.cancel()
        stopping.cancel()


async def event(send: Send, data: bytes) -> None:
    body = b"event: message\ndata: " + data + b"\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
