"""The Anthropic dialect: the Messages API <-> Lockgate's canonical chat format.

Pure translation, no I/O. The code is split by concept: ``anthropic_upstream`` (chat
requests -> Messages, Messages responses -> chat), ``anthropic_stream`` (SSE both ways),
``anthropic_ingress`` (Messages clients of ``/v1/messages`` -> chat and back). This module
holds the provider and re-exports the public functions. The rules below are the documented
contract users rely on; tests pin every one of them.

Chat -> Messages (an OpenAI-format client, an Anthropic target)
----------------------------------------------------------------
Messages
- ``system``/``developer`` messages, wherever they appear, are hoisted into the top-level
  ``system``: one string (joined with a blank line) when all are strings, else text blocks.
- Consecutive messages of one role are merged into one turn (Anthropic requires
  alternation); ``tool`` messages become ``tool_result`` blocks in a user turn, and inside a
  merged user turn the ``tool_result`` blocks are moved first (Anthropic requires it).
- User parts: ``text`` -> text block; ``image_url`` data URL -> base64 image, http(s) URL ->
  url image; ``file`` with a base64 PDF ``file_data`` -> document block (filename -> title).
  Other parts (``input_audio``, file ids, other file types) -> ``UnsupportedParameter``.
- Assistant ``content`` + ``tool_calls`` -> text block + ``tool_use`` blocks (``input`` is the
  parsed arguments; invalid or non-object JSON -> ``BadRequest`` naming the argument path).
  ``thinking_blocks`` echoed back from an earlier response are restored first. Empty
  assistant messages are skipped. A message's ``name`` is ignored.
- ``cache_control`` on text/image parts and on tools is passed through (prompt caching).
- Legacy ``functions``/``function_call`` and role ``function`` -> ``UnsupportedParameter``.

Parameters
- ``max_completion_tokens`` or else ``max_tokens`` -> ``max_tokens``; absent -> the credential's
  ``options["default_max_tokens"]`` or 4096 (Anthropic requires the field).
- ``temperature``: OpenAI allows 0..2, Anthropic 0..1. Values <= 1 pass unchanged, larger values
  are clamped to 1 (clamped, not rescaled, so the common 0..1 range keeps its meaning).
- ``top_p`` and ``top_k`` pass; ``stop`` (string or list) -> ``stop_sequences``;
  ``user`` -> ``metadata.user_id``; ``stream`` -> ``stream``; ``stream_options`` is consumed
  (Anthropic always reports usage in ``message_delta``).
- ``tools`` (function type only, else ``UnsupportedParameter``) -> ``{name, description,
  input_schema}`` with ``{"type": "object", "properties": {}}`` when ``parameters`` is absent;
  ``function.strict`` is ignored.
- ``tool_choice``: ``auto`` -> auto, ``required`` -> any, ``none`` -> none, a named function ->
  ``{"type": "tool", "name"}``; ``allowed_tools`` -> ``UnsupportedParameter``.
  ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use: true`` (on ``{"type":"auto"}``
  when no choice was given). Both are forwarded only when ``tools`` is non-empty.
- ``response_format``: ``text`` is consumed; ``json_object`` appends an instruction to answer
  with one JSON object to the system prompt; ``json_schema`` appends an instruction with the
  schema, or, when the credential sets ``options["structured_outputs"]``, is sent natively as
  ``output_config.format`` (constrained decoding; needs a model that supports it). Both are
  translations, not drops.
- ``reasoning_effort`` -> ``thinking: {"type": "enabled", "budget_tokens": B}`` with B = 1024
  (low), 4096 (medium), 16384 (high), 32768 (xhigh), capped at ``max_tokens - 1``; when that
  cap is below Anthropic's 1024 minimum, it is dropped and reported. ``none``/``minimal``
  mean no thinking. A native ``thinking`` object in the request takes precedence.
- ``n`` > 1 -> ``UnsupportedParameter``.
- Dropped and reported in ``dropped_params``: ``logprobs``, ``top_logprobs``, ``logit_bias``,
  ``presence_penalty``, ``frequency_penalty``, ``seed``, ``service_tier``, ``store``,
  ``metadata`` and any unknown key. A value of ``null``, or equal to OpenAI's default
  (``logprobs: false``, penalties ``0``, ``logit_bias: {}``, ``store: false``,
  ``metadata: {}``), changes nothing and is consumed silently.

Messages -> chat (responses and streams)
- Text blocks are concatenated into ``content`` (``None`` when there are none); ``tool_use``
  -> ``tool_calls`` (arguments = compact JSON of ``input``); thinking blocks ->
  ``reasoning_content``, and (non-streaming) the raw blocks with signatures in
  ``thinking_blocks`` so a client can echo them back. Server-tool blocks are omitted.
- ``stop_reason``: end_turn/stop_sequence/pause_turn -> stop, max_tokens and
  model_context_window_exceeded -> length, tool_use -> tool_calls, refusal -> content_filter.
- Usage: ``prompt_tokens = input + cache_read + cache_creation``; cached reads in
  ``prompt_tokens_details.cached_tokens``, writes in ``.cache_creation_tokens``; thinking
  tokens in ``completion_tokens_details.reasoning_tokens`` when reported.
- Streams: message_start -> a role chunk; tool_use start -> a tool-call chunk (id, name,
  ``arguments: ""``) with a running tool index; text/input_json/thinking deltas -> content /
  arguments / ``reasoning_content`` chunks (a tool that streamed no arguments gets ``"{}"``
  when its block stops, as chat clients parse arguments as JSON); message_delta -> the
  finish_reason chunk; message_stop -> a usage-only chunk (``choices: []``) which the
  gateway may withhold; ``error`` events raise ``UpstreamError``. Signatures, citations
  and server-tool blocks are not streamed to chat clients.
- Errors: Anthropic error types map to OpenAI types (api_error and overloaded_error ->
  api_error, billing_error -> insufficient_quota); the Anthropic type is kept as ``code``.

Messages -> chat (an Anthropic-format client on ``/v1/messages``, a non-Anthropic target)
-----------------------------------------------------------------------------------------
- ``model``, ``messages`` and ``max_tokens`` are required; wrong types -> ``BadRequest`` with
  ``param`` set to the path (e.g. ``messages[2].content``).
- ``system`` -> a leading system message (string, or text parts). ``tool_result`` blocks ->
  role ``tool`` messages placed before the rest of their user turn; ``is_error`` results are
  prefixed with ``"Error: "``; results with images -> ``UnsupportedParameter``. Images ->
  ``image_url`` (data URL or url); plain-text documents -> text; base64 PDF documents ->
  ``file`` parts; other blocks -> ``UnsupportedParameter``. Thinking blocks are dropped.
- ``tools`` -> functions; server tools (a ``type`` other than ``custom``) ->
  ``UnsupportedParameter``. ``tool_choice`` any -> required, tool -> function, none -> none;
  ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``.
- ``stop_sequences`` -> ``stop``; ``temperature``/``top_p``/``max_tokens`` pass;
  ``metadata.user_id`` -> ``user``; ``output_config.format`` (json_schema) ->
  ``response_format`` (non-strict); ``stream`` adds ``stream_options.include_usage``.
  ``top_k``, ``thinking``, ``output_config.effort``, ``service_tier`` and unknown keys are
  dropped (reported through the optional ``dropped`` list).
- Responses: text -> a text block, tool calls -> ``tool_use`` (arguments that are not a JSON
  object are kept as ``{"_raw": "<arguments>"}``); reasoning is not forwarded (it carries no
  Anthropic signature). finish_reason stop -> end_turn, length -> max_tokens, tool_calls ->
  tool_use, content_filter -> refusal. The id is ``msg_`` + the chat id without ``chatcmpl-``.
- Streams: ``message_start`` reports ``input_tokens: 0`` until the final usage is known; the
  real usage (input, cache, output) is sent in ``message_delta``, emitted with
  ``message_stop`` by ``finish()``.
- Errors: the envelope is typed by status (400 invalid_request_error, 401
  authentication_error, 402 billing_error, 403 permission_error, 404 not_found_error, 413
  request_too_large, 429 rate_limit_error, 504 timeout_error, 529 overloaded_error, other
  4xx invalid_request_error, other 5xx api_error).
"""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.errors import UnsupportedParameter, UpstreamError
from lockgate.providers.anthropic_ingress import (
    chat_response_to_messages,
    error_to_anthropic,
    messages_request_to_chat,
)
from lockgate.providers.anthropic_stream import ChatStreamToMessages, MessagesStreamToChat
from lockgate.providers.anthropic_upstream import (
    ERROR_TYPES,
    chat_to_messages_request,
    messages_response_to_chat,
    usage_from_chat,
    usage_to_chat,
)
from lockgate.providers.base import CHAT, MESSAGES, Body, Credential, UpstreamRequest, register

__all__ = [
    "AnthropicProvider",
    "ChatStreamToMessages",
    "MessagesStreamToChat",
    "chat_response_to_messages",
    "chat_to_messages_request",
    "error_to_anthropic",
    "messages_request_to_chat",
    "messages_response_to_chat",
    "messages_url",
    "usage_from_chat",
    "usage_to_chat",
]

ANTHROPIC_VERSION = "2023-06-01"


def messages_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    # Accept base URLs given with or without the version segment.
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


class AnthropicProvider:
    name = "anthropic"
    dialect = "anthropic"
    default_base_url = "https://api.anthropic.com"
    endpoints = frozenset({CHAT, MESSAGES})

    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        url = messages_url(cred.base_url or self.default_base_url)
        headers = {
            "content-type": "application/json",
            "anthropic-version": str(cred.options.get("anthropic_version") or ANTHROPIC_VERSION),
        }
        if cred.api_key is not None:
            headers["x-api-key"] = cred.api_key
        headers.update(cred.headers)
        if endpoint == MESSAGES:
            # Same dialect: forward the client's bytes untouched.
            return UpstreamRequest(url=url, headers=headers, body=body.encode())
        if endpoint == CHAT:
            payload, dropped = chat_to_messages_request(
                body.data,
                default_max_tokens=int(cred.options.get("default_max_tokens") or 4096),
                native_structured_outputs=bool(cred.options.get("structured_outputs")),
            )
            return UpstreamRequest(
                url=url, headers=headers, body=orjson.dumps(payload), dropped_params=dropped
            )
        raise UnsupportedParameter(f"anthropic does not serve the {endpoint} endpoint")

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        payload = orjson.loads(raw)
        return messages_response_to_chat(payload) if endpoint == CHAT else payload

    def parse_error(self, status: int, raw: bytes) -> UpstreamError:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        err = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(err, dict):
            detail = "an unrecognised error body" if payload is not None else "a non-JSON body"
            return UpstreamError(
                f"anthropic returned HTTP {status} with {detail}",
                upstream_status=status,
                provider="anthropic",
            )
        anthropic_type = err.get("type") if isinstance(err.get("type"), str) else "api_error"
        message = (
            err.get("message") if isinstance(err.get("message"), str) else f"anthropic returned HTTP {status}"
        )
        return UpstreamError(
            message,
            upstream_status=status,
            provider="anthropic",
            type=ERROR_TYPES.get(anthropic_type, "api_error"),
            code=anthropic_type,
        )

    def stream_translator(self, endpoint: str, model: str) -> MessagesStreamToChat:
        # Also used on MESSAGES routes, where the bytes are relayed as-is: its ``usage``
        # attribute still captures the usage for settlement.
        return MessagesStreamToChat(model)


register(AnthropicProvider())
