"""The official openai SDK, unchanged, against Lockgate + the mock provider."""

from __future__ import annotations

import json

import openai
import pytest

from tests.gateway_harness import GatewayThread

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

# Native (OpenAI dialect upstream) and translated (Anthropic upstream) paths must behave the same.
MODELS = ["gpt-4o-mini", "claude-sonnet"]


@pytest.fixture
def client(gateway: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused-in-open-mode", max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_chat_non_stream(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
    )
    completion = raw.parse()
    assert completion.choices[0].message.role == "assistant"
    assert "Hello there" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert raw.headers["x-lockgate-request-id"].startswith("req_")
    assert float(raw.headers["x-lockgate-cost-usd"]) > 0
    assert raw.headers["x-lockgate-provider"] in ("mock-openai", "mock-anthropic")


@pytest.mark.parametrize("model", MODELS)
def test_chat_stream(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Stream me a story"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Stream me a story" in text
    assert len(chunks) >= 5
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"
    # The client did not ask for usage, so the usage chunk Lockgate asked for is not shown.
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("model", MODELS)
def test_chat_stream_with_usage(client: openai.OpenAI, model: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Count tokens"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tools(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)

    follow_up = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert follow_up.choices[0].message.content


@pytest.mark.parametrize("model", MODELS)
def test_parallel_tool_calls_stream(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather and time in Rome?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                slot = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                slot["name"] += delta.function.name or ""
                slot["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert all("city" in json.loads(c["arguments"]) for c in calls.values())


def test_n_logprobs_and_json_mode_pass_through(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Give JSON"}],
        n=2,
        logprobs=True,
        top_logprobs=2,
        response_format={"type": "json_object"},
    )
    assert len(completion.choices) == 2
    assert completion.choices[0].logprobs is not None
    json.loads(completion.choices[0].message.content)


def test_anthropic_target_refuses_n(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="claude-sonnet", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert err.value.body["param"] == "n"


def test_embeddings(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; ask for floats too.
    default = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    floats = client.embeddings.create(model="text-embedding-3-small", input="one", encoding_format="float")
    assert len(default.data) == 2
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    assert default.usage.prompt_tokens > 0


def test_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="gpt-4o-mini", prompt="Once upon a time", max_tokens=20)
    assert completion.choices[0].text
    streamed = list(client.completions.create(model="gpt-4o-mini", prompt="Once upon a time", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices)


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"gpt-4o-mini", "claude-sonnet", "text-embedding-3-small", "resilient"} <= set(ids)


def test_fallback_to_second_target(client: openai.OpenAI, gateway: GatewayThread, mock) -> None:
    mock.add_fault(status=503, match_model="gpt-4o-mini")
    raw = client.chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "still there?"}]
    )
    assert raw.headers["x-lockgate-provider"] == "mock-anthropic"
    assert raw.headers["x-lockgate-attempts"] == "2"
    assert raw.parse().choices[0].message.content
