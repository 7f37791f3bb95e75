"""Shared pieces of the mock provider: tokens, reply text, JSON-schema samples, errors, SSE.

Everything here is deterministic so tests can predict what the mock answers:

- ``count_tokens`` counts with o200k_base (``encode_ordinary``: special-token text is plain text).
- ``reply_text`` is the text every dialect answers with.
- ``sample_from_schema`` is the JSON value used for tool arguments and ``json_schema`` replies.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

# Loaded once at import: the encoding ships inside bpe-openai, so this never downloads.
# bpe-openai 0.1.4 reads its data with the deprecated importlib.resources.open_binary; keep
# that warning from failing test runs that treat warnings as errors.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

    ENCODING = bpe_openai.get_encoding("o200k_base")

REPLY_PREFIX = "Mock reply to: "
TOOL_REPLY_PREFIX = "Mock reply to tool result: "
# Long enough that every stream carries >= 5 content chunks, even for an empty prompt.
REPLY_SUFFIX = " (this is a mock response)"
SNIPPET_CHARS = 60
MESSAGE_OVERHEAD = 3  # tokens added per message, as OpenAI's counting recipe does
REPLY_OVERHEAD = 3  # tokens added once per request ("every reply is primed with assistant")

JSONDict = dict[str, Any]


def count_tokens(text: str) -> int:
    return len(ENCODING.encode_ordinary(text))


def reply_text(last_text: str, *, tool_result: bool = False) -> str:
    """The mock's answer to a conversation whose last user (or tool) text is ``last_text``."""
    prefix = TOOL_REPLY_PREFIX if tool_result else REPLY_PREFIX
    return prefix + last_text[:SNIPPET_CHARS] + REPLY_SUFFIX


def continue_from(prefix: str, text: str) -> str:
    """A conversation ending in a partial assistant turn: the rest of ``text`` (prefill/continuation)."""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def token_pieces(text: str, max_tokens: int | None = None) -> tuple[list[str], int, bool]:
    """Split ``text`` into stream pieces of whole tokens, at most ``max_tokens`` tokens in all.

    Returns (pieces, tokens used, truncated). A piece is one token unless a token ends inside
    a UTF-8 character; then tokens are grouped so each piece decodes cleanly and
    ``"".join(pieces)`` equals the (possibly truncated) text.
    """
    tokens = ENCODING.encode_ordinary(text)
    truncated = max_tokens is not None and len(tokens) > max_tokens
    if truncated:
        tokens = tokens[:max_tokens]
    pieces: list[str] = []
    pending = b""
    for token in tokens:
        pending += ENCODING.decode_single_token_bytes(token)
        try:
            pieces.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # a multi-byte character spans tokens: wait for its end
        pending = b""
    if pending:  # truncation cut a character in half: keep what decodes
        tail = pending.decode("utf-8", errors="ignore")
        if tail:
            pieces.append(tail)
    return pieces, len(tokens), truncated


def split_pieces(text: str) -> list[str]:
    """Token pieces of ``text`` (used to stream tool-call arguments in several parts)."""
    return token_pieces(text)[0] or [text]


def content_text(content: Any) -> str:
    """Text of a message content: a string, or the ``text`` of each part joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def text_tokens(content: Any) -> int:
    """Tokens of a content: the string, or the sum over its text parts counted one by one."""
    if isinstance(content, str):
        return count_tokens(content)
    if isinstance(content, list):
        return sum(
            count_tokens(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return 0


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def short_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return prefix + digest[:24]


def new_id(prefix: str) -> str:
    return short_id(prefix, time.time_ns(), id(object()))


# --- JSON schema samples -------------------------------------------------------------------

_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "mock@example.com",
    "uri": "https://example.com/mock",
    "url": "https://example.com/mock",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_MAX_DEPTH = 8


def sample_from_schema(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A value of the schema's type; objects get their *required* properties, recursively."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None if depth > _MAX_DEPTH else "mock"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return sample_from_schema(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            typed = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return sample_from_schema((typed or options)[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        return {name: sample_from_schema(props.get(name, {}), root, depth + 1) for name in required}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [sample_from_schema(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        value: float = 1 if kind == "integer" else 1.5
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _STRING_FORMATS.get(schema.get("format", ""), "mock")


# --- errors in each dialect's own shape ----------------------------------------------------

_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    kind, default_code = _OPENAI_TYPES.get(status, ("server_error", None))
    error = {"message": message, "type": kind, "param": param, "code": code or default_code}
    return json_response({"error": error}, status, headers)


def anthropic_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    kind = _ANTHROPIC_TYPES.get(status, "api_error")
    return json_response({"type": "error", "error": {"type": kind, "message": message}}, status, headers)


_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_AWS_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def gemini_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    error = {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}
    return json_response({"error": error}, status, headers)


def bedrock_error(
    status: int, message: str, *, headers: dict[str, str] | None = None, kind: str | None = None
) -> web.Response:
    name = kind or _AWS_ERRORS.get(
        status, "InternalServerException" if status >= 500 else "ValidationException"
    )
    all_headers = {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return json_response({"message": message}, status, {**all_headers, **(headers or {})})


def cohere_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"id": new_id(""), "message": message}, status, headers)


def dialect_of(path: str) -> str:
    """Which dialect owns a path: openai, anthropic, gemini, bedrock or cohere."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/model/"):
        return "bedrock"
    if path.startswith("/v2/"):
        return "cohere"
    if path.startswith(("/v1beta/", "/v1/projects/", "/v1/publishers/")):
        return "gemini"
    return "openai"


def is_anthropic_path(path: str) -> bool:
    return dialect_of(path) == "anthropic"


_ERRORS = {
    "anthropic": anthropic_error,
    "gemini": gemini_error,
    "bedrock": bedrock_error,
    "cohere": cohere_error,
}


def error_for(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error in the shape of the dialect that owns ``path``."""
    shaper = _ERRORS.get(dialect_of(path))
    if shaper is not None:
        return shaper(status, message, headers=headers)
    return openai_error(status, message, headers=headers)


class BadRequest(Exception):
    """Raised by a dialect handler to answer 400 in its own error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --- one call and its stream ---------------------------------------------------------------


@dataclass
class Call:
    """What a dialect handler gets: the request, its parsed body and the fault switches."""

    request: web.Request
    body: JSONDict
    chunk_delay_ms: float = 0
    no_usage: bool = False
    cut_after_chunks: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


class SSEStream:
    """Writes SSE events, and drops the connection when a ``cut_after_chunks`` fault says so.

    Events come in three kinds: ``meta`` (role chunk, message_start, content_block_start/stop,
    ping), ``content`` (generated text or tool-argument pieces) and ``end`` (finish chunk, usage
    chunk, [DONE], message_delta, message_stop). Under a cut fault with N, meta events and the
    first N content events go out; the connection is aborted instead of the next content or end
    event, so a cut stream never ends cleanly.
    """

    def __init__(self, call: Call, content_type: str = "text/event-stream; charset=utf-8") -> None:
        self.call = call
        self.response = web.StreamResponse(
            headers={"Content-Type": content_type, "Cache-Control": "no-cache", **call.extra_headers}
        )
        self.content_sent = 0
        self.cut = False
        self._started = False

    async def start(self) -> None:
        await self.response.prepare(self.call.request)

    async def send(self, data: Any, *, event: str | None = None, kind: str = "meta") -> None:
        payload = data if isinstance(data, str) else dumps(data)
        frame = (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
        await self.send_frame(frame.encode(), kind=kind)

    async def send_frame(self, frame: bytes, *, kind: str = "meta") -> None:
        """One already-encoded frame (an SSE event, or a binary event-stream message)."""
        limit = self.call.cut_after_chunks
        if (
            not self.cut
            and limit is not None
            and (kind == "end" or (kind == "content" and self.content_sent >= limit))
        ):
            self.drop()
        if self.cut:
            return
        if self._started and self.call.chunk_delay_ms:
            await asyncio.sleep(self.call.chunk_delay_ms / 1000)
        self._started = True
        await self.response.write(frame)
        if kind == "content":
            self.content_sent += 1

    def drop(self) -> None:
        """Abort the TCP connection mid-body: the client sees an incomplete chunked payload."""
        self.cut = True
        transport = self.call.request.transport
        if transport is not None:
            transport.abort()

    async def finish(self) -> web.StreamResponse:
        if not self.cut:
            await self.response.write_eof()
        return self.response
