"""How one request crosses from the client's dialect to a target's, and the answer back.

Same dialect on both sides (OpenAI client -> OpenAI-compatible provider,
Anthropic client -> Anthropic) is native: the client's bytes go up with at most
``model`` changed, and the provider's bytes come back untouched. Otherwise the
request goes through the canonical (OpenAI chat) form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.catalog import tokens
from lockgate.errors import BadRequest, UpstreamProtocolError
from lockgate.gateway.credentials import CredentialTokens
from lockgate.gateway.routing import Target
from lockgate.providers import anthropic
from lockgate.providers.base import CHAT, EMBEDDINGS, MESSAGES, Body, UpstreamRequest
from lockgate.providers.parts import encode_base64_embedding

OPENAI = "openai"
ANTHROPIC = "anthropic"


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # as recorded: chat, completions, embeddings, messages
    dialect: str  # the client's wire format
    canonical: str  # what is asked of a provider: chat, completions, embeddings


class Exchange:
    __slots__ = ("_chat", "_tokens", "body", "endpoint", "stream", "wants_usage")

    def __init__(self, endpoint: Endpoint, body: Body, tokens: CredentialTokens | None = None) -> None:
        self.endpoint = endpoint
        self.body = body
        # Minted bearer tokens (Vertex service accounts, Entra ID), put on the credential per attempt.
        self._tokens = tokens
        self.stream = body.data.get("stream") is True
        options = body.data.get("stream_options")
        # Anthropic clients always get usage in message_delta; OpenAI clients only when asked.
        self.wants_usage = endpoint.dialect == ANTHROPIC or (
            isinstance(options, dict) and options.get("include_usage") is True
        )
        self._chat: dict[str, Any] | None = None

    def is_native(self, target: Target) -> bool:
        return target.provider.dialect == self.endpoint.dialect

    def chat_form(self) -> dict[str, Any]:
        """The canonical chat body of an Anthropic-dialect request (translated once)."""
        if self._chat is None:
            self._chat = anthropic.messages_request_to_chat(self.body.data)
        return self._chat

    def with_body(self, body: Body) -> Exchange:
        """The same exchange asking something else (a stream's continuation)."""
        return Exchange(self.endpoint, body, self._tokens)

    def build(self, target: Target, overrides: Mapping[str, Any] | None = None) -> UpstreamRequest:
        """The target's request; ``overrides`` (a route's ``override_params``) replace body fields."""
        provider = target.provider
        cred = target.credential if self._tokens is None else self._tokens.apply(target.credential)
        if self.endpoint.dialect == ANTHROPIC and not self.is_native(target):
            body = Body(dict(self.chat_form()))
            body.data["model"] = target.model
            if overrides:
                body.data.update(overrides)
            return provider.build_request(CHAT, body, cred)
        wanted = MESSAGES if self.endpoint.dialect == ANTHROPIC else self.endpoint.canonical
        if wanted not in provider.endpoints:
            raise BadRequest(
                f"The provider {provider.name} (for {target.label}) does not serve the "
                f"{self.endpoint.canonical} endpoint.",
                param="model",
                code="unsupported_endpoint",
            )
        body = self.body.copy()
        body.set("model", target.model)
        for name, value in (overrides or {}).items():
            body.set(name, value)
        return provider.build_request(wanted, body, cred)

    def translate_response(self, target: Target, raw: bytes) -> tuple[bytes, dict[str, Any] | None]:
        """The provider's success body -> (bytes for the client, canonical usage or None)."""
        try:
            if self.is_native(target):
                payload = orjson.loads(raw)
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
                usage = payload.get("usage")
                if self.endpoint.dialect == ANTHROPIC and isinstance(usage, dict):
                    usage = anthropic.usage_to_chat(usage)
                return raw, usage if isinstance(usage, dict) else None
            canonical = target.provider.parse_response(self.endpoint.canonical, raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UpstreamProtocolError(
                f"The upstream {target.credential.name} returned a body Lockgate cannot read: {exc}",
                provider=target.credential.name,
            ) from exc
        if not canonical.get("model"):
            canonical["model"] = target.model  # dialects whose bodies do not name the model
        if self.endpoint.canonical == EMBEDDINGS and self.body.data.get("encoding_format") == "base64":
            # Translated embeddings come back as floats; the OpenAI SDK asks for base64 by default.
            for item in canonical.get("data") or ():
                if isinstance(item.get("embedding"), list):
                    item["embedding"] = encode_base64_embedding(item["embedding"])
        usage = canonical.get("usage")
        if self.endpoint.dialect == ANTHROPIC:
            canonical = anthropic.chat_response_to_messages(canonical, model=self.body.data["model"])
        return orjson.dumps(canonical), usage if isinstance(usage, dict) else None

    # Local token counting, for when a provider reports no usage.

    def estimate_prompt_tokens(self) -> int:
        data = self.body.data
        model = data.get("model")
        if self.endpoint.canonical == CHAT:
            chat = data
            if self.endpoint.dialect == ANTHROPIC:
                try:
                    chat = self.chat_form()
                except BadRequest:
                    # Native Anthropic traffic may hold blocks chat cannot express; count their JSON.
                    return tokens.count_text(orjson.dumps(data.get("messages")).decode(), model)
            return tokens.count_chat_prompt(chat.get("messages") or [], model, chat.get("tools"))
        text = data.get("prompt") if self.endpoint.canonical == "completions" else data.get("input")
        return _count_token_input(text, model)

    async def estimate_usage(
        self, response_text: str, tool_calls: list[dict[str, Any]] | None = None
    ) -> dict[str, int]:
        """Usage counted locally (the encodings load on first need, off the event loop)."""
        await tokens.ensure_loaded(self.body.data.get("model"))
        prompt = self.estimate_prompt_tokens()
        completion = (
            tokens.count_chat_completion(response_text, tool_calls, self.body.data.get("model"))
            if self.endpoint.canonical != "embeddings"
            else 0
        )
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _count_token_input(value: Any, model: str | None) -> int:
    if isinstance(value, str):
        return tokens.count_text(value, model)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += tokens.count_text(item, model)
            elif isinstance(item, int):
                total += 1
            elif isinstance(item, list):
                total += len(item)
        return total
    return 0


def text_of_response(canonical: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Generated text and tool calls of a canonical chat or completion response."""
    parts: list[str] = []
    calls: list[dict[str, Any]] = []
    for choice in canonical.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                parts.append(message["content"])
            if isinstance(message.get("tool_calls"), list):
                calls.extend(c for c in message["tool_calls"] if isinstance(c, dict))
        elif isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts), calls
