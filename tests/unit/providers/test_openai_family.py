"""The OpenAI-compatible family and Azure: quirks as data, applied by one documented rule."""

from __future__ import annotations

import orjson
import pytest

from lockgate.errors import UnsupportedParameter
from lockgate.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, Body, Credential, get_provider
from lockgate.providers.openai_compat import FAMILY

BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def build(provider: str, extra: dict, endpoint: str = CHAT, **cred: object) -> tuple[dict, list[str], str]:
    impl = get_provider(provider)
    credential = Credential(
        provider, provider, str(cred.pop("base_url", impl.default_base_url)), "key", **cred
    )
    data = {**BASE, **extra}
    request = impl.build_request(endpoint, Body(data, orjson.dumps(data)), credential)
    return orjson.loads(request.body), request.dropped_params, request.url


def test_every_member_is_registered_with_a_base_url_or_needs_one() -> None:
    names = {p.name for p in FAMILY}
    assert {
        "openai", "groq", "together", "mistral", "deepseek", "fireworks", "xai", "openrouter", "perplexity",
        "cerebras", "ollama", "vllm", "lmstudio", "openai-compatible",
    } <= names  # fmt: skip
    for provider in FAMILY:
        assert get_provider(provider.name) is provider
        assert provider.default_base_url.startswith("http") or provider.name == "openai-compatible"


def test_untouched_bodies_are_forwarded_byte_for_byte() -> None:
    data = {**BASE, "temperature": 0.5}
    raw = orjson.dumps(data, option=orjson.OPT_INDENT_2)  # the client's own formatting
    request = get_provider("together").build_request(
        CHAT, Body(data, raw), Credential("t", "together", "http://x")
    )
    assert request.body == raw and request.dropped_params == []


@pytest.mark.parametrize(
    ("provider", "extra", "sent", "dropped"),
    [
        # translated: Mistral's names for seed and max tokens
        ("mistral", {"seed": 3, "max_completion_tokens": 9}, {"random_seed": 3, "max_tokens": 9}, []),
        # dropped and reported; a null changes nothing
        ("groq", {"logit_bias": {"1": 2}, "logprobs": None}, {}, ["logit_bias"]),
        ("cerebras", {"presence_penalty": 0.2, "parallel_tool_calls": False}, {},
         ["parallel_tool_calls", "presence_penalty"]),
        ("mistral", {"user": "u", "stream": True, "stream_options": {"include_usage": True}},
         {"stream": True}, ["user"]),
        ("ollama", {"user": "u", "tool_choice": "auto", "n": 1}, {"tool_choice": "auto", "n": 1}, ["user"]),
        ("perplexity", {"seed": 1, "max_completion_tokens": 5}, {"max_tokens": 5}, ["seed"]),
        ("deepseek", {"logit_bias": {"9": 1}, "max_completion_tokens": 5}, {"max_tokens": 5}, ["logit_bias"]),
        # honoured as sent
        ("vllm", {"logit_bias": {"1": 2}, "n": 3}, {"logit_bias": {"1": 2}, "n": 3}, []),
        ("openrouter", {"max_completion_tokens": 7}, {"max_completion_tokens": 7}, []),
    ],
)  # fmt: skip
def test_quirks_translate_or_drop(provider: str, extra: dict, sent: dict, dropped: list[str]) -> None:
    body, reported, _ = build(provider, extra)
    assert body == {**BASE, **sent}
    assert reported == dropped


@pytest.mark.parametrize(
    ("provider", "extra", "param"),
    [
        ("groq", {"n": 2}, "n"),
        ("deepseek", {"n": 4}, "n"),
        ("perplexity", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ("perplexity", {"tool_choice": "none"}, "tool_choice"),
        ("ollama", {"tool_choice": "required"}, "tool_choice"),
    ],
)
def test_quirks_refuse_with_the_parameter_named(provider: str, extra: dict, param: str) -> None:
    with pytest.raises(UnsupportedParameter) as err:
        build(provider, extra)
    assert err.value.param == param and err.value.status == 400


def test_stream_usage_is_requested_unless_the_provider_sends_it_anyway() -> None:
    body, _, _ = build("groq", {"stream": True})
    assert body["stream_options"] == {"include_usage": True}
    body, _, _ = build("mistral", {"stream": True})
    assert "stream_options" not in body  # Mistral rejects it and always reports usage


def test_deepseek_usage_is_normalised() -> None:
    deepseek = get_provider("deepseek")
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
        "completion_tokens_details": {"reasoning_tokens": 25},
    }
    out = deepseek.normalize_usage(usage)
    assert out["prompt_tokens_details"] == {"cached_tokens": 64}
    assert out["completion_tokens_details"] == {"reasoning_tokens": 25}
    assert deepseek.normalize_usage(out) == out  # idempotent
    assert "prompt_tokens_details" not in usage  # not mutated
    parsed = deepseek.parse_response(CHAT, orjson.dumps({"choices": [], "usage": usage}))
    assert parsed["usage"]["prompt_tokens_details"]["cached_tokens"] == 64
    reader = deepseek.stream_translator(CHAT, "deepseek-chat")
    reader.feed(None, {"choices": [], "usage": usage})
    assert reader.usage["prompt_tokens_details"] == {"cached_tokens": 64}
    groq_usage = {"prompt_tokens": 1, "completion_tokens": 1}
    assert get_provider("groq").normalize_usage(groq_usage) is groq_usage


def test_perplexity_citations_survive_parsing() -> None:
    raw = orjson.dumps(
        {"id": "x", "choices": [], "citations": ["https://a"], "search_results": [{"url": "https://a"}]}
    )
    parsed = get_provider("perplexity").parse_response(CHAT, raw)
    assert parsed["citations"] == ["https://a"] and parsed["search_results"] == [{"url": "https://a"}]


# --- Azure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "options", "url"),
    [
        (CHAT, {}, "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"),
        (CHAT, {"deployments": {"gpt-4o": "prod 4o"}, "api_version": "2025-04-01-preview"},
         "https://res.openai.azure.com/openai/deployments/prod%204o/chat/completions?api-version=2025-04-01-preview"),
        (EMBEDDINGS, {}, "https://res.openai.azure.com/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21"),
        (COMPLETIONS, {}, "https://res.openai.azure.com/openai/deployments/gpt-4o/completions?api-version=2024-10-21"),
        (CHAT, {"api_version": "v1"}, "https://res.openai.azure.com/openai/v1/chat/completions"),
    ],
)  # fmt: skip
def test_azure_urls(endpoint: str, options: dict, url: str) -> None:
    azure = get_provider("azure")
    cred = Credential("az", "azure", "https://res.openai.azure.com/", "az-key", options=options)
    data = {"model": "gpt-4o", "input": "x"} if endpoint == EMBEDDINGS else {**BASE, "model": "gpt-4o"}
    request = azure.build_request(endpoint, Body(data), cred)
    assert request.url == url
    assert request.headers["api-key"] == "az-key" and "authorization" not in request.headers
    if options.get("api_version") == "v1":
        assert orjson.loads(request.body)["model"] == "gpt-4o"


def test_azure_entra_token_replaces_the_key() -> None:
    cred = Credential("az", "azure", "https://res.openai.azure.com", headers={"authorization": "Bearer eyJ0"})
    request = get_provider("azure").build_request(CHAT, Body(dict(BASE)), cred)
    assert request.headers["authorization"] == "Bearer eyJ0" and "api-key" not in request.headers


def test_azure_foundry() -> None:
    foundry = get_provider("azure-foundry")
    cred = Credential(
        "f",
        "azure-foundry",
        "https://res.services.ai.azure.com/models",
        "f-key",
        options={"extra_parameters": "drop"},
    )
    request = foundry.build_request(CHAT, Body({**BASE, "logit_bias": {"1": 1}}), cred)
    assert (
        request.url
        == "https://res.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview"
    )
    assert request.headers["api-key"] == "f-key" and request.headers["extra-parameters"] == "drop"
    assert request.dropped_params == ["logit_bias"]
    with pytest.raises(UnsupportedParameter):
        foundry.build_request(COMPLETIONS, Body({"model": "m", "prompt": "x"}), cred)


def test_azure_content_filter_error_keeps_azure_code() -> None:
    raw = orjson.dumps(
        {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                "content management policy.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
            }
        }
    )
    err = get_provider("azure").parse_error(400, raw)
    assert err.status == 400 and err.code == "content_filter" and "content management policy" in err.message
