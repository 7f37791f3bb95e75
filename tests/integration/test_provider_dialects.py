"""Every translated dialect end to end: the official openai SDK -> Lockgate -> the mock provider.

The mock speaks Gemini (AI Studio and Vertex, with a Google OAuth token endpoint for the
service account), Bedrock Converse (binary event stream, SigV4-shaped auth), Cohere v2,
and Azure OpenAI / AI Foundry (with an Entra ID token endpoint), all over real HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
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

# alias -> (integration name as reported in x-lockgate-provider, upstream path fragment)
CHAT_MODELS = {
    "gemini-flash": ("mock-gemini", "/v1beta/models/gemini-2.5-flash:"),
    "vertex-pro": ("mock-vertex", "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/"),
    "bedrock-claude": ("mock-bedrock", "/model/anthropic.claude-3-5-haiku-20241022-v1:0/"),
    "bedrock-nova": ("mock-bedrock", "/model/us.amazon.nova-lite-v1:0/"),
    "command-a": ("mock-cohere", "/v2/chat"),
    "azure-mini": ("mock-azure", "/openai/deployments/prod-mini/chat/completions"),
    "azure-entra": ("mock-azure-entra", "/openai/deployments/gpt-4o-mini/chat/completions"),
    "foundry": ("mock-foundry", "/models/chat/completions"),
}
EMBEDDING_MODELS = ["gemini-embed", "vertex-embed", "titan-embed", "bedrock-cohere-embed", "cohere-embed",
                    "azure-embed"]  # fmt: skip


def _service_account(mock_url: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": "lockgate@proj-1.iam.gserviceaccount.com",
        "token_uri": f"{mock_url}/oauth2/token",
    }


def dialect_config(mock_url: str) -> dict[str, Any]:
    aws = {
        "region": "us-west-2",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG",
    }
    return {
        "integrations": [
            {
                "name": "mock-gemini",
                "provider": "gemini",
                "base_url": f"{mock_url}/v1beta",
                "api_key": "g-key",
            },
            {
                "name": "mock-vertex",
                "provider": "vertex",
                "base_url": f"{mock_url}/v1",
                "options": {
                    "project": "proj-1",
                    "region": "europe-west4",
                    "service_account": _service_account(mock_url),
                },
            },
            {"name": "mock-bedrock", "provider": "bedrock", "base_url": mock_url, "options": aws},
            {"name": "mock-cohere", "provider": "cohere", "base_url": mock_url, "api_key": "co-key"},
            {
                "name": "mock-azure",
                "provider": "azure",
                "base_url": mock_url,
                "api_key": "az-key",
                "options": {"deployments": {"gpt-4o-mini": "prod-mini"}},
            },
            {
                "name": "mock-azure-entra",
                "provider": "azure",
                "base_url": mock_url,
                "options": {
                    "entra": {
                        "tenant_id": "tenant-1",
                        "client_id": "app-1",
                        "client_secret": "s3cret",
                        "authority_host": mock_url,
                    }
                },
            },
            {"name": "mock-foundry", "provider": "azure-foundry", "base_url": mock_url, "api_key": "f-key"},
            {"name": "mock-deepseek", "provider": "deepseek", "base_url": f"{mock_url}/v1", "api_key": "ds"},
            {
                "name": "mock-perplexity",
                "provider": "perplexity",
                "base_url": f"{mock_url}/v1",
                "api_key": "pp",
            },
        ],
        "models": [
            {"alias": "gemini-flash", "targets": ["@mock-gemini/gemini-2.5-flash"]},
            {"alias": "deepseek-reasoner", "targets": ["@mock-deepseek/deepseek-reasoner"]},
            {"alias": "sonar", "targets": ["@mock-perplexity/sonar"]},
            {"alias": "vertex-pro", "targets": ["@mock-vertex/gemini-2.5-pro"]},
            {
                "alias": "bedrock-claude",
                "targets": ["@mock-bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"],
            },
            {"alias": "bedrock-nova", "targets": ["@mock-bedrock/us.amazon.nova-lite-v1:0"]},
            {"alias": "command-a", "targets": ["@mock-cohere/command-a-03-2025"]},
            {"alias": "azure-mini", "targets": ["@mock-azure/gpt-4o-mini"]},
            {"alias": "azure-entra", "targets": ["@mock-azure-entra/gpt-4o-mini"]},
            {"alias": "foundry", "targets": ["@mock-foundry/gpt-4o-mini"]},
            {"alias": "gemini-embed", "targets": ["@mock-gemini/gemini-embedding-001"]},
            {"alias": "vertex-embed", "targets": ["@mock-vertex/gemini-embedding-001"]},
            {"alias": "titan-embed", "targets": ["@mock-bedrock/amazon.titan-embed-text-v2:0"]},
            {"alias": "bedrock-cohere-embed", "targets": ["@mock-bedrock/cohere.embed-english-v3"]},
            {"alias": "cohere-embed", "targets": ["@mock-cohere/embed-v4.0"]},
            {"alias": "azure-embed", "targets": ["@mock-azure/text-embedding-3-small"]},
            {
                "alias": "gemini-then-cohere",
                "targets": ["@mock-gemini/gemini-2.5-flash", "@mock-cohere/command-a"],
            },
        ],
    }


@pytest.fixture(scope="module")
def dialects(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    mock.clear()
    with admin_gateway(
        tmp_path_factory.mktemp("dialects"), dialect_config(mock.url), request_timeout=5.0, demo=True
    ) as gw:
        # Tokens the gateway minted at startup, by tenant (Entra) or audience (Google).
        gw.minted = {audience: token for token, audience in mock.tokens}  # type: ignore[attr-defined]
        yield gw


@pytest.fixture
def client(dialects: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=dialects.url + "/v1", api_key="unused-in-open-mode", max_retries=0)


def _upstream_requests(mock: MockProviderThread, fragment: str) -> list[dict[str, Any]]:
    return [r for r in mock.requests if fragment in r["path"]]


@pytest.mark.parametrize("model", sorted(CHAT_MODELS))
def test_chat_non_stream(client: openai.OpenAI, mock: MockProviderThread, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
    )
    completion = raw.parse()
    assert "Mock reply to: Hello there" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    integration, fragment = CHAT_MODELS[model]
    assert raw.headers["x-lockgate-provider"] == integration
    assert float(raw.headers["x-lockgate-cost-usd"]) > 0  # every upstream model here is priced
    sent = _upstream_requests(mock, fragment)[-1]
    assert "stream" not in sent["path"]


@pytest.mark.parametrize("model", sorted(CHAT_MODELS))
def test_chat_stream(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Stream me a story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Mock reply to: Stream me a story" in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", sorted(CHAT_MODELS))
def test_parallel_tool_calls_and_tool_results(client: openai.OpenAI, model: str) -> None:
    question = [{"role": "user", "content": "Weather and time in Rome?"}]
    completion = client.chat.completions.create(
        model=model, messages=question, tools=[WEATHER_TOOL, TIME_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert all(json.loads(c.function.arguments) == {"city": "mock"} for c in calls)
    assert len({c.id for c in calls}) == 2
    follow_up = client.chat.completions.create(
        model=model,
        messages=[
            *question,
            {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21C"},
            {"role": "tool", "tool_call_id": calls[1].id, "content": "14:05"},
        ],
        tools=[WEATHER_TOOL, TIME_TOOL],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert follow_up.choices[0].message.content.startswith("Mock reply to tool result:")


@pytest.mark.parametrize("model", sorted(CHAT_MODELS))
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
    assert all(json.loads(c["arguments"]) == {"city": "mock"} for c in calls.values())


@pytest.mark.parametrize("model", sorted(CHAT_MODELS))
def test_anthropic_clients_reach_every_dialect(dialects: GatewayThread, model: str) -> None:
    client = anthropic.Anthropic(base_url=dialects.url, api_key="unused", max_retries=0)
    message = client.messages.create(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "Hello from Claude Code"}]
    )
    assert message.content[0].text.startswith("Mock reply to: Hello from Claude Code")
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    with client.messages.stream(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "Stream it"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text.startswith("Mock reply to: Stream it")
    assert final.usage.input_tokens > 0


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embeddings(client: openai.OpenAI, model: str) -> None:
    inputs = ["one"] if model == "titan-embed" else ["one", "two"]
    default = client.embeddings.create(model=model, input=inputs)  # the SDK asks for base64
    floats = client.embeddings.create(model=model, input=inputs, encoding_format="float")
    assert len(default.data) == len(inputs) == len(floats.data)
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    assert len(floats.data[0].embedding) == 16  # the mock's default size
    assert floats.model


def test_titan_refuses_several_inputs(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="titan-embed", input=["one", "two"])
    assert err.value.body["param"] == "input" and err.value.body["code"] == "unsupported_parameter"


def test_gemini_safety_block_is_content_filter(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gemini-flash", messages=[{"role": "user", "content": "tell me [mock:safety]"}]
    )
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None


def test_gemini_thinking_tokens_are_reasoning_usage(client: openai.OpenAI, mock: MockProviderThread) -> None:
    completion = client.chat.completions.create(
        model="gemini-flash", messages=[{"role": "user", "content": "think"}], reasoning_effort="low"
    )
    assert completion.usage.completion_tokens_details.reasoning_tokens == 16
    sent = _upstream_requests(mock, "gemini-2.5-flash:generateContent")[-1]["json"]
    assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}


def test_dropped_params_are_named(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="command-a", messages=[{"role": "user", "content": "hi"}], logit_bias={"50256": -100}, user="u1"
    )
    assert raw.headers["x-lockgate-dropped-params"] == "logit_bias,user"


def test_refused_params_are_a_400_naming_them(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="bedrock-claude", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert err.value.body["param"] == "n" and err.value.body["code"] == "unsupported_parameter"


@pytest.mark.parametrize(
    ("model", "status", "error_class", "type_", "code"),
    [
        ("gemini-flash", 400, openai.BadRequestError, "invalid_request_error", "INVALID_ARGUMENT"),
        ("vertex-pro", 403, openai.PermissionDeniedError, "permission_error", "PERMISSION_DENIED"),
        ("bedrock-claude", 400, openai.BadRequestError, "invalid_request_error", "ValidationException"),
        ("bedrock-nova", 429, openai.RateLimitError, "rate_limit_error", "ThrottlingException"),
        ("command-a", 422, openai.UnprocessableEntityError, "invalid_request_error", "upstream_error"),
        ("foundry", 404, openai.NotFoundError, "invalid_request_error", "not_found"),
    ],
)
def test_provider_errors_become_the_openai_envelope(
    client: openai.OpenAI,
    mock: MockProviderThread,
    model: str,
    status: int,
    error_class: type,
    type_: str,
    code: str,
) -> None:
    mock.add_fault(status=status, message=f"upstream says no ({model})")
    with pytest.raises(error_class) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == status
    body = err.value.body
    assert body["message"] == f"upstream says no ({model})"
    assert (body["type"], body["code"]) == (type_, code)


def test_upstream_5xx_falls_back_across_dialects(client: openai.OpenAI, mock: MockProviderThread) -> None:
    mock.add_fault(status=503, match_model="gemini-2.5-flash")
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-then-cohere", messages=[{"role": "user", "content": "still there?"}]
    )
    assert raw.headers["x-lockgate-provider"] == "mock-cohere"
    assert raw.headers["x-lockgate-attempts"] == "2"


@pytest.mark.parametrize("model", ["gemini-flash", "bedrock-claude", "command-a"])
def test_stream_cut_mid_answer_ends_with_an_error_event(
    client: openai.OpenAI, mock: MockProviderThread, model: str
) -> None:
    mock.add_fault(cut_after_chunks=2)
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a long story"}], stream=True
    )
    with pytest.raises(openai.APIError) as err:
        list(stream)
    assert "stream" in str(err.value.message).lower() or "interrupted" in str(err.value.body).lower()


def test_bedrock_requests_are_sigv4_signed(client: openai.OpenAI, mock: MockProviderThread) -> None:
    client.chat.completions.create(model="bedrock-claude", messages=[{"role": "user", "content": "sign"}])
    sent = _upstream_requests(mock, "/converse")[-1]
    # The model id's ":" went out percent-encoded, exactly as signed.
    assert sent["path"] == "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse"
    assert (
        sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        and "/us-west-2/bedrock/aws4_request" in sent["headers"]["authorization"]
    )
    assert sent["headers"]["x-amz-date"].endswith("Z")


def test_minted_tokens_are_cached_not_fetched_per_request(
    client: openai.OpenAI, dialects: GatewayThread, mock: MockProviderThread
) -> None:
    for _ in range(2):
        client.chat.completions.create(model="vertex-pro", messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="azure-entra", messages=[{"role": "user", "content": "hi"}])
    vertex = _upstream_requests(mock, "/publishers/google/models/gemini-2.5-pro:generateContent")
    entra = _upstream_requests(mock, "/openai/deployments/gpt-4o-mini/")
    # Both tokens were minted once at startup; no request minted another.
    minted: dict[str, str] = dialects.minted  # type: ignore[attr-defined]
    assert set(minted) == {"google", "tenant-1"} and mock.tokens == []
    assert {r["headers"]["authorization"] for r in vertex} == {f"Bearer {minted['google']}"}
    assert {r["headers"]["authorization"] for r in entra} == {f"Bearer {minted['tenant-1']}"}
    assert len(vertex) == len(entra) == 2 and "api-key" not in entra[0]["headers"]


def test_azure_deployment_url_and_key(client: openai.OpenAI, mock: MockProviderThread) -> None:
    client.chat.completions.create(model="azure-mini", messages=[{"role": "user", "content": "hi"}])
    sent = _upstream_requests(mock, "/openai/deployments/prod-mini/chat/completions")[-1]
    assert sent["query"] == {"api-version": "2024-10-21"}
    assert sent["headers"]["api-key"] == "az-key"


def test_records_carry_reported_usage_and_cost(dialects: GatewayThread, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="command-a", messages=[{"role": "user", "content": "record me"}])
    records = [r for r in dialects.records() if r["provider"] == "mock-cohere" and r["status"] == 200]
    assert records and records[-1]["usage_source"] == "reported"
    assert records[-1]["cost_usd"] > 0


def test_an_integration_added_at_runtime_gets_its_token_minted(
    client: openai.OpenAI, dialects: GatewayThread, mock: MockProviderThread
) -> None:
    entra = {"tenant_id": "tenant-late", "client_id": "app", "client_secret": "s", "authority_host": mock.url}
    with admin_client(dialects) as admin:
        ok(admin.post("/integrations", json={"name": "late-azure", "provider": "azure", "base_url": mock.url,
                                             "options": {"entra": entra}}), 201)  # fmt: skip
        ok(admin.post("/models", json={"alias": "late", "targets": ["@late-azure/gpt-4o-mini"]}), 201)
    deadline = time.monotonic() + 10
    while True:  # the snapshot reloads within a poll interval; the token follows at once
        try:
            completion = client.chat.completions.create(
                model="late", messages=[{"role": "user", "content": "hi"}]
            )
            break
        except (openai.NotFoundError, openai.APIStatusError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"the new integration never became usable: {exc}") from exc
            time.sleep(0.05)
    assert completion.choices[0].message.content.startswith("Mock reply to: hi")
    sent = _upstream_requests(mock, "/openai/deployments/gpt-4o-mini/")[-1]
    assert mock.tokens == [(sent["headers"]["authorization"].removeprefix("Bearer "), "tenant-late")]


# --- the OpenAI-compatible family's quirks, kept end to end -----------------------------------


def test_deepseek_reasoning_and_cache_hits(client: openai.OpenAI, dialects: GatewayThread) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-reasoner",
        messages=[{"role": "user", "content": "hello"}],
        max_completion_tokens=64,
    )
    completion = raw.parse()
    assert completion.choices[0].message.model_extra["reasoning_content"].startswith("Mock reasoning")
    assert completion.usage.model_extra["prompt_cache_hit_tokens"] == completion.usage.prompt_tokens // 2
    sent = [r for r in dialects_requests(dialects) if r["model"] == "deepseek-reasoner"][-1]
    # prompt_cache_hit_tokens counted as cached: billed at the cache-hit price (0.028 vs 0.28 $/M).
    prompt, hit = completion.usage.prompt_tokens, completion.usage.prompt_tokens // 2
    assert sent["cached_tokens"] == hit
    expected = ((prompt - hit) * 0.28 + hit * 0.028 + completion.usage.completion_tokens * 0.42) / 1e6
    assert sent["cost_usd"] == pytest.approx(expected)
    assert float(raw.headers["x-lockgate-cost-usd"]) == pytest.approx(expected, abs=1e-8)


def test_deepseek_stream_usage_is_normalised(client: openai.OpenAI, dialects: GatewayThread) -> None:
    chunks = list(
        client.chat.completions.create(
            model="deepseek-reasoner", messages=[{"role": "user", "content": "stream"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)  # asked for by Lockgate, not shown
    record = [r for r in dialects_requests(dialects) if r["model"] == "deepseek-reasoner"][-1]
    assert record["stream"] and record["usage_source"] == "reported" and record["cached_tokens"] > 0


def test_perplexity_citations_pass_through(client: openai.OpenAI, mock: MockProviderThread) -> None:
    completion = client.chat.completions.create(
        model="sonar", messages=[{"role": "user", "content": "news?"}], stream_options=None
    )
    assert completion.model_extra["citations"] == ["https://example.com/a", "https://example.com/b"]
    assert completion.model_extra["search_results"][0]["title"] == "Example A"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="sonar", messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL]
        )
    assert err.value.body["param"] == "tools"


def dialects_requests(gateway: GatewayThread) -> list[dict[str, Any]]:
    return gateway.records()
