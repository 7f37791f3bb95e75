"""The provider protocol and registry.

A provider is pure translation between Lockgate's canonical format (the OpenAI
chat/completions/embeddings wire format, as dicts) and one provider's wire
format. It never does I/O and never imports from ``gateway/``: it builds an
``UpstreamRequest`` and parses bytes or decoded SSE events back. The HTTP call,
retries and streaming live in ``gateway/``.

Invariants:
- ``build_request`` never mutates the caller's ``Body``; it works on a copy.
- Parsed responses and stream chunks are canonical OpenAI shapes, with usage in
  OpenAI's form (``prompt_tokens`` includes cached tokens; cached reads are in
  ``prompt_tokens_details.cached_tokens``, cache writes in
  ``prompt_tokens_details.cache_creation_tokens``; ``completion_tokens`` includes
  ``completion_tokens_details.reasoning_tokens``).
- ``UpstreamRequest.url`` is fully percent-encoded and sent exactly as built (SigV4
  signs the path byte for byte).

Optional provider hooks, looked up with ``getattr`` so simple providers stay simple:
- ``stream_decoder(endpoint) -> StreamDecoder | None``: the provider's own stream
  framing (Bedrock's binary event stream); absent or ``None`` means SSE.
- ``normalize_usage(usage) -> usage``: a native same-dialect usage block (relayed
  untranslated) -> canonical usage, e.g. DeepSeek's ``prompt_cache_hit_tokens``.
- ``error_headers``: names of response headers ``parse_error`` wants as ``headers=``
  (Bedrock's ``x-amzn-errortype``).
- ``check_credential(cred) -> CredentialProblem | None``: what an integration lacks,
  checked when it is written (admin API, ``lockgate.yaml`` apply), so a misconfigured
  integration is refused there rather than failing at request time.
- ``secret_options``: dotted option paths whose values are secrets (``entra.client_secret``).
  With the name rule in ``governance/secret_fields.py`` they decide which option values are
  encrypted at rest and masked everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from lockgate.errors import UpstreamError

# Canonical endpoints: what a provider can be asked to do.
CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
# The Anthropic Messages wire format, served natively by Anthropic-dialect providers.
MESSAGES = "messages"


@dataclass(frozen=True, slots=True)
class Credential:
    """A named provider credential (an "integration"), resolved from config."""

    name: str
    provider: str
    base_url: str
    # Kept out of repr so a logged Credential never shows the secret; options and headers
    # may hold secrets too (SigV4 keys, service accounts, a static authorization header).
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """Why an integration is unusable: the field at fault (``options.project``) and what it lacks."""

    param: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"
    # Parameters the provider could not express and dropped by its documented rule;
    # surfaced to the client in ``x-lockgate-dropped-params``.
    dropped_params: list[str] = field(default_factory=list)


class Body:
    """A JSON request body that remembers the client's bytes while it is unchanged.

    Forwarding the original bytes saves a re-serialisation on same-dialect routes.
    """

    __slots__ = ("data", "raw")

    def __init__(self, data: dict[str, Any], raw: bytes | None = None) -> None:
        self.data = data
        self.raw = raw

    def set(self, key: str, value: Any) -> None:
        if key not in self.data or self.data[key] != value:
            self.data[key] = value
            self.raw = None

    def pop(self, key: str) -> Any:
        if key in self.data:
            self.raw = None
            return self.data.pop(key)
        return None

    def copy(self) -> Body:
        return Body(dict(self.data), self.raw)

    def encode(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.data)


class StreamTranslator(Protocol):
    """Turns one provider's decoded SSE events into canonical chat chunks.

    A translator for a stream with no terminator of its own (no ``[DONE]`` or
    ``message_stop``: Gemini, Cohere, Bedrock) also has a ``done`` attribute that turns
    True once the provider said the answer is complete; a stream that closes before
    that is reported as interrupted.
    """

    usage: dict[str, Any] | None

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        """One SSE event (its ``event:`` name and parsed ``data:`` JSON) -> zero or more chunks."""
        ...

    def finish(self) -> list[dict[str, Any]]:
        """Chunks still owed once the upstream stream ended normally."""
        ...


class StreamDecoder(Protocol):
    """A provider's own (non-SSE) stream framing: bytes in, decoded events out."""

    def feed(self, chunk: bytes) -> list[tuple[str | None, dict[str, Any]]]:
        """Bytes as they arrive -> the complete events they finish, as (name, payload)."""
        ...


class Provider(Protocol):
    name: str
    # Wire family the provider speaks natively: "openai" or "anthropic". Same-dialect
    # traffic is forwarded without translation.
    dialect: str
    default_base_url: str
    endpoints: frozenset[str]

    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        """Canonical body (``model`` already the upstream model) -> the provider's request."""
        ...

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        """The provider's success body -> the canonical response dict."""
        ...

    def parse_error(self, status: int, raw: bytes) -> UpstreamError:
        """The provider's error body -> an UpstreamError with its message and type."""
        ...

    def stream_translator(self, endpoint: str, model: str) -> StreamTranslator:
        """A fresh translator for one streamed response."""
        ...


_REGISTRY: dict[str, Provider] = {}
_builtin_loaded = False


def register(provider: Provider) -> Provider:
    _REGISTRY[provider.name] = provider
    return provider


def get_provider(name: str) -> Provider | None:
    if not _builtin_loaded:
        _load_builtin()
    return _REGISTRY.get(name)


def provider_names() -> list[str]:
    if not _builtin_loaded:
        _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Imported for their register() side effect, on first lookup rather than at import
    # time, so this module stays importable by the providers themselves.
    global _builtin_loaded
    from lockgate.providers import (  # noqa: F401
        anthropic,
        azure,
        bedrock,
        cohere,
        gemini,
        openai_compat,
    )

    _builtin_loaded = True


def stream_decoder(provider: Provider, endpoint: str) -> StreamDecoder | None:
    """The provider's stream decoder, or None for SSE."""
    factory = getattr(provider, "stream_decoder", None)
    return factory(endpoint) if factory is not None else None


def normalize_usage(provider: Provider, usage: dict[str, Any]) -> dict[str, Any]:
    """A provider's usage block in canonical form (identity unless the provider says otherwise)."""
    hook = getattr(provider, "normalize_usage", None)
    return hook(usage) if hook is not None else usage


def check_credential(provider: Provider, cred: Credential) -> CredentialProblem | None:
    """The provider's ``check_credential`` verdict (None when it has no such hook)."""
    hook = getattr(provider, "check_credential", None)
    return hook(cred) if hook is not None else None


def secret_option_paths(provider: Provider | None) -> frozenset[str]:
    """The dotted option paths the provider declares secret (``entra.client_secret``)."""
    return frozenset(getattr(provider, "secret_options", ()))


def parse_upstream_error(
    provider: Provider, status: int, raw: bytes, headers: Mapping[str, str] | None = None
) -> UpstreamError:
    """``provider.parse_error``, given the response headers it declared in ``error_headers``."""
    wanted = getattr(provider, "error_headers", ())
    if wanted and headers is not None:
        picked = {name: headers[name] for name in wanted if name in headers}
        return provider.parse_error(status, raw, headers=picked)  # type: ignore[call-arg]
    return provider.parse_error(status, raw)


def error_message_from_json(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) from an OpenAI- or Anthropic-shaped error body, if it is one."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(payload, dict):
        return None, None, None
    err = payload.get("error")
    if isinstance(err, dict):
        message = err.get("message")
        code = err.get("code")
        return (
            message if isinstance(message, str) else None,
            err.get("type") if isinstance(err.get("type"), str) else None,
            str(code) if code is not None else None,
        )
    if isinstance(err, str):
        return err, None, None
    return None, None, None
