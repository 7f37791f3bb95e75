"""Small builders for guardrail unit tests: compiled guardrails, sessions, and SSE streams."""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.guardrails import Attached, GuardrailSpec, GuardSession, compile_guardrail
from lockgate.guardrails.definition import Guardrail
from lockgate.server.sse import SSEDecoder


def guardrail(name: str, *checks: dict[str, Any], **options: Any) -> Guardrail:
    return compile_guardrail(name, GuardrailSpec.model_validate({"checks": list(checks), **options}))


def session(
    inputs: tuple[Guardrail, ...] = (), outputs: tuple[Guardrail, ...] = (), **kw: Any
) -> GuardSession:
    return GuardSession(
        Attached(inputs, outputs),
        model=kw.pop("model", "gpt-4o-mini"),
        metadata=kw.pop("metadata", None),
        **kw,
    )


def openai_events(pieces: list[str], *, tool_args: list[str] | None = None) -> list[bytes]:
    """A chat completion stream: role chunk, one chunk per piece, finish chunk, [DONE]."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces]
    for i, args in enumerate(tool_args or []):
        call: dict[str, Any] = {"index": 0, "function": {"arguments": args}}
        if i == 0:
            call.update(id="call_1", type="function", function={"name": "lookup", "arguments": args})
        events.append(chunk({"tool_calls": [call]}))
    events.append(chunk({}, "tool_calls" if tool_args else "stop"))
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_events(pieces: list[str]) -> list[bytes]:
    def event(name: str, payload: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **payload}) + b"\n\n"

    events = [
        event("message_start", {"message": {"id": "msg_1", "role": "assistant", "content": [], "usage": {}}}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    events += [
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}}) for p in pieces
    ]
    events += [
        event("content_block_stop", {"index": 0}),
        event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
        event("message_stop", {}),
    ]
    return events


def split(text: str, sizes: list[int]) -> list[str]:
    pieces, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        pieces.append(text[i : i + n])
        i, k = i + n, k + 1
    return pieces


def openai_text(raw: bytes) -> tuple[str, str, list[dict[str, Any]]]:
    """(content, tool arguments, decoded chunks) of an OpenAI SSE body."""
    content, args, chunks = [], [], []
    for ev in SSEDecoder().feed(raw):
        if ev.data == b"[DONE]":
            continue
        chunk = orjson.loads(ev.data)
        chunks.append(chunk)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                args.append((call.get("function") or {}).get("arguments") or "")
    return "".join(content), "".join(args), chunks


def anthropic_text(raw: bytes) -> tuple[str, list[str]]:
    text, names = [], []
    for ev in SSEDecoder().feed(raw):
        names.append(ev.event or "")
        if ev.event == "content_block_delta":
            text.append(orjson.loads(ev.data)["delta"].get("text", ""))
    return "".join(text), names


async def run_stream(guard: Any, events: list[bytes]) -> bytes:
    out = [await guard.feed(e) for e in events]
    out.append(await guard.finish())
    return b"".join(out)
