"""Outboxes for the handshake era's GET stream: what upstream servers tell a caller's session.

A notification an upstream sends on the stream of one caller's request (progress on a
``tools/call``, ``notifications/tools/list_changed``, ``notifications/resources/updated``)
is posted to that caller's outbox, keyed by its ``Mcp-Session-Id``; a list change that
cannot be attributed to a caller (a shared stdio or SSE connection) goes to every outbox
that covers the server. The GET stream drains its outbox. An outbox keeps a short backlog,
so a notification that comes before the client has opened its GET stream is not lost.

Per worker, in memory: a session's GET stream and its POSTs meet only when one worker serves
both (one worker, or a balancer that keeps a session's connections together); elsewhere the
notifications are dropped, as a server without a GET stream would drop them.

Invariants: outboxes and backlogs are bounded (the oldest goes first); posting never blocks.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Any

BACKLOG = 64  # notifications kept per session until its GET stream takes them
SESSIONS = 2048  # outboxes kept per worker; the least recently used is dropped


class Outbox:
    __slots__ = ("addresses", "messages", "ready")

    def __init__(self) -> None:
        self.messages: deque[dict[str, Any]] = deque(maxlen=BACKLOG)
        self.ready = asyncio.Event()
        self.addresses: set[str] = set()  # the servers this session reaches

    def push(self, message: dict[str, Any]) -> None:
        if self.messages and self.messages[-1] == message:
            return  # one list change heard twice (its request's stream and the pool) is said once
        self.messages.append(message)
        self.ready.set()

    def take(self) -> list[dict[str, Any]]:
        taken = list(self.messages)
        self.messages.clear()
        self.ready.clear()
        return taken


class Notices:
    def __init__(self, sessions: int = SESSIONS) -> None:
        self._boxes: OrderedDict[str, Outbox] = OrderedDict()
        self._limit = sessions

    def box(self, session: str) -> Outbox:
        box = self._boxes.get(session)
        if box is None:
            box = self._boxes[session] = Outbox()
            if len(self._boxes) > self._limit:
                self._boxes.popitem(last=False)
        else:
            self._boxes.move_to_end(session)
        return box

    def post(self, session: str, address: str, message: dict[str, Any]) -> None:
        box = self.box(session)
        box.addresses.add(address)
        box.push(message)

    def broadcast(self, address: str, message: dict[str, Any]) -> None:
        for box in self._boxes.values():
            if address in box.addresses:
                box.push(message)
