"""OpenAI and the OpenAI-compatible family.

One translation serves every provider that speaks OpenAI's wire format; each
family member is a row of data (base URL, auth header, env var, quirks), not a
module. Same-dialect traffic forwards the client's bytes unless something had
to change (the upstream model name, ``stream_options`` for usage, a dropped
parameter).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from lockgate.errors import UnsupportedParameter, UpstreamError
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


# A ``refused_params`` value meaning "no value is accepted".
REFUSE_ANY: Any = object()


@dataclass(frozen=True, slots=True)
class OpenAICompatProvider:
    """One member of the OpenAI-compatible family; its quirks are the data fields below.

    The rule for parameters a member cannot honour (``providers/README.md``), applied in
    this order: ``renamed_params`` are translated to the member's spelling;
    ``refused_params`` with a value other than the one allowed (``REFUSE_ANY``: none is)
    -> 400 ``UnsupportedParameter`` naming the parameter, because dropping it would
    change what the client gets back; ``unsupported_params`` are removed and named in
    ``x-lockgate-dropped-params``. A ``null`` value changes nothing and is removed quietly.
    """

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
    # Parameters refused with a 400 unless they carry the allowed value.
    refused_params: Mapping[str, Any] = field(default_factory=dict)
    # Removed without a report: the provider already behaves as the parameter asks.
    consumed_params: frozenset[str] = frozenset()
    # OpenAI name -> the provider's name for the same parameter.
    renamed_params: Mapping[str, str] = field(default_factory=dict)
    # Native usage field -> canonical path, e.g. DeepSeek's prompt_cache_hit_tokens.
    usage_fields: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)
    dialect: str = "openai"

    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        body = self.adapt_body(endpoint, body)
        headers = {"content-type": "application/json", "accept-encoding": "identity", **self.extra_headers}
        if cred.api_key:
            headers[self.auth_header] = self.auth_prefix + cred.api_key
        headers.update(cred.headers)
        base = (cred.base_url or self.default_base_url).rstrip("/")
        return UpstreamRequest(base + _PATHS[endpoint], headers, body.encode(), dropped_params=body.dropped)

    def adapt_body(self, endpoint: str, body: Body) -> _AdaptedBody:
        """The client's body with this member's quirks applied (a copy; bytes kept when unchanged)."""
        adapted = _AdaptedBody(dict(body.data), body.raw)
        data = adapted.data
        for param, allowed in self.refused_params.items():
            value = data.get(param)
            if value is not None and (allowed is REFUSE_ANY or value != allowed):
                wanted = "" if allowed is REFUSE_ANY else f" other than {allowed!r}"
                raise UnsupportedParameter(f"{self.name} does not support '{param}'{wanted}", param=param)
        for param, native in self.renamed_params.items():
            if param in data:
                value = adapted.pop(param)
                if value is not None and native not in data:
                    adapted.set(native, value)
        for param in self.consumed_params:
            adapted.pop(param)
        for param in sorted(self.unsupported_params):
            if param in data and adapted.pop(param) is not None:
                adapted.dropped.append(param)
        if endpoint != EMBEDDINGS and data.get("stream") is True and self.stream_usage:
            options = data.get("stream_options")
            if not isinstance(options, dict) or options.get("include_usage") is not True:
                adapted.set(
                    "stream_options",
                    {**(options if isinstance(options, dict) else {}), "include_usage": True},
                )
        return adapted

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        payload = orjson.loads(raw)
        if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
            payload["usage"] = self.normalize_usage(payload["usage"])
        return payload

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        if not self.usage_fields or not any(name in usage for name in self.usage_fields):
            return usage
        out = dict(usage)
        for name, (group, key) in self.usage_fields.items():
            value = usage.get(name)
            details = out.get(group)
            if isinstance(value, int) and not (isinstance(details, dict) and details.get(key)):
                out[group] = {**(details if isinstance(details, dict) else {}), key: value}
        return out

    def parse_error(self, status: int, raw: bytes) -> UpstreamError:
        message, type_, code = error_message_from_json(raw)
        if message is None:
            snippet = raw[:200].decode("utf-8", "replace").strip()
            message = f"{self.name} returned HTTP {status}" + (f": {snippet}" if snippet else "")
        return UpstreamError(message, upstream_status=status, provider=self.name, type=type_, code=code)

    def stream_translator(self, endpoint: str, model: str) -> OpenAIStreamReader:
        return OpenAIStreamReader(self.normalize_usage)


class _AdaptedBody(Body):
    """A body copy that also collects the names of dropped parameters."""

    __slots__ = ("dropped",)

    def __init__(self, data: dict[str, Any], raw: bytes | None) -> None:
        super().__init__(data, raw)
        self.dropped: list[str] = []


class OpenAIStreamReader:
    """OpenAI chunks are already canonical: pass them on, remembering the usage."""

    __slots__ = ("_normalize", "usage")

    def __init__(self, normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.usage: dict[str, Any] | None = None
        self._normalize = normalize

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in data and "choices" not in data:
            err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
            raise UpstreamError(str(err.get("message", "upstream stream error")), type=err.get("type"))
        usage = data.get("usage")
        if usage:
            self.usage = self._normalize(usage) if self._normalize is not None else usage
        return [data]

    def finish(self) -> list[dict[str, Any]]:
        return []


# The family. Base URLs are the providers' documented OpenAI-compatible roots; the quirks
# follow each provider's published parameter list (see providers/README.md for the table).
_MAX_TOKENS = {"max_completion_tokens": "max_tokens"}  # for servers that predate the new name
_ONE_CHOICE = {"n": 1}

FAMILY = [
    OpenAICompatProvider("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    OpenAICompatProvider(
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        unsupported_params=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
        refused_params=_ONE_CHOICE,
    ),
    OpenAICompatProvider(
        "together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", renamed_params=_MAX_TOKENS
    ),
    OpenAICompatProvider(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        endpoints=frozenset({CHAT, EMBEDDINGS}),
        # Mistral rejects unknown fields (422) and always sends usage in its last chunk.
        stream_usage=False,
        consumed_params=frozenset({"stream_options"}),
        unsupported_params=frozenset(
            {"logit_bias", "logprobs", "top_logprobs", "user", "service_tier", "store", "metadata"}
        ),
        renamed_params={**_MAX_TOKENS, "seed": "random_seed"},
    ),
    OpenAICompatProvider(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        endpoints=frozenset({CHAT, COMPLETIONS}),
        unsupported_params=frozenset({"logit_bias"}),
        refused_params=_ONE_CHOICE,
        renamed_params=_MAX_TOKENS,
        usage_fields={"prompt_cache_hit_tokens": ("prompt_tokens_details", "cached_tokens")},
    ),
    OpenAICompatProvider(
        "fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", renamed_params=_MAX_TOKENS
    ),
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
        "perplexity",
        "https://api.perplexity.ai",
        "PERPLEXITY_API_KEY",
        endpoints=frozenset({CHAT}),
        # Sonar models search instead of calling tools; usage comes with every chunk.
        stream_usage=False,
        consumed_params=frozenset({"stream_options"}),
        unsupported_params=frozenset({"logit_bias", "logprobs", "top_logprobs", "seed", "user"}),
        refused_params={**_ONE_CHOICE, "tools": REFUSE_ANY, "tool_choice": REFUSE_ANY},
        renamed_params=_MAX_TOKENS,
    ),
    OpenAICompatProvider(
        "cerebras",
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
        endpoints=frozenset({CHAT, COMPLETIONS}),
        unsupported_params=frozenset(
            {"frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls", "service_tier"}
        ),
    ),
    OpenAICompatProvider(
        "ollama",
        "http://127.0.0.1:11434/v1",
        unsupported_params=frozenset({"logit_bias", "user", "logprobs", "top_logprobs"}),
        refused_params={**_ONE_CHOICE, "tool_choice": "auto"},
        renamed_params=_MAX_TOKENS,
    ),
    OpenAICompatProvider("vllm", "http://127.0.0.1:8000/v1"),
    OpenAICompatProvider("lmstudio", "http://127.0.0.1:1234/v1", renamed_params=_MAX_TOKENS),
    # Any other OpenAI-compatible server: base_url is required in its integration.
    OpenAICompatProvider("openai-compatible", ""),
]

for _provider in FAMILY:
    register(_provider)
