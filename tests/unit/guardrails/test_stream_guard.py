"""The stream guard over SSE events: windows, holds, flushes, both dialects, deny and placeholders."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from lockgate.errors import GuardrailDenied, GuardrailUnavailable
from lockgate.server.sse import SSEDecoder
from tests.unit.guardrails.kit import (
    anthropic_events,
    anthropic_text,
    guardrail,
    openai_events,
    openai_text,
    run_stream,
    session,
    split,
)

PII = guardrail("pii", {"type": "pii"}, action="redact")
TEXT = "Reach ann@example.com or +44 20 7946 0958; card 4111-1111-1111-1111. Bye now, see you later!"


def test_no_output_guardrail_means_no_guard() -> None:
    only_input = session(inputs=(PII,))
    assert only_input.stream_guard("openai", "chat") is None  # passthrough stays byte for byte


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 200])
async def test_openai_stream_redacts_across_any_split(size: int) -> None:
    guard = session(outputs=(PII,)).stream_guard("openai", "chat")
    content, _, chunks = openai_text(await run_stream(guard, openai_events(split(TEXT, [size]))))
    assert content == "Reach [EMAIL] or [PHONE]; card [CREDIT_CARD]. Bye now, see you later!"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["id"] == "chatcmpl-1" for c in chunks)


async def test_text_is_released_before_the_end_when_it_is_safe() -> None:
    guard = session(outputs=(PII,)).stream_guard("openai", "chat")
    long_text = "word " * 100
    released = []
    for event in openai_events(split(long_text, [4]))[:-2]:  # not the finish chunk nor [DONE]
        released.append(openai_text(await guard.feed(event))[0])
    early = "".join(released)
    assert len(early) >= len(long_text) - 70  # only the window is held back
    assert long_text.startswith(early)


async def test_tool_call_arguments_are_guarded_too() -> None:
    guard = session(outputs=(PII,)).stream_guard("openai", "chat")
    args = '{"to": "ann@example.com", "body": "hi"}'
    _, got, chunks = openai_text(await run_stream(guard, openai_events([], tool_args=split(args, [3]))))
    assert got == '{"to": "[EMAIL]", "body": "hi"}'
    first_call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first_call["id"] == "call_1" and first_call["function"]["name"] == "lookup"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("size", [1, 4, 9])
async def test_anthropic_stream_redacts_and_keeps_event_order(size: int) -> None:
    guard = session(outputs=(PII,)).stream_guard("anthropic", "messages")
    text, names = anthropic_text(await run_stream(guard, anthropic_events(split(TEXT, [size]))))
    assert text == "Reach [EMAIL] or [PHONE]; card [CREDIT_CARD]. Bye now, see you later!"
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}


async def test_deny_mid_stream_raises_before_the_text_leaves() -> None:
    deny = guardrail("no-mail", {"type": "pii", "params": {"entities": ["email"]}})
    guard = session(outputs=(deny,)).stream_guard("openai", "chat")
    sent = b""
    with pytest.raises(GuardrailDenied) as caught:
        for event in openai_events(split("Hello there, write to ann@example.com please " + "x " * 50, [3])):
            sent += await guard.feed(event)
    assert "ann@" not in openai_text(sent)[0] and openai_text(sent)[0].startswith("Hello")
    assert caught.value.stage == "output" and caught.value.check == "pii"


async def test_placeholders_split_across_chunks_are_restored() -> None:
    s = session(outputs=())
    placeholder = s.vault.placeholder("EMAIL", "ann@example.com")
    guard = s.stream_guard("openai", "chat")
    assert guard is not None  # a vault with placeholders needs the answer watched
    content, _, _ = openai_text(
        await run_stream(guard, openai_events(split(f"Write to {placeholder} soon", [2])))
    )
    assert content == "Write to ann@example.com soon" and s.restored == 1


async def test_final_checks_hold_the_whole_answer_and_release_it_checked() -> None:
    schema = guardrail("json", {"type": "json_schema", "params": {"schema": {"type": "object"}}})
    s = session(outputs=(schema, PII))
    guard = s.stream_guard("openai", "chat")
    events = openai_events(split('{"mail": "ann@example.com"}', [3]))
    held = [await guard.feed(e) for e in events[:-1]]
    assert held == [b""] * len(held)  # nothing leaves before the end
    tail = await guard.feed(events[-1])
    content, _, chunks = openai_text(tail)
    assert content == '{"mail": "[EMAIL]"}' and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert [o.verdict for o in s.outcomes] == ["passed", "redacted"]
    bad = session(outputs=(schema,)).stream_guard("openai", "chat")
    with pytest.raises(GuardrailDenied):
        await run_stream(bad, openai_events(["not json"]))


async def test_completions_stream_text_is_guarded() -> None:
    guard = session(outputs=(PII,)).stream_guard("openai", "completions")
    events = [
        b"data: "
        + orjson.dumps(
            {
                "id": "c1",
                "object": "text_completion",
                "choices": [{"index": 0, "text": p, "finish_reason": None}],
            }
        )
        + b"\n\n"
        for p in split("mail ann@example.com ok", [4])
    ]
    events.append(
        b"data: "
        + orjson.dumps({"id": "c1", "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
        + b"\n\n"
    )
    events.append(b"data: [DONE]\n\n")
    out = await run_stream(guard, events)
    text = "".join(
        c["text"]
        for ev in SSEDecoder().feed(out)
        if ev.data != b"[DONE]"
        for c in orjson.loads(ev.data)["choices"]
    )
    assert text == "mail [EMAIL] ok"


async def test_a_failing_window_check_fails_closed() -> None:
    g = guardrail("g", {"type": "pii"}, action="redact")
    guard = session(outputs=(g,)).stream_guard("openai", "chat")
    crashing = replace(g.checks[0], spec=replace(g.checks[0].spec, fn=_explode))
    guard.window_checks = [(g, crashing)]
    with pytest.raises(GuardrailUnavailable, match="detector crashed"):
        await run_stream(guard, openai_events(["hello " * 30]))


def _explode(data: object, params: object) -> None:
    raise RuntimeError("detector crashed")
