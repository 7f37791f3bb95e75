"""The official anthropic SDK, unchanged, against Lockgate's /v1/messages, for either dialect upstream."""

from __future__ import annotations

import anthropic
import pytest

from tests.gateway_harness import GatewayThread

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME_TOOL = {
    "name": "get_time",
    "description": "Local time in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# claude-sonnet is native (Anthropic upstream), gpt-4o-mini is translated to an OpenAI upstream.
MODELS = ["claude-sonnet", "gpt-4o-mini"]


@pytest.fixture
def client(gateway: GatewayThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="unused-in-open-mode", max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_messages(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello Claude"}],
    )
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert "Hello Claude" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_messages_stream(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "Stream a poem"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Stream a poem" in text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tools_round_trip(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    assert message.stop_reason == "tool_use"
    use = next(b for b in message.content if b.type == "tool_use")
    assert use.name == "get_weather" and "city" in use.input

    answer = client.messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "snow"}]},
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].text


@pytest.mark.parametrize("model", MODELS)
def test_streamed_parallel_tools(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model,
        max_tokens=300,
        tools=[WEATHER_TOOL, TIME_TOOL],
        messages=[{"role": "user", "content": "Weather and time in Lima?"}],
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert all("city" in u.input for u in uses)
    assert final.stop_reason == "tool_use"


def test_errors_use_the_anthropic_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "not_found_error"
