"""Cost for every provider's own usage shape: native usage -> canonical (by the provider) -> USD.

Each expected figure is worked out by hand from the catalog's list prices ($ per million).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lockgate.catalog import Catalog, cost
from lockgate.providers import anthropic, bedrock_converse, cohere, gemini_response
from lockgate.providers.base import EMBEDDINGS, get_provider, normalize_usage

M = 1e6


def _price(model: str, provider: str, usage: dict[str, Any]) -> float | None:
    return cost(Catalog.default().lookup(model, provider), usage)


CASES = [
    pytest.param(
        "openai", "o4-mini",
        {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 400},
         "completion_tokens_details": {"reasoning_tokens": 300}},
        (600 * 1.10 + 400 * 0.275 + 500 * 4.40) / M, id="openai-cached-reasoning"),
    pytest.param(
        "azure", "gpt-4o",
        {"prompt_tokens": 2000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 1024}},
        (976 * 2.50 + 1024 * 1.25 + 100 * 10.00) / M, id="azure-maps-to-openai"),
    pytest.param(
        "anthropic", "claude-sonnet-4-5",
        anthropic.usage_to_chat({"input_tokens": 100, "cache_read_input_tokens": 2000,
                                 "cache_creation_input_tokens": 500, "output_tokens": 300}),
        (100 * 3.00 + 2000 * 0.30 + 500 * 3.75 + 300 * 15.00) / M, id="anthropic-cache-read-write"),
    pytest.param(
        "gemini", "gemini-2.5-flash",
        gemini_response.usage_to_chat({"promptTokenCount": 1200, "cachedContentTokenCount": 1000,
                                       "candidatesTokenCount": 100, "thoughtsTokenCount": 400}),
        (200 * 0.30 + 1000 * 0.03 + 500 * 2.50) / M, id="gemini-cached-thoughts"),
    pytest.param(
        "vertex", "gemini-2.5-pro",
        gemini_response.usage_to_chat({"promptTokenCount": 250_000, "candidatesTokenCount": 1000}),
        (250_000 * 2.50 + 1000 * 15.00) / M, id="vertex-long-context-tier"),
    pytest.param(
        "gemini", "gemini-3-pro-preview",
        gemini_response.usage_to_chat({"promptTokenCount": 5000, "toolUsePromptTokenCount": 1000,
                                       "candidatesTokenCount": 200, "thoughtsTokenCount": 800}),
        (6000 * 2.00 + 1000 * 12.00) / M, id="gemini-tool-use-prompt"),
    pytest.param(
        "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        bedrock_converse.usage_to_chat({"inputTokens": 30, "outputTokens": 95, "totalTokens": 2173,
                                        "cacheReadInputTokens": 2000, "cacheWriteInputTokens": 48}),
        (30 * 3.00 + 2000 * 0.30 + 48 * 3.75 + 95 * 15.00) / M, id="bedrock-claude-profile-cache"),
    pytest.param(
        "bedrock", "amazon.nova-lite-v1:0",
        bedrock_converse.usage_to_chat({"inputTokens": 1000, "outputTokens": 200,
                                        "cacheReadInputTokens": 4000}),
        (1000 * 0.06 + 4000 * 0.015 + 200 * 0.24) / M, id="bedrock-nova-cache"),
    pytest.param(
        "cohere", "command-a-03-2025",
        cohere.usage_to_chat({"billed_units": {"input_tokens": 37, "output_tokens": 28},
                              "tokens": {"input_tokens": 913, "output_tokens": 87}}),
        (37 * 2.50 + 28 * 10.00) / M, id="cohere-billed-units"),
    pytest.param(
        "deepseek", "deepseek-chat",
        {"prompt_tokens": 100, "completion_tokens": 40, "prompt_cache_hit_tokens": 64,
         "prompt_cache_miss_tokens": 36},
        (36 * 0.28 + 64 * 0.028 + 40 * 0.42) / M, id="deepseek-cache-hits"),
    pytest.param(
        "xai", "grok-4",
        {"prompt_tokens": 150_000, "completion_tokens": 1000,
         "completion_tokens_details": {"reasoning_tokens": 700}},
        (150_000 * 6.00 + 1000 * 30.00) / M, id="xai-long-context-reasoning"),
    pytest.param(
        "groq", "openai/gpt-oss-120b", {"prompt_tokens": 1000, "completion_tokens": 1000},
        (1000 * 0.15 + 1000 * 0.75) / M, id="groq"),
    pytest.param(
        "perplexity", "sonar-pro", {"prompt_tokens": 10, "completion_tokens": 300, "citation_tokens": 4000},
        (10 * 3.00 + 300 * 15.00) / M, id="perplexity"),
    pytest.param(
        "cerebras", "llama-3.3-70b", {"prompt_tokens": 500, "completion_tokens": 500},
        (500 * 0.85 + 500 * 1.20) / M, id="cerebras"),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "model", "usage", "expected"), CASES)
def test_cost_for_each_usage_shape(provider: str, model: str, usage: dict, expected: float) -> None:
    canonical = normalize_usage(get_provider(provider), usage)
    assert _price(model, provider, canonical) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("provider", "model", "raw", "expected"),
    [
        ("vertex", "gemini-embedding-001",
         {"predictions": [{"embeddings": {"values": [0.1], "statistics": {"token_count": 700}}},
                          {"embeddings": {"values": [0.2], "statistics": {"token_count": 300}}}]},
         1000 * 0.15 / M),
        ("bedrock", "amazon.titan-embed-text-v2:0", {"embedding": [0.1], "inputTextTokenCount": 8},
         8 * 0.02 / M),
        ("cohere", "embed-v4.0",
         {"embeddings": {"float": [[0.1]]}, "meta": {"billed_units": {"input_tokens": 12}}},
         12 * 0.12 / M),
    ],
)  # fmt: skip
def test_cost_for_embedding_usage(provider: str, model: str, raw: dict, expected: float) -> None:
    usage = get_provider(provider).parse_response(EMBEDDINGS, orjson.dumps(raw))["usage"]
    assert _price(model, provider, usage) == pytest.approx(expected)


def test_every_catalog_entry_of_the_new_providers_is_priced() -> None:
    catalog = Catalog.default()
    for info in catalog.models_for_listing():
        if info.provider in ("bedrock", "cohere", "perplexity", "cerebras", "gemini"):
            usage = {"prompt_tokens": 1000, "completion_tokens": 0 if info.mode == "embedding" else 1000}
            assert cost(info, usage) > 0 or info.price.input == 0.0, info.id
