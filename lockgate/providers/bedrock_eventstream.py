"""AWS event stream framing (``application/vnd.amazon.eventstream``): a pure decoder and encoder.

Bedrock's ConverseStream is not SSE: it is a sequence of binary messages, each

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers            | payload              | message CRC32 (u32)

with big-endian integers and CRC32 (IEEE, as ``zlib.crc32``) over the prelude and over
everything before the message CRC. A header is ``name length (u8) | name | type (u8) |
value``; Bedrock sends string headers (type 7: ``u16 length | UTF-8``) named
``:message-type`` (event or exception), ``:event-type`` / ``:exception-type`` and
``:content-type``. The decoder accepts every header type the framing defines.

``EventStreamDecoder.feed`` takes bytes as they arrive (messages may be split anywhere)
and returns the complete ones as ``(name, payload)``: events as ``(event type, JSON
object)``, exceptions as ``("exception", {"type": exception type, "message": ...})``.
A bad CRC or length raises ``UpstreamProtocolError``: a corrupted stream is never
half-trusted.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

from lockgate.errors import UpstreamProtocolError

_PRELUDE = 12
_MIN_MESSAGE = 16  # prelude + message CRC
_MAX_MESSAGE = 16 * 1024 * 1024  # the framing's limit
# header type -> fixed value size (None: u16 length-prefixed).
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_VARIABLE = {6, 7}


def _header_value(kind: int, raw: bytes) -> Any:
    if kind == 0:
        return True
    if kind == 1:
        return False
    if kind == 7:
        return raw.decode("utf-8")
    if kind in (2, 3, 4, 5, 8):
        fmt = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}[kind]
        return struct.unpack(fmt, raw)[0]
    return raw  # bytes (6) and uuid (9)


def decode_headers(raw: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    pos = 0
    try:
        while pos < len(raw):
            name_len = raw[pos]
            name = raw[pos + 1 : pos + 1 + name_len].decode("utf-8")
            pos += 1 + name_len
            kind = raw[pos]
            pos += 1
            if kind in _VARIABLE:
                (size,) = struct.unpack_from(">H", raw, pos)
                pos += 2
            elif kind in _FIXED:
                size = _FIXED[kind]
            else:
                raise UpstreamProtocolError(f"The event stream has a header of unknown type {kind}.")
            if pos + size > len(raw):
                raise UpstreamProtocolError("The event stream has a truncated header.")
            headers[name] = _header_value(kind, raw[pos : pos + size])
            pos += size
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise UpstreamProtocolError(f"The event stream has a malformed header: {exc}") from exc
    return headers


class EventStreamDecoder:
    """Incremental decoder: ``feed(bytes) -> [(name, payload)]`` (the ``StreamDecoder`` protocol)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[str | None, dict[str, Any]]]:
        self._buffer += chunk
        out: list[tuple[str | None, dict[str, Any]]] = []
        while len(self._buffer) >= _PRELUDE:
            total, headers_len, prelude_crc = struct.unpack_from(">III", self._buffer, 0)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise UpstreamProtocolError("The event stream's prelude CRC does not match.")
            if not _MIN_MESSAGE <= total <= _MAX_MESSAGE or headers_len > total - _MIN_MESSAGE:
                raise UpstreamProtocolError(f"The event stream announced an impossible length {total}.")
            if len(self._buffer) < total:
                break
            message = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", message, total - 4)
            if zlib.crc32(message[:-4]) != message_crc:
                raise UpstreamProtocolError("The event stream's message CRC does not match.")
            headers = decode_headers(message[_PRELUDE : _PRELUDE + headers_len])
            out.append(_event(headers, message[_PRELUDE + headers_len : -4]))
        return out

    @property
    def pending(self) -> int:
        """Bytes of a message still waiting for the rest of it."""
        return len(self._buffer)


def _event(headers: dict[str, Any], payload: bytes) -> tuple[str | None, dict[str, Any]]:
    try:
        body = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"The event stream sent a payload that is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        body = {"value": body}
    kind = headers.get(":message-type", "event")
    if kind == "event":
        return headers.get(":event-type"), body
    # exception (modelled errors) and error (":error-code"/":error-message" headers)
    name = headers.get(":exception-type") or headers.get(":error-code") or "error"
    message = body.get("message") or body.get("Message") or headers.get(":error-message") or name
    return "exception", {"type": name, "message": message}


# --- encoding: the other direction, for the mock provider and tests -------------------------


def _string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = b"".join(_string_header(k, v) for k, v in headers.items())
    total = _MIN_MESSAGE + len(raw_headers) + len(payload)
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def encode_event(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps(payload))


def encode_exception(exception_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, orjson.dumps({"message": message}))
