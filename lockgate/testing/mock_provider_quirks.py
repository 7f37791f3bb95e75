"""Provider quirks the mock's OpenAI dialect reproduces, keyed by model name.

So end-to-end tests can show that Lockgate keeps what OpenAI-compatible providers add:

- ``deepseek-*``: ``message.reasoning_content`` (``deepseek-reasoner``), and DeepSeek's usage
  shape: ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens`` instead of
  ``prompt_tokens_details`` (half the prompt, rounded down, is a cache hit).
- ``sonar*`` (Perplexity): top-level ``citations`` and ``search_results``.
"""

from __future__ import annotations

from typing import Any

JSONDict = dict[str, Any]
REASONING = "Mock reasoning: the user greets me."
CITATIONS = ["https://example.com/a", "https://example.com/b"]
SEARCH_RESULTS = [
    {"title": "Example A", "url": "https://example.com/a", "date": "2025-01-01"},
    {"title": "Example B", "url": "https://example.com/b", "date": None},
]


def usage(model: str, usage: JSONDict) -> JSONDict:
    if not model.startswith("deepseek"):
        return usage
    out = {k: v for k, v in usage.items() if k != "prompt_tokens_details"}
    hit = usage["prompt_tokens"] // 2
    out["prompt_cache_hit_tokens"] = hit
    out["prompt_cache_miss_tokens"] = usage["prompt_tokens"] - hit
    return out


def response(model: str, payload: JSONDict) -> JSONDict:
    if model.startswith("deepseek-reasoner"):
        for choice in payload.get("choices") or ():
            choice["message"]["reasoning_content"] = REASONING
    if model.startswith("sonar"):
        payload["citations"] = CITATIONS
        payload["search_results"] = SEARCH_RESULTS
    if isinstance(payload.get("usage"), dict):
        payload["usage"] = usage(model, payload["usage"])
    return payload
