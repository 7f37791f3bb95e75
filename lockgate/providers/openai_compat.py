"""OpenAI and the OpenAI-compatible family.

One translation serves every provider that speaks OpenAI's wire format; each
family member is a row of data (base URL, auth header, env var, quirks), not a
module. Same-dialect traffic forwards the client's bytes unless something had
to change (the upstream model name, ``stream_options`` for usage, a dropped
parameter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from lockgate.errors import UpstreamError
from lockgate.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Body,
    Credential,
    UpstreamRequest,
    error_message_from_json,
    register,
)

_PATHS = {CHAT: "/chat/completions", COMPLETIONS: "/completions", EMBEDDINGS: "/embeddings"}


@dataclass(frozen=True, slots=True)
class OpenAICompatProvider:
    name: str
    default_base_url: str
    env_key: str | None = None
    auth_header: str = "authorization"
    auth_prefix: str = "Bearer "
    endpoints: frozenset[str] = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})
    # Whether the provider honours stream_options.include_usage; without it a
    # stream's usage is counted locally and marked estimated.
    stream_usage: bool = True
    # Parameters the provider rejects: removed and reported in x-lockgate-dropped-params.
    unsupported_params: frozenset[str] = frozenset()
    extra_headers: dict[str, str] = field(default_factory=dict)
    dialect: str = "openai"

    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        body = body.copy()
        dropped = [p for p in self.unsupported_params if p in body.data]
        for param in dropped:
            body.pop(param)
        if endpoint != EMBEDDINGS and body.data.get("stream") is True and self.stream_usage:
            options = body.data.get("stream_options")
            if not isinstance(options, dict) or options.get("include_usage") is not True:
                body.set(
                    "stream_options",
                    {**(options if isinstance(options, dict) else {}), "include_usage": True},
                )
        headers = {"content-type": "application/json", "accept-encoding": "identity", **self.extra_headers}
        if cred.api_key:
            headers[self.auth_header] = self.auth_prefix + cred.api_key
        headers.update(cred.headers)
        base = (cred.base_url or self.default_base_url).rstrip("/")
        return UpstreamRequest(base + _PATHS[endpoint], headers, body.encode(), dropped_params=dropped)

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        return orjson.loads(raw)

    def parse_error(self, status: int, raw: bytes) -> UpstreamError:
        message, type_, code = error_message_from_json(raw)
        if message is None:
            snippet = raw[:200].decode("utf-8", "replace").strip()
            message = f"{self.name} returned HTTP {status}" + (f": {snippet}" if snippet else "")
        return UpstreamError(message, upstream_status=status, provider=self.name, type=type_, code=code)

    def stream_translator(self, endpoint: str, model: str) -> OpenAIStreamReader:
        return OpenAIStreamReader()


class OpenAIStreamReader:
    """OpenAI chunks are already canonical: pass them on, remembering the usage."""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in data and "choices" not in data:
            err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
            raise UpstreamError(str(err.get("message", "upstream stream error")), type=err.get("type"))
        usage = data.get("usage")
        if usage:
            self.usage = usage
        return [data]

    def finish(self) -> list[dict[str, Any]]:
        return []


# The family. Base URLs are the providers' documented OpenAI-compatible roots.
FAMILY = [
    OpenAICompatProvider("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    OpenAICompatProvider(
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        unsupported_params=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
    ),
    OpenAICompatProvider("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    OpenAICompatProvider(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        endpoints=frozenset({CHAT, EMBEDDINGS}),
        unsupported_params=frozenset({"logit_bias", "logprobs", "top_logprobs", "user"}),
    ),
    OpenAICompatProvider(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        endpoints=frozenset({CHAT, COMPLETIONS}),
    ),
    OpenAICompatProvider("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    OpenAICompatProvider(
        "xai", "https://api.x.ai/v1", "XAI_API_KEY", endpoints=frozenset({CHAT, EMBEDDINGS})
    ),
    OpenAICompatProvider(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        endpoints=frozenset({CHAT, COMPLETIONS}),
    ),
    OpenAICompatProvider(
        "perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY", endpoints=frozenset({CHAT})
    ),
    OpenAICompatProvider(
        "cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", endpoints=frozenset({CHAT, COMPLETIONS})
    ),
    OpenAICompatProvider("ollama", "http://127.0.0.1:11434/v1"),
    OpenAICompatProvider("vllm", "http://127.0.0.1:8000/v1"),
    OpenAICompatProvider("lmstudio", "http://127.0.0.1:1234/v1"),
    # Any other OpenAI-compatible server: base_url is required in its integration.
    OpenAICompatProvider("openai-compatible", ""),
]

for _provider in FAMILY:
    register(_provider)
