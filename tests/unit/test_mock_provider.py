"""The mock provider over real loopback HTTP: both dialects, streams, faults, control API."""

from __future__ import annotations

import asyncio
import base64
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from lockgate.testing.mock_provider import (
    MockProvider,
    MockProviderThread,
    MockState,
    chat_prompt_tokens,
    count_tokens,
    embedding_vector,
    reply_text,
    sample_from_schema,
    validate_fault,
)
from lockgate.testing.mock_provider_anthropic import input_tokens
from lockgate.testing.mock_provider_common import token_pieces

OPENAI = {"Authorization": "Bearer sk-test"}
ANTHROPIC = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "x": {"type": "string"}},
            "required": ["city", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
Frames = list[tuple[str | None, str]]


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def parse_sse(text: str) -> Frames:
    frames: Frames = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        frames.append((event, data))
    return frames


async def read_until_error(response: aiohttp.ClientResponse) -> tuple[Frames, Exception | None]:
    """Read an SSE body until it ends or breaks; return the complete frames and the error."""
    buffer = b""
    try:
        async for chunk in response.content.iter_any():
            buffer += chunk
    except aiohttp.ClientPayloadError as exc:
        complete = buffer.decode()[: buffer.decode().rfind("\n\n") + 2]
        return parse_sse(complete), exc
    return parse_sse(buffer.decode()), None


async def post(
    http: aiohttp.ClientSession,
    mock: MockProvider,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    dialect = ANTHROPIC if path.startswith("/v1/messages") else OPENAI
    return await http.post(
        mock.url + path, data=orjson.dumps(body), headers=dialect if headers is None else headers
    )


async def chat(http: aiohttp.ClientSession, mock: MockProvider, **body: Any) -> tuple[int, Any]:
    response = await post(
        http, mock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER, **body}
    )
    return response.status, await response.json()


async def chat_stream(http: aiohttp.ClientSession, mock: MockProvider, **body: Any) -> list[Any]:
    payload = {"model": "gpt-4o-mini", "messages": USER, "stream": True, **body}
    response = await post(http, mock, "/v1/chat/completions", payload)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    frames = parse_sse(await response.text())
    assert frames[-1] == (None, "[DONE]")
    return [orjson.loads(data) for _, data in frames[:-1]]


# --- OpenAI chat ---------------------------------------------------------------------------


async def test_chat_non_stream_text_and_usage(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    status, body = await chat(http, mock)
    assert status == 200
    expected = reply_text("What is the capital of France?")
    assert expected == "Mock reply to: What is the capital of France? (this is a mock response)"
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": expected, "refusal": None, "annotations": []}
    assert choice["finish_reason"] == "stop"
    prompt = count_tokens("What is the capital of France?") + 3 + 3
    assert chat_prompt_tokens(USER) == prompt
    assert body["usage"]["prompt_tokens"] == prompt
    assert body["usage"]["completion_tokens"] == count_tokens(expected)
    assert body["usage"]["total_tokens"] == prompt + count_tokens(expected)
    recorded = mock.requests[0]
    assert recorded["method"] == "POST"
    assert recorded["path"] == "/v1/chat/completions"
    assert recorded["headers"]["authorization"] == "Bearer sk-test"
    assert recorded["json"]["messages"] == USER


async def test_chat_reply_uses_last_user_text_snippet(
    mock: MockProvider, http: aiohttp.ClientSession
) -> None:
    long = "x" * 100
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": long}]},
    ]
    status, body = await chat(http, mock, messages=messages)
    assert status == 200
    assert (
        body["choices"][0]["message"]["content"]
        == "Mock reply to: " + "x" * 60 + " (this is a mock response)"
    )
    assert body["usage"]["prompt_tokens"] == count_tokens("be brief") + count_tokens(long) + 2 * 3 + 3


async def test_chat_n_choices_and_max_tokens(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    status, body = await chat(http, mock, n=3, max_tokens=4)
    assert status == 200
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    for choice in body["choices"]:
        assert choice["message"]["content"] == "Mock reply to:"
        assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 12
    _, body = await chat(http, mock, max_completion_tokens=2)
    assert body["choices"][0]["message"]["content"] == "Mock reply"


async def test_chat_logprobs(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    _, body = await chat(http, mock, logprobs=True, top_logprobs=3)
    content = body["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == body["choices"][0]["message"]["content"]
    first = content[0]
    assert first["token"] == "Mock" and first["bytes"] == list(b"Mock") and first["logprob"] < 0
    assert len(first["top_logprobs"]) == 3
    assert first["top_logprobs"][0]["token"] == "Mock"
    status, body = await chat(http, mock, top_logprobs=2)
    assert status == 400 and body["error"]["param"] == "logprobs"


async def test_chat_response_formats(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    _, body = await chat(http, mock, response_format={"type": "json_object"})
    parsed = orjson.loads(body["choices"][0]["message"]["content"])
    assert parsed == {"reply": reply_text("What is the capital of France?")}
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18},
            "tags": {"type": "array", "items": {"type": "string"}},
            "unit": {"enum": ["c", "f"]},
            "optional": {"type": "string"},
        },
        "required": ["name", "age", "tags", "unit"],
    }
    rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    _, body = await chat(http, mock, response_format=rf)
    parsed = orjson.loads(body["choices"][0]["message"]["content"])
    assert parsed == {"name": "mock", "age": 18, "tags": ["mock"], "unit": "c"}


async def test_chat_stream_with_usage_chunk(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    chunks = await chat_stream(http, mock, stream_options={"include_usage": True})
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(contents) >= 5
    text = reply_text("What is the capital of France?")
    assert "".join(contents) == text
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == count_tokens(text)
    assert last["usage"]["prompt_tokens"] == chat_prompt_tokens(USER)


async def test_chat_stream_without_usage_and_n(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    chunks = await chat_stream(http, mock, n=2, max_tokens=3)
    assert all("usage" not in c for c in chunks)
    per_choice: dict[int, str] = {0: "", 1: ""}
    finishes = {}
    for c in chunks:
        choice = c["choices"][0]
        per_choice[choice["index"]] += choice["delta"].get("content") or ""
        if choice["finish_reason"]:
            finishes[choice["index"]] = choice["finish_reason"]
    assert per_choice == {0: "Mock reply to", 1: "Mock reply to"}
    assert finishes == {0: "length", 1: "length"}


async def test_chat_stream_logprobs(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    chunks = await chat_stream(http, mock, logprobs=True, top_logprobs=1)
    content_chunks = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    for c in content_chunks:
        entry = c["choices"][0]["logprobs"]["content"][0]
        assert entry["token"] == c["choices"][0]["delta"]["content"]
        assert len(entry["top_logprobs"]) == 1


# --- OpenAI tools --------------------------------------------------------------------------


async def test_tool_call_single_named(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    _, body = await chat(http, mock, tools=[WEATHER, TIME], tool_choice=choice)
    message = body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_time", "arguments": "{}"}
    assert body["usage"]["completion_tokens"] == count_tokens("get_time") + count_tokens("{}")


async def test_tool_calls_parallel_and_not(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    _, body = await chat(http, mock, tools=[WEATHER, TIME])
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "mock", "days": 1}
    assert calls[0]["id"] != calls[1]["id"]
    _, body = await chat(http, mock, tools=[WEATHER, TIME], parallel_tool_calls=False)
    assert [c["function"]["name"] for c in body["choices"][0]["message"]["tool_calls"]] == ["get_weather"]
    _, body = await chat(http, mock, tools=[WEATHER, TIME], tool_choice="none")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in body["choices"][0]["message"]
    status, body = await chat(
        http, mock, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}
    )
    assert status == 400 and body["error"]["param"] == "tool_choice"


async def test_tool_result_gets_text_reply(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"a":1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    _, body = await chat(http, mock, messages=messages, tools=[WEATHER])
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == reply_text("Sunny, 21 C", tool_result=True)
    assert "Sunny, 21 C" in body["choices"][0]["message"]["content"]
    expected_prompt = (
        count_tokens(USER[0]["content"])
        + count_tokens("get_weather")
        + count_tokens('{"a":1}')
        + count_tokens("Sunny, 21 C")
        + 3 * 3
        + 3
    )
    assert body["usage"]["prompt_tokens"] == expected_prompt


async def test_tool_call_stream_deltas(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    chunks = await chat_stream(http, mock, tools=[WEATHER, TIME])
    deltas = [c["choices"][0]["delta"] for c in chunks]
    first = deltas[0]
    assert first["role"] == "assistant"
    start = first["tool_calls"][0]
    assert start["index"] == 0 and start["id"].startswith("call_") and start["type"] == "function"
    assert start["function"] == {"name": "get_weather", "arguments": ""}
    arguments: dict[int, list[str]] = {0: [], 1: []}
    names = {}
    for delta in deltas:
        for tc in delta.get("tool_calls") or []:
            if "id" in tc:
                names[tc["index"]] = tc["function"]["name"]
            else:
                arguments[tc["index"]].append(tc["function"]["arguments"])
    assert names == {0: "get_weather", 1: "get_time"}
    assert len(arguments[0]) >= 3
    assert orjson.loads("".join(arguments[0])) == {"city": "mock", "days": 1}
    assert orjson.loads("".join(arguments[1])) == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# --- OpenAI errors -------------------------------------------------------------------------


async def test_openai_request_errors(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    body = {"model": "gpt-4o-mini", "messages": USER}
    response = await post(http, mock, "/v1/chat/completions", body, headers={})
    assert response.status == 401
    error = (await response.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    response = await http.post(mock.url + "/v1/chat/completions", data=b"{nope", headers=OPENAI)
    assert response.status == 400
    assert (await response.json())["error"]["type"] == "invalid_request_error"
    response = await post(http, mock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "messages"
    response = await http.get(mock.url + "/v1/nothing-here", headers=OPENAI)
    assert response.status == 404
    assert (await response.json())["error"]["message"] == "Invalid URL (GET /v1/nothing-here)"


# --- legacy completions, embeddings, models ------------------------------------------------


async def test_legacy_completions(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    response = await post(
        http, mock, "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
    )
    body = await response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == reply_text("Say hi")
    assert body["usage"]["prompt_tokens"] == count_tokens("Say hi")
    # The real default max_tokens of /v1/completions is 16.
    long_prompt = "word " * 30
    payload = {"model": "gpt-3.5-turbo-instruct", "prompt": [long_prompt, [9906, 1917]], "logprobs": 2}
    body = await (await post(http, mock, "/v1/completions", payload)).json()
    assert len(body["choices"]) == 2
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 16 + count_tokens(body["choices"][1]["text"])
    assert body["usage"]["prompt_tokens"] == count_tokens(long_prompt) + 2
    logprobs = body["choices"][0]["logprobs"]
    assert len(logprobs["tokens"]) == 16 and len(logprobs["top_logprobs"][0]) == 2


async def test_legacy_completions_stream(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    payload = {"model": "m", "prompt": "Say hi", "stream": True, "stream_options": {"include_usage": True}}
    frames = parse_sse(await (await post(http, mock, "/v1/completions", payload)).text())
    assert frames[-1][1] == "[DONE]"
    chunks = [orjson.loads(d) for _, d in frames[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == reply_text("Say hi")
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == count_tokens("Say hi")


async def test_embeddings_float_and_base64(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    payload = {"model": "text-embedding-3-small", "input": ["hello", "world"]}
    body = await (await post(http, mock, "/v1/embeddings", payload)).json()
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    vectors = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert len(vectors[0]) == 16 and vectors[0] != vectors[1]
    assert abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-5
    assert vectors[0] == embedding_vector("hello")
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    payload = {"model": "m", "input": "hello", "encoding_format": "base64", "dimensions": 8}
    body = await (await post(http, mock, "/v1/embeddings", payload)).json()
    decoded = list(struct.unpack("<8f", base64.b64decode(body["data"][0]["embedding"])))
    assert decoded == embedding_vector("hello", 8)
    body = await (await post(http, mock, "/v1/embeddings", {"model": "m", "input": [[1, 2, 3]]})).json()
    assert body["usage"]["prompt_tokens"] == 3 and len(body["data"]) == 1
    response = await post(http, mock, "/v1/embeddings", {"model": "m", "input": ""})
    assert response.status == 400 and (await response.json())["error"]["param"] == "input"


async def test_models(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    body = await (await http.get(mock.url + "/v1/models", headers=OPENAI)).json()
    ids = [m["id"] for m in body["data"]]
    assert body["object"] == "list"
    assert {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"} <= set(ids)
    assert all(m["object"] == "model" for m in body["data"])
    response = await http.get(mock.url + "/v1/models", headers={"x-api-key": "k"})
    assert response.status == 200
    response = await http.get(mock.url + "/v1/models/gpt-4o", headers=OPENAI)
    assert (await response.json())["id"] == "gpt-4o"
    response = await http.get(mock.url + "/v1/models/nope", headers=OPENAI)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "model_not_found"


# --- Anthropic -----------------------------------------------------------------------------


def anthropic_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi"}],
        **extra,
    }


async def test_anthropic_message(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    body = anthropic_body(system="Be nice")
    response = await post(http, mock, "/v1/messages", body)
    message = await response.json()
    assert response.headers["request-id"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": reply_text("Hi")}]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    expected_input = count_tokens("Be nice") + 3 + count_tokens("Hi") + 3 + 3
    assert input_tokens(body) == expected_input
    usage = message["usage"]
    assert usage["input_tokens"] == expected_input
    assert usage["output_tokens"] == count_tokens(reply_text("Hi"))
    assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] == 0


async def test_anthropic_cache_and_max_tokens(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    system = [{"type": "text", "text": "Long system prompt " * 20, "cache_control": {"type": "ephemeral"}}]
    body = anthropic_body(system=system, max_tokens=3)
    message = await (await post(http, mock, "/v1/messages", body)).json()
    total = input_tokens(body)
    assert message["usage"]["cache_read_input_tokens"] == total // 2
    assert message["usage"]["input_tokens"] == total - total // 2
    assert message["stop_reason"] == "max_tokens"
    assert message["content"][0]["text"] == "Mock reply to"
    assert message["usage"]["output_tokens"] == 3


async def test_anthropic_errors(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    response = await post(http, mock, "/v1/messages", anthropic_body(), headers={"x-api-key": "k"})
    assert response.status == 400
    body = await response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in body["error"]["message"]
    response = await post(
        http, mock, "/v1/messages", anthropic_body(), headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status == 401
    assert (await response.json())["error"]["type"] == "authentication_error"
    body = anthropic_body()
    del body["max_tokens"]
    response = await post(http, mock, "/v1/messages", body)
    assert response.status == 400 and "max_tokens" in (await response.json())["error"]["message"]
    response = await http.post(mock.url + "/v1/messages", data=b"not json", headers=ANTHROPIC)
    assert response.status == 400 and (await response.json())["type"] == "error"


async def test_anthropic_stream_event_sequence(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    response = await post(http, mock, "/v1/messages", anthropic_body(stream=True))
    assert response.headers["Content-Type"].startswith("text/event-stream")
    frames = parse_sse(await response.text())
    events = [e for e, _ in frames]
    datas = [orjson.loads(d) for _, d in frames]
    assert all(d["type"] == e for e, d in zip(events, datas, strict=True))
    text = reply_text("Hi")
    deltas = count_tokens(text)
    assert deltas >= 5
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = datas[0]["message"]
    assert start["content"] == [] and start["usage"]["input_tokens"] == input_tokens(anthropic_body())
    assert datas[1]["content_block"] == {"type": "text", "text": ""}
    assert "".join(d["delta"]["text"] for d in datas[3:-3]) == text
    assert all(d["delta"]["type"] == "text_delta" for d in datas[3:-3])
    assert datas[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert datas[-2]["usage"] == {"output_tokens": deltas}


TOOLS = [
    {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
]


async def test_anthropic_tools(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    message = await (await post(http, mock, "/v1/messages", anthropic_body(tools=TOOLS))).json()
    assert message["stop_reason"] == "tool_use"
    blocks = message["content"]
    assert [b["name"] for b in blocks] == ["get_weather", "get_time"]
    assert blocks[0]["type"] == "tool_use" and blocks[0]["id"].startswith("toolu_")
    assert blocks[0]["input"] == {"city": "mock"}
    choice = {"type": "tool", "name": "get_time"}
    message = await (
        await post(http, mock, "/v1/messages", anthropic_body(tools=TOOLS, tool_choice=choice))
    ).json()
    assert [b["name"] for b in message["content"]] == ["get_time"]
    choice = {"type": "any", "disable_parallel_tool_use": True}
    message = await (
        await post(http, mock, "/v1/messages", anthropic_body(tools=TOOLS, tool_choice=choice))
    ).json()
    assert [b["name"] for b in message["content"]] == ["get_weather"]
    body = anthropic_body(tools=TOOLS, tool_choice={"type": "none"})
    message = await (await post(http, mock, "/v1/messages", body)).json()
    assert message["stop_reason"] == "end_turn"


async def test_anthropic_tool_result_reply(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": 1}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "Rainy"}],
                }
            ],
        },
    ]
    message = await (
        await post(http, mock, "/v1/messages", anthropic_body(messages=messages, tools=TOOLS))
    ).json()
    assert message["content"][0]["text"] == reply_text("Rainy", tool_result=True)
    expected = (
        count_tokens("Weather?") + count_tokens("w") + count_tokens('{"c":1}') + count_tokens("Rainy") + 12
    )
    assert message["usage"]["input_tokens"] == expected


async def test_anthropic_tool_stream(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    response = await post(http, mock, "/v1/messages", anthropic_body(tools=TOOLS, stream=True))
    datas = [orjson.loads(d) for _, d in parse_sse(await response.text())]
    starts = [d for d in datas if d["type"] == "content_block_start"]
    assert [s["content_block"]["name"] for s in starts] == ["get_weather", "get_time"]
    assert starts[0]["content_block"]["input"] == {}
    pieces = [
        d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta" and d["index"] == 0
    ]
    assert len(pieces) >= 3 and orjson.loads("".join(pieces)) == {"city": "mock"}
    assert [d["type"] for d in datas][-2:] == ["message_delta", "message_stop"]
    assert datas[-2]["delta"]["stop_reason"] == "tool_use"


# --- faults --------------------------------------------------------------------------------


async def test_fault_status_with_retry_after(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(status=429, retry_after=2, message="slow down", times=2)
    for _ in range(2):
        status, body = await chat(http, mock)
        assert status == 429
        assert body["error"]["message"] == "slow down" and body["error"]["code"] == "rate_limit_exceeded"
    response = await post(http, mock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER})
    assert response.status == 200 and "Retry-After" not in response.headers
    mock.add_fault(status=503, retry_after=1.5)
    response = await post(http, mock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER})
    assert response.status == 503 and response.headers["Retry-After"] == "1.5"
    assert (await response.json())["error"]["type"] == "server_error"


async def test_fault_status_anthropic_shape_and_matching(
    mock: MockProvider, http: aiohttp.ClientSession
) -> None:
    mock.add_fault(status=529, match_path="/v1/messages", times=-1)
    mock.add_fault(status=500, match_model="gpt-4o")
    status, _ = await chat(http, mock)  # gpt-4o-mini: neither matches
    assert status == 200
    status, _ = await chat(http, mock, model="gpt-4o")
    assert status == 500
    for _ in range(2):
        response = await post(http, mock, "/v1/messages", anthropic_body())
        assert response.status == 529
        assert await response.json() == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Mock fault: status 529"},
        }
    assert len(mock.faults) == 1 and mock.faults[0]["times"] == -1


async def test_fault_reset_is_a_connection_error(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(reset=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(http, mock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER})
    status, _ = await chat(http, mock)
    assert status == 200


async def test_fault_malformed(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(malformed=True)
    response = await post(http, mock, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER})
    assert response.status == 200 and response.content_type == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(await response.read())


async def test_fault_cut_openai_stream(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(cut_after_chunks=3)
    payload = {"model": "gpt-4o-mini", "messages": USER, "stream": True}
    response = await post(http, mock, "/v1/chat/completions", payload)
    frames, error = await read_until_error(response)
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert all(d != "[DONE]" for _, d in frames)
    chunks = [orjson.loads(d) for _, d in frames]
    assert len(chunks) == 4  # role chunk + 3 content chunks
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "Mock reply to"


async def test_fault_cut_anthropic_stream(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(cut_after_chunks=2)
    response = await post(http, mock, "/v1/messages", anthropic_body(stream=True))
    frames, error = await read_until_error(response)
    assert error is not None
    events = [e for e, _ in frames]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
    ]


async def test_fault_no_usage(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(no_usage=True, times=4)
    _, body = await chat(http, mock)
    assert "usage" not in body
    chunks = await chat_stream(http, mock, stream_options={"include_usage": True})
    assert all(c["usage"] is None for c in chunks) and chunks[-1]["choices"]
    message = await (await post(http, mock, "/v1/messages", anthropic_body())).json()
    assert "usage" not in message
    response = await post(http, mock, "/v1/messages", anthropic_body(stream=True))
    datas = [orjson.loads(d) for _, d in parse_sse(await response.text())]
    assert "usage" not in datas[0]["message"] and "usage" not in datas[-2]
    _, body = await chat(http, mock)
    assert "usage" in body


async def test_fault_delay_and_timeout(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(delay_ms=120)
    started = time.perf_counter()
    status, _ = await chat(http, mock)
    assert status == 200 and time.perf_counter() - started >= 0.11
    mock.add_fault(delay_ms=300)
    with pytest.raises(asyncio.TimeoutError):
        await http.post(
            mock.url + "/v1/chat/completions",
            data=orjson.dumps({"model": "gpt-4o-mini", "messages": USER}),
            headers=OPENAI,
            timeout=aiohttp.ClientTimeout(total=0.05),
        )


async def test_latency_and_chunk_delay(http: aiohttp.ClientSession) -> None:
    async with MockProvider(latency_ms=60, chunk_delay_ms=5) as mock:
        started = time.perf_counter()
        chunks = await chat_stream(http, mock)
        assert time.perf_counter() - started >= 0.06 + 0.005 * (len(chunks) - 1)


def test_validate_fault() -> None:
    assert validate_fault({"status": 500}) == {"times": 1, "status": 500}
    for bad in (
        {"status": 500, "colour": "red"},
        {"match_model": "x"},
        {"status": 200},
        {"status": 500, "times": 0},
        {"reset": 1},
        {"cut_after_chunks": -1},
    ):
        with pytest.raises(ValueError):
            validate_fault(bad)


# --- control API, clear, threads, CLI ------------------------------------------------------


async def test_control_api(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    response = await http.post(mock.url + "/__mock/faults", json={"status": 502})
    assert (await response.json())["faults"] == [{"times": 1, "status": 502}]
    response = await http.post(mock.url + "/__mock/faults", json=[{"status": 503}, {"reset": True}])
    assert len((await response.json())["faults"]) == 3
    response = await http.post(mock.url + "/__mock/faults", json={"bogus": 1})
    assert response.status == 400
    assert len((await (await http.get(mock.url + "/__mock/faults")).json())["faults"]) == 3
    status, _ = await chat(http, mock)
    assert status == 502
    await http.delete(mock.url + "/__mock/faults")
    assert mock.faults == []
    status, _ = await chat(http, mock)
    assert status == 200
    recorded = (await (await http.get(mock.url + "/__mock/requests")).json())["requests"]
    assert [r["path"] for r in recorded] == ["/v1/chat/completions"] * 2  # control calls are not recorded
    await http.delete(mock.url + "/__mock/requests")
    assert mock.requests == []
    assert (await (await http.get(mock.url + "/__mock/health")).json()) == {"status": "ok"}


async def test_clear(mock: MockProvider, http: aiohttp.ClientSession) -> None:
    mock.add_fault(status=500, times=-1)
    await chat(http, mock)
    mock.clear()
    assert mock.faults == [] and mock.requests == []
    status, _ = await chat(http, mock)
    assert status == 200


def test_mock_provider_thread() -> None:
    with MockProviderThread() as mock:
        assert mock.url == f"http://127.0.0.1:{mock.port}" and mock.port > 0
        payload = orjson.dumps({"model": "gpt-4o-mini", "messages": USER})
        request = urllib.request.Request(mock.url + "/v1/chat/completions", data=payload, headers=OPENAI)
        with urllib.request.urlopen(request, timeout=5) as response:
            body = orjson.loads(response.read())
        assert body["choices"][0]["message"]["content"] == reply_text(USER[0]["content"])
        mock.add_fault(status=500)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        caught.value.close()
        assert caught.value.code == 500
        assert len(mock.requests) == 2
        mock.clear()
        assert mock.requests == []


def test_run_prints_where_it_listens() -> None:
    code = "from lockgate.testing.mock_provider import run; run(port=0)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        with urllib.request.urlopen(url + "/__mock/health", timeout=5) as response:
            assert orjson.loads(response.read()) == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


# --- pure helpers --------------------------------------------------------------------------


def test_token_pieces_keep_unicode_whole() -> None:
    text = "héllo 日本語 🎉 done"
    pieces, used, truncated = token_pieces(text)
    assert "".join(pieces) == text and used == count_tokens(text) and not truncated
    pieces, used, truncated = token_pieces(text, 2)
    assert used == 2 and truncated and text.startswith("".join(pieces))


def test_sample_from_schema() -> None:
    schema = {
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "type": "object",
        "properties": {
            "p": {"$ref": "#/$defs/Point"},
            "when": {"type": "string", "format": "date"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
            "kind": {"const": "k"},
            "n": {"type": ["integer", "null"], "maximum": 0},
            "few": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
        },
        "required": ["p", "when", "maybe", "kind", "n", "few"],
    }
    assert sample_from_schema(schema) == {
        "p": {"x": 1.5},
        "when": "2024-01-01",
        "maybe": True,
        "kind": "k",
        "n": 0,
        "few": [1, 1],
    }


def test_recorded_requests_are_capped() -> None:
    state = MockState(max_recorded=2)
    for index in range(3):
        state.record({"path": str(index)})
    assert [r["path"] for r in state.requests] == ["1", "2"]
