"""Cohere: the v2 Chat and Embed APIs <-> Lockgate's canonical chat and embeddings.

Pure translation, no I/O. Cohere v2's messages look like OpenAI's, so most of a chat
request maps field for field; the differences are the rules below, pinned by tests.

Endpoints and auth: ``{base}/v2/chat`` and ``{base}/v2/embed``, base
``https://api.cohere.com``; ``api_key`` -> ``Authorization: Bearer``.

Chat -> /v2/chat
- Messages keep their roles (system, user, assistant, tool; ``developer`` -> system).
  User content: text parts -> text, ``image_url`` -> ``image_url`` (data or http URLs);
  other parts -> ``UnsupportedParameter``. Assistant ``tool_calls`` pass as they are
  (arguments must be valid JSON); an assistant message's ``tool_plan`` is kept. Tool
  results -> ``{"role": "tool", "tool_call_id", "content"}`` (text).
- ``max_completion_tokens``/``max_tokens`` -> ``max_tokens``; ``top_p`` -> ``p``, ``top_k`` ->
  ``k``; ``stop`` -> ``stop_sequences``; ``temperature``, ``seed``, ``presence_penalty``,
  ``frequency_penalty``, ``stream`` pass; ``stream_options`` is consumed (usage always
  comes in ``message-end``).
- ``tools`` (function only) pass; ``tool_choice``: auto -> omitted, none -> NONE, required ->
  REQUIRED, a named function (or ``allowed_tools``) -> REQUIRED with ``tools`` cut to the
  named functions (Cohere cannot name one). ``parallel_tool_calls: false`` -> dropped and
  reported. ``response_format`` json_object -> ``{"type": "json_object"}``, json_schema ->
  ``{"type": "json_object", "json_schema": schema}``. ``reasoning_effort`` none/minimal ->
  ``thinking: {"type": "disabled"}``, others -> ``{"type": "enabled"}``.
- ``n`` > 1 -> ``UnsupportedParameter``. Dropped and reported: ``logprobs``,
  ``top_logprobs``, ``logit_bias``, ``user``, ``service_tier``, ``store``, ``metadata`` and
  unknown keys (OpenAI defaults and nulls consumed silently).

/v2/chat -> chat
- ``message.content`` text blocks joined -> ``content``; ``thinking`` blocks ->
  ``reasoning_content``; ``tool_calls`` pass; ``tool_plan`` is kept on the message;
  ``citations`` are kept on the message as Cohere sent them.
- ``finish_reason``: COMPLETE/STOP_SEQUENCE -> stop, MAX_TOKENS -> length, TOOL_CALL ->
  tool_calls, ERROR/TIMEOUT -> stop (the text so far is all there is).
- Usage: ``billed_units`` (what Cohere charges: input excludes its prompt template) ->
  prompt/completion tokens, falling back to ``tokens``; ``cached_tokens`` ->
  ``prompt_tokens_details.cached_tokens``.
- Streams (SSE, ``type`` in each event): message-start -> role chunk; content-delta ->
  content (thinking deltas -> ``reasoning_content``); tool-plan-delta -> nothing (kept
  out of the content); tool-call-start -> a tool-call chunk (id, name, arguments so far),
  tool-call-delta -> argument pieces; message-end -> finish chunk + usage (``done``).
- Embeddings: ``input`` -> ``texts``, ``embedding_types: ["float"]``, ``input_type`` from
  ``options.embed_input_type`` (default ``search_document``), ``dimensions`` ->
  ``output_dimension``; usage from ``meta.billed_units.input_tokens``.
- Errors: ``{"message": ...}`` (``{"id", "message"}`` in v2) -> the upstream status and
  message; the type follows the status.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from lockgate.errors import BadRequest, UnsupportedParameter, UpstreamError
from lockgate.providers import parts
from lockgate.providers.base import CHAT, EMBEDDINGS, Body, Credential, UpstreamRequest, register

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
    "TIMEOUT": "stop",
}
STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
        "stop", "stream", "stream_options", "n", "seed", "presence_penalty", "frequency_penalty",
        "tools", "tool_choice", "response_format", "reasoning_effort",
    }
)  # fmt: skip
_RENAMED = {"top_p": "p", "top_k": "k"}
_PASSED = ("temperature", "seed", "presence_penalty", "frequency_penalty")


def chat_to_cohere(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A canonical chat request -> (/v2/chat body, names of dropped parameters)."""
    parts.refuse_legacy_functions(data, "cohere")
    parts.refuse_n(data, "cohere")
    dropped = parts.dropped_params(data, _HANDLED)
    out: dict[str, Any] = {"model": data.get("model"), "messages": _messages(data.get("messages"))}
    for key in _PASSED:
        if data.get(key) is not None:
            out[key] = data[key]
    for key, native in _RENAMED.items():
        if data.get(key) is not None:
            out[native] = data[key]
    limit = parts.max_tokens(data)
    if limit is not None:
        out["max_tokens"] = limit
    stops = parts.stop_sequences(data)
    if stops:
        out["stop_sequences"] = stops
    if data.get("stream") is True:
        out["stream"] = True
    if data.get("tools"):
        functions = parts.function_tools(data["tools"], "cohere")
        choice = parts.tool_choice(data.get("tool_choice"))
        if choice is not None and choice[1]:
            functions = [fn for fn in functions if fn["name"] in choice[1]]
            if not functions:
                raise BadRequest("tool_choice names a function that is not in 'tools'", param="tool_choice")
        out["tools"] = [{"type": "function", "function": fn} for fn in functions]
        if choice is not None and choice[0] != "auto":
            out["tool_choice"] = "NONE" if choice[0] == "none" else "REQUIRED"
    fmt = data.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object", param="response_format")
        out["response_format"] = {"type": "json_object", "json_schema": schema}
    elif fmt is not None and kind != "text":
        raise BadRequest(f"unsupported response_format type {kind!r}", param="response_format")
    effort = data.get("reasoning_effort")
    if effort is not None:
        out["thinking"] = {"type": "disabled" if effort in ("none", "minimal") else "enabled"}
    return out, dropped


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    out = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"'{param}' must be an object", param=param)
        role = msg.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": parts.text_of(msg.get("content"), f"{param}.content")})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(msg.get("content"), f"{param}.content")})
        elif role == "assistant":
            out.append(_assistant(msg, param))
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise BadRequest("tool messages need a 'tool_call_id'", param=f"{param}.tool_call_id")
            text = parts.text_of(msg.get("content"), f"{param}.content")
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif role == "function":
            raise UnsupportedParameter("legacy 'function' messages are not supported; use tools", param=param)
        else:
            raise BadRequest(f"unknown role {role!r}", param=f"{param}.role")
    return out


def _user_content(content: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for j, part in enumerate(parts.array(content, param)):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            out.append({"type": "image_url", "image_url": {"url": parts.image_url_of(part, f"{param}[{j}]")}})
        elif kind is None or kind == "text":
            raise BadRequest("content parts must be objects with a 'type' (text parts need 'text')",
                             param=f"{param}[{j}]")  # fmt: skip
        else:
            raise UnsupportedParameter(
                f"cohere does not support '{kind}' content parts", param=f"{param}[{j}]"
            )
    return out


def _assistant(msg: dict[str, Any], param: str) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    content = msg.get("content")
    if isinstance(content, str) and content:
        out["content"] = content
    elif isinstance(content, list) and content:
        out["content"] = parts.text_of(content, f"{param}.content")
    calls = msg.get("tool_calls")
    if calls:
        out["tool_calls"] = []
        for j, call in enumerate(parts.array(calls, f"{param}.tool_calls")):
            call_id, name, args = parts.tool_arguments(call, f"{param}.tool_calls[{j}]")
            function = {"name": name, "arguments": parts.dumps(args)}
            out["tool_calls"].append({"id": call_id, "type": "function", "function": function})
        if isinstance(msg.get("tool_plan"), str):
            out["tool_plan"] = msg["tool_plan"]
    return out


def usage_to_chat(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    billed = usage.get("billed_units") or {}
    counted = usage.get("tokens") or {}
    prompt = int(billed.get("input_tokens", counted.get("input_tokens")) or 0)
    completion = int(billed.get("output_tokens", counted.get("output_tokens")) or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(usage.get("cached_tokens") or 0)},
    }


def response_to_chat(payload: dict[str, Any], model: str = "") -> dict[str, Any]:
    message = payload.get("message") or {}
    texts, thinking = [], []
    for block in message.get("content") or ():
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif isinstance(block, dict) and block.get("type") == "thinking":
            thinking.append(block.get("thinking", ""))
    out_message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if thinking:
        out_message["reasoning_content"] = "".join(thinking)
    if message.get("tool_calls"):
        out_message["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": c.get("function") or {}}
            for c in message["tool_calls"]
        ]
    for key in ("tool_plan", "citations"):
        if message.get(key):
            out_message[key] = message[key]
    out: dict[str, Any] = {
        "id": payload.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": FINISH_REASONS.get(payload.get("finish_reason") or "", "stop"),
                "logprobs": None,
            }
        ],
    }
    usage = usage_to_chat(payload.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


class CohereStreamToChat:
    """/v2/chat SSE events -> canonical chat chunks; ``done`` at ``message-end``."""

    def __init__(self, model: str) -> None:
        self.usage: dict[str, Any] | None = None
        self.done = False
        self._model = model
        self._id = ""
        self._created = int(time.time())
        self._tool_index = -1

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type") or event
        message = (data.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            self._id = data.get("id") or self._id
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            content = message.get("content") or {}
            if isinstance(content.get("thinking"), str):
                return [self._chunk({"reasoning_content": content["thinking"]})]
            return [self._chunk({"content": content.get("text") or ""})]
        if kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            self._tool_index += 1
            function = call.get("function") or {}
            delta = {
                "index": self._tool_index,
                "id": call.get("id"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": function.get("arguments") or ""},
            }
            return [self._chunk({"tool_calls": [delta]})]
        if kind == "tool-call-delta":
            arguments = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if not arguments:
                return []
            return [
                self._chunk(
                    {"tool_calls": [{"index": self._tool_index, "function": {"arguments": arguments}}]}
                )
            ]
        if kind == "message-end":
            delta = data.get("delta") or {}
            if isinstance(delta.get("error"), str):
                raise UpstreamError(delta["error"], provider="cohere")
            self.usage = usage_to_chat(delta.get("usage")) or self.usage
            self.done = True
            reason = FINISH_REASONS.get(delta.get("finish_reason") or "", "stop")
            return [self._chunk({}, reason)]
        return []  # content-start/end, tool-plan-delta, tool-call-end, citation-start/end

    def finish(self) -> list[dict[str, Any]]:
        if self.usage is None:
            return []
        return [{**self._chunk({}), "choices": [], "usage": self.usage}]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }


def embeddings_to_cohere(data: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": data.get("model"),
        "texts": parts.embedding_inputs(data.get("input"), "cohere"),
        "input_type": options.get("embed_input_type") or "search_document",
        "embedding_types": ["float"],
    }
    if data.get("dimensions") is not None:
        out["output_dimension"] = data["dimensions"]
    return out


def embeddings_to_openai(payload: dict[str, Any], model: str = "") -> dict[str, Any]:
    embeddings = payload.get("embeddings")
    # embedding_types gives {"float": [...]}; without it Cohere answers with a bare list.
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    billed = (payload.get("meta") or {}).get("billed_units") or {}
    tokens = billed.get("input_tokens")
    return parts.embeddings_response(
        [list(v) for v in vectors or ()], model, int(tokens) if tokens is not None else None
    )


def parse_error(status: int, raw: bytes, provider: str = "cohere") -> UpstreamError:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, str):
        snippet = raw[:200].decode("utf-8", "replace").strip()
        message = f"{provider} returned HTTP {status}" + (f": {snippet}" if snippet else "")
    kind = STATUS_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return UpstreamError(message, upstream_status=status, provider=provider, type=kind)


class CohereProvider:
    name = "cohere"
    dialect = "cohere"
    default_base_url = "https://api.cohere.com"
    endpoints = frozenset({CHAT, EMBEDDINGS})

    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        base = (cred.base_url or self.default_base_url).rstrip("/").removesuffix("/v2")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if cred.api_key:
            headers["authorization"] = f"Bearer {cred.api_key}"
        headers.update(cred.headers)
        if endpoint == CHAT:
            payload, dropped = chat_to_cohere(body.data)
            if payload.get("stream"):
                headers["accept"] = "text/event-stream"
            return UpstreamRequest(f"{base}/v2/chat", headers, orjson.dumps(payload), dropped_params=dropped)
        if endpoint == EMBEDDINGS:
            payload = embeddings_to_cohere(body.data, dict(cred.options))
            return UpstreamRequest(f"{base}/v2/embed", headers, orjson.dumps(payload))
        raise UnsupportedParameter(f"cohere does not serve the {endpoint} endpoint")

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        payload = orjson.loads(raw)
        return embeddings_to_openai(payload) if endpoint == EMBEDDINGS else response_to_chat(payload)

    def parse_error(self, status: int, raw: bytes) -> UpstreamError:
        return parse_error(status, raw)

    def stream_translator(self, endpoint: str, model: str) -> CohereStreamToChat:
        return CohereStreamToChat(model)


COHERE = register(CohereProvider())
