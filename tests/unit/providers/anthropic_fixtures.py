"""Shared helpers for the Anthropic dialect tests: recorded fixtures, an SSE reader, SDK clients.

The official SDKs run against ``httpx.MockTransport`` (no network), so the tests check that
what Lockgate emits is accepted by the clients users actually run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx  # the HTTP client the official SDKs are built on
import openai
import orjson

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"

SSEEvent = tuple[str | None, Any]


def load(relpath: str) -> Any:
    return orjson.loads((FIXTURES / relpath).read_bytes())


def case_files(subdir: str) -> list[Path]:
    return sorted((FIXTURES / subdir).glob("*.json"))


def parse_sse(text: str) -> list[SSEEvent]:
    """A small SSE reader (the gateway has its own): ``(event name or None, parsed data)``.

    ``data: [DONE]`` (OpenAI's terminator) is returned as the string ``"[DONE]"``.
    """
    events: list[SSEEvent] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data_lines: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data_lines.append(value)
        if data_lines:
            data = "\n".join(data_lines)
            events.append((name, data if data == "[DONE]" else orjson.loads(data)))
    return events


def read_sse(relpath: str) -> list[SSEEvent]:
    return parse_sse((FIXTURES / relpath).read_text(encoding="utf-8"))


def to_sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data)) for name, data in events)


def chunks_to_sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: %s\n\n" % orjson.dumps(chunk) for chunk in chunks) + b"data: [DONE]\n\n"


def zero_created(items: Any) -> Any:
    """Chunks and completions carry ``created`` = now; goldens record 0."""
    if isinstance(items, list):
        return [zero_created(item) for item in items]
    return {**items, "created": 0} if isinstance(items, dict) and "created" in items else items


def _transport(body: bytes, content_type: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    return httpx.MockTransport(handler)


def anthropic_sdk_final_message(sse: bytes) -> anthropic.types.Message:
    """What the official Anthropic SDK assembles from an SSE body."""
    http = httpx.Client(transport=_transport(sse, "text/event-stream"))
    client = anthropic.Anthropic(
        api_key="test", base_url="http://lockgate.test", http_client=http, max_retries=0
    )
    with client.messages.stream(
        model="claude-sonnet", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_message()


def openai_sdk_final_completion(sse: bytes) -> openai.types.chat.ParsedChatCompletion[None]:
    """What the official OpenAI SDK assembles from an SSE body of chat chunks."""
    http = httpx.Client(transport=_transport(sse, "text/event-stream"))
    client = openai.OpenAI(
        api_key="test", base_url="http://lockgate.test/v1", http_client=http, max_retries=0
    )
    with client.chat.completions.stream(
        model="claude-sonnet", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_completion()
