"""Round-trip properties: translating to Anthropic and back loses nothing the rules keep."""

from __future__ import annotations

from typing import Any

import orjson
from anthropic_fixtures import anthropic_sdk_final_message, to_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate.providers.anthropic import (
    ChatStreamToMessages,
    MessagesStreamToChat,
    chat_response_to_messages,
    chat_to_messages_request,
    messages_request_to_chat,
    messages_response_to_chat,
    usage_from_chat,
    usage_to_chat,
)

text = st.text(min_size=1, max_size=20)
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
arguments = st.dictionaries(names, json_value, max_size=4)
text_parts = st.lists(text.map(lambda t: {"type": "text", "text": t}), min_size=1, max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Chat histories in the canonical subset the rules map one-to-one."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for turn in range(draw(st.integers(1, 4))):
        after_tool = bool(messages) and messages[-1]["role"] == "tool"
        # A user message after tool results shares their Anthropic turn, so it comes back as parts.
        content = draw(text_parts) if after_tool else draw(text | text_parts)
        messages.append({"role": "user", "content": content})
        calls = [
            {
                "id": f"call_{turn}_{j}",
                "type": "function",
                "function": {"name": draw(names), "arguments": orjson.dumps(draw(arguments)).decode()},
            }
            for j in range(draw(st.integers(0, 3)))
        ]
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": draw(text | st.none()) if calls else draw(text),
        }
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        messages.extend({"role": "tool", "tool_call_id": call["id"], "content": draw(text)} for call in calls)
    return messages


@st.composite
def tool_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    tools = []
    for name in draw(st.lists(names, max_size=3, unique=True)):
        function: dict[str, Any] = {"name": name}
        if draw(st.booleans()):
            function["description"] = draw(text)
        properties = draw(st.dictionaries(names, st.just({"type": "string"}), max_size=3))
        function["parameters"] = {"type": "object", "properties": properties}
        tools.append({"type": "function", "function": function})
    return tools


@given(messages=conversations(), tools=tool_lists(), data=st.data())
def test_chat_to_messages_to_chat_preserves_messages_and_tools(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], data: st.DataObject
) -> None:
    request: dict[str, Any] = {"model": "claude-sonnet", "messages": messages}
    if tools:
        request["tools"] = tools
        choices = [
            "auto",
            "required",
            "none",
            *({"type": "function", "function": {"name": t["function"]["name"]}} for t in tools),
        ]
        request["tool_choice"] = data.draw(st.sampled_from(choices))
    body, dropped = chat_to_messages_request(request)
    assert dropped == []
    back = messages_request_to_chat(body)
    assert back["messages"] == messages
    assert back.get("tools") == request.get("tools")
    assert back.get("tool_choice") == request.get("tool_choice")


counts = st.integers(0, 10**7)


@given(input_tokens=counts, output_tokens=counts, cache_read=counts, cache_creation=counts)
def test_usage_round_trip(
    input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int
) -> None:
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }
    canonical = usage_to_chat(usage)
    assert canonical["prompt_tokens"] == input_tokens + cache_read + cache_creation
    assert canonical["total_tokens"] == canonical["prompt_tokens"] + output_tokens
    assert usage_from_chat(canonical) == usage


@st.composite
def anthropic_messages(draw: st.DrawFn) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if draw(st.booleans()):
        content.append({"type": "text", "text": draw(text)})
    for j in range(draw(st.integers(0, 3))):
        content.append(
            {"type": "tool_use", "id": f"toolu_{j}", "name": draw(names), "input": draw(arguments)}
        )
    stop_reason = (
        "tool_use" if len(content) > 1 or (content and content[-1]["type"] == "tool_use") else "end_turn"
    )
    return {
        "id": "msg_" + draw(st.from_regex(r"[A-Za-z0-9]{8,24}", fullmatch=True)),
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet",
        "content": content,
        "stop_reason": draw(st.sampled_from([stop_reason, "max_tokens"])),
        "stop_sequence": None,
        "usage": {
            "input_tokens": draw(counts),
            "output_tokens": draw(counts),
            "cache_read_input_tokens": draw(counts),
            "cache_creation_input_tokens": draw(counts),
        },
    }


@given(message=anthropic_messages())
def test_response_round_trip(message: dict[str, Any]) -> None:
    assert chat_response_to_messages(messages_response_to_chat(message), model="claude-sonnet") == message


def split(draw: st.DrawFn, value: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, max(len(value) - 1, 1)), max_size=3)))
    return [value[a:b] for a, b in zip([0, *cuts], [*cuts, len(value)], strict=True) if value[a:b]]


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(message=anthropic_messages(), data=st.data())
def test_stream_round_trip_through_both_translators(message: dict[str, Any], data: st.DataObject) -> None:
    """Anthropic SSE -> chat chunks -> Anthropic SSE assembles, in the SDK, to the same message."""
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opened, deltas = (
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": p} for p in split(data.draw, block["text"])],
            )
        else:
            opened = {**block, "input": {}}
            pieces = split(data.draw, orjson.dumps(block["input"]).decode())
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
        )
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"]}, "usage": usage},
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))

    upstream = MessagesStreamToChat("claude-sonnet")
    ingress = ChatStreamToMessages("claude-sonnet")
    relayed: list[tuple[str, dict[str, Any]]] = []
    for name, payload in events:
        for chunk in upstream.feed(name, payload):
            relayed.extend(ingress.feed(chunk))
    relayed.extend(ingress.finish())

    final = anthropic_sdk_final_message(to_sse(relayed)).model_dump(exclude_none=True)
    assert final["id"] == message["id"]
    assert final["content"] == message["content"]
    assert final["stop_reason"] == message["stop_reason"]
    assert final["usage"] == message["usage"]
