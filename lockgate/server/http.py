"""Request reading, responses and the error envelope: the only place errors become bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from lockgate.errors import BodyTooLarge, LockgateError
from lockgate.server.types import Headers, Receive, Scope, Send

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-style proxies in front of us not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    client: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_scope(cls, scope: Scope) -> Request:
        # Header names arrive lower-cased from uvicorn; repeated headers keep the last value.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        return cls(scope["method"], scope["path"], headers, client=client[0] if client else None)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing anything over ``limit`` bytes before reading it all."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                raise BodyTooLarge(f"Request body is {declared} bytes; the limit is {limit} bytes.")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"Request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: object, headers: Headers | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(payload), [*JSON_HEADERS, *(headers or [])])


def error_payload(exc: LockgateError, dialect: str = "openai") -> dict:
    """The error envelope: OpenAI's shape, or Anthropic's on the Messages endpoint."""
    if dialect == "anthropic":
        from lockgate.providers.anthropic import error_to_anthropic

        return error_to_anthropic(exc.status, exc.to_dict())
    return exc.to_dict()


async def send_error(
    send: Send, exc: LockgateError, dialect: str = "openai", headers: Headers | None = None
) -> None:
    await send_json(send, exc.status, error_payload(exc, dialect), headers)
