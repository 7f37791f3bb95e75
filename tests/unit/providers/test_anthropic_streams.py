"""Stream translation both ways, checked against recorded streams and the official SDKs."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from anthropic_fixtures import (
    SSEEvent,
    anthropic_sdk_final_message,
    chunks_to_sse,
    load,
    openai_sdk_final_completion,
    read_sse,
    to_sse,
    zero_created,
)

from lockgate.errors import UpstreamError
from lockgate.providers.anthropic import (
    ChatStreamToMessages,
    MessagesStreamToChat,
    messages_response_to_chat,
)


def translate_anthropic(events: list[SSEEvent], model: str = "claude-sonnet") -> list[dict[str, Any]]:
    translator = MessagesStreamToChat(model)
    chunks: list[dict[str, Any]] = []
    for name, data in events:
        chunks.extend(translator.feed(name, data))
    chunks.extend(translator.finish())
    return chunks


def translate_chat(chunks: list[Any], model: str = "claude-sonnet") -> list[tuple[str, dict[str, Any]]]:
    translator = ChatStreamToMessages(model)
    events: list[tuple[str, dict[str, Any]]] = []
    for chunk in chunks:
        events.extend(translator.feed(chunk))
    events.extend(translator.finish())
    return events


def message_start(usage: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 1},
    }
    return "message_start", {"type": "message_start", "message": message}


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice], **extra}


# --- Anthropic upstream stream -> chat chunks ---------------------------------------------


def test_anthropic_stream_to_chat_golden() -> None:
    events = read_sse("streams/anthropic_text_tools.sse")
    chunks = translate_anthropic(events)
    assert zero_created(chunks) == load("streams/anthropic_text_tools.chunks.json")
    for item in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(item)


def test_anthropic_stream_usage_attribute() -> None:
    translator = MessagesStreamToChat("claude-sonnet")
    assert translator.usage is None
    events = read_sse("streams/anthropic_text_tools.sse")
    translator.feed(*events[0])
    assert translator.usage is not None and translator.usage["prompt_tokens"] == 1496
    for name, data in events[1:]:
        translator.feed(name, data)
    assert translator.usage == {
        "prompt_tokens": 1496,
        "completion_tokens": 112,
        "total_tokens": 1608,
        "prompt_tokens_details": {"cached_tokens": 1024, "cache_creation_tokens": 0},
    }
    assert translator.finish() == []  # the usage chunk went out on message_stop


def test_anthropic_stream_matches_non_stream_translation() -> None:
    """The OpenAI SDK's assembly of the translated stream equals the non-stream translation."""
    chunks = translate_anthropic(read_sse("streams/anthropic_text_tools.sse"))
    completion = openai_sdk_final_completion(chunks_to_sse(chunks))
    message = load("responses/message_tool_use.json")["anthropic"]
    expected = messages_response_to_chat(message)["choices"][0]["message"]
    got = completion.choices[0].message
    assert got.content == expected["content"]
    assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in got.tool_calls or []] == [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in expected["tool_calls"]
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens == 112


def test_anthropic_thinking_stream() -> None:
    events: list[SSEEvent] = [
        message_start(),
        (
            None,
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            None,
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Hmm."},
            },
        ),
        (
            None,
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "Eq"},
            },
        ),
        (None, {"type": "content_block_stop", "index": 0}),
        (None, {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "Hi"}}),
        (
            None,
            {"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": {}}},
        ),
        (
            None,
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
        ),
    ]
    chunks = translate_anthropic(events)  # no message_stop: finish() still owes the usage chunk
    assert [
        c["choices"][0]["delta"] if c["choices"] else c["usage"]["completion_tokens"] for c in chunks
    ] == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Hmm."},
        {"content": "Hi"},
        {},
        9,
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"


def test_anthropic_stream_ignores_server_tool_blocks() -> None:
    events: list[SSEEvent] = [
        message_start(),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t", "name": "f"},
            },
        ),
    ]
    chunks = translate_anthropic(events)
    assert [c["choices"][0]["delta"] for c in chunks if c["choices"]] == [
        {"role": "assistant", "content": ""},
        {
            "tool_calls": [
                {"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        },
    ]


def test_anthropic_tool_without_arguments_gets_empty_object() -> None:
    start = {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}
    events: list[SSEEvent] = [
        message_start(),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": ""},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    completion = openai_sdk_final_completion(chunks_to_sse(translate_anthropic(events)))
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [("toolu_1", "get_time", "{}")]


def test_anthropic_stream_usage_updates_are_cumulative() -> None:
    translator = MessagesStreamToChat("m")
    translator.feed(*message_start({"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 1}))
    translator.feed(
        "message_delta",
        {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 20, "input_tokens": None}},
    )
    assert translator.usage is not None
    assert (translator.usage["prompt_tokens"], translator.usage["completion_tokens"]) == (105, 20)


@pytest.mark.parametrize(
    ("anthropic_type", "openai_type"),
    [
        ("overloaded_error", "api_error"),
        ("rate_limit_error", "rate_limit_error"),
        ("brand_new_error", "api_error"),
    ],
)
def test_anthropic_stream_error_event_raises(anthropic_type: str, openai_type: str) -> None:
    translator = MessagesStreamToChat("m")
    translator.feed(*message_start())
    with pytest.raises(UpstreamError) as err:
        translator.feed(
            "error", {"type": "error", "error": {"type": anthropic_type, "message": "Overloaded"}}
        )
    assert (err.value.message, err.value.type, err.value.code, err.value.provider) == (
        "Overloaded",
        openai_type,
        anthropic_type,
        "anthropic",
    )


def test_anthropic_stream_without_start_uses_given_model() -> None:
    translator = MessagesStreamToChat("claude-fallback")
    out = translator.feed(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
    )
    assert out[0]["model"] == "claude-fallback"
    assert translator.feed("ping", {"type": "ping"}) == []
    assert translator.finish() == []  # no usage was ever seen


# --- chat chunks -> Anthropic events (ingress) --------------------------------------------


def test_chat_stream_to_anthropic_golden() -> None:
    chunks = [data for _, data in read_sse("streams/openai_text_tools.sse") if data != "[DONE]"]
    events = translate_chat(chunks)
    assert events == read_sse("streams/openai_text_tools.anthropic.sse")


def test_chat_stream_assembles_in_the_anthropic_sdk() -> None:
    chunks = [data for _, data in read_sse("streams/openai_text_tools.sse") if data != "[DONE]"]
    message = anthropic_sdk_final_message(to_sse(translate_chat(chunks)))
    assert message.id == "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "text", "text": "Checking both cities."},
        {
            "type": "tool_use",
            "id": "call_Dn2RJJSxzDm49vlVTehseJ0k",
            "name": "get_weather",
            "input": {"location": "Paris, FR"},
        },
        {
            "type": "tool_use",
            "id": "call_6Ex5dN3w2VdYk1f9Qm7sPz1c",
            "name": "get_time",
            "input": {"tz": "Asia/Tokyo"},
        },
    ]
    assert message.stop_reason == "tool_use"
    # message_start said 0 input tokens; message_delta carried the real counts.
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.output_tokens,
    ) == (176, 1024, 48)


def test_chat_stream_interleaved_tool_calls() -> None:
    """A tool call index that was closed keeps receiving deltas at its own block index."""
    chunks = [
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x"'},
                    }
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls"),
    ]
    events = translate_chat(chunks)
    assert [(name, data.get("index")) for name, data in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 0),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    message = anthropic_sdk_final_message(to_sse(events))
    assert [block.input for block in message.content] == [{"x": 1}, {}]  # type: ignore[union-attr]


def test_chat_stream_text_after_tool_and_missing_indexes() -> None:
    chunks = [
        chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}}]}),  # no index
        chunk({"content": "done"}),
        chunk({"refusal": " (partly)"}),
        chunk({}, "stop"),
    ]
    message = anthropic_sdk_final_message(to_sse(translate_chat(chunks)))
    assert [block.type for block in message.content] == ["tool_use", "text"]
    assert message.content[1].text == "done (partly)"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 0  # no usage chunk arrived


def test_chat_stream_usage_in_first_chunk_and_other_choices_ignored() -> None:
    usage = {"prompt_tokens": 30, "completion_tokens": 0, "total_tokens": 30}
    first = chunk({"role": "assistant", "content": "a"}, usage=usage)
    other = {
        "id": "chatcmpl-1",
        "choices": [{"index": 1, "delta": {"content": "zzz"}, "finish_reason": None}],
    }
    events = translate_chat([first, other, chunk({}, "length")])
    start = events[0][1]["message"]
    assert start["usage"] == {
        "input_tokens": 30,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    assert [data["delta"]["text"] for name, data in events if name == "content_block_delta"] == ["a"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_chat_stream_empty_upstream_still_closes_properly() -> None:
    events = translate_chat([])
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    message = anthropic_sdk_final_message(to_sse(events))
    assert message.content == [] and message.stop_reason == "end_turn"
