"""Server-sent events: an incremental decoder for upstream streams and encoders for ours.

The decoder keeps each event's raw bytes so same-dialect streams are relayed
byte for byte; only events the gateway must look at are JSON-decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

DONE = b"[DONE]"


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes
    raw: bytes


class SSEDecoder:
    """Splits a byte stream into events; tolerant of \\r\\n and of events split across reads."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            raw = buffer[start : end + 2]
            start = end + 2
            event = _parse_event(raw)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event that never got its terminating blank line."""
        return self._buffer


def _parse_event(raw: bytes) -> SSEEvent | None:
    name: str | None = None
    data_lines: list[bytes] = []
    for line in raw.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data_lines and name is None:
        return None
    return SSEEvent(name, b"\n".join(data_lines), raw)


def encode_data(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(name: str, payload: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


DONE_EVENT = b"data: [DONE]\n\n"
