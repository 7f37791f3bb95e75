"""Canonical chat <-> Bedrock Converse / ConverseStream, and Bedrock's InvokeModel embeddings.

The rules are listed in ``lockgate.providers.bedrock``. Pure functions and one stream
state machine; no I/O, inputs never mutated.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from lockgate.errors import BadRequest, UnsupportedParameter, UpstreamError
from lockgate.providers import parts
from lockgate.providers.anthropic_upstream import (
    JSON_OBJECT_INSTRUCTION,
    JSON_SCHEMA_INSTRUCTION,
    MIN_THINKING_BUDGET,
    REASONING_BUDGETS,
)
from lockgate.providers.parts import array

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/html": "html",
    "text/markdown": "md",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
        "stop", "stream", "stream_options", "n", "tools", "tool_choice", "response_format",
        "reasoning_effort",
    }
)  # fmt: skip
_DOCUMENT_NAME = re.compile(r"[^A-Za-z0-9 \-()\[\]]")


def chat_to_converse(data: dict[str, Any], options: dict[str, Any] | None = None) -> tuple[dict, list[str]]:
    """A canonical chat request -> (Converse body, names of dropped parameters)."""
    options = options or {}
    parts.refuse_legacy_functions(data, "bedrock")
    parts.refuse_n(data, "bedrock")
    model = str(data.get("model") or "")
    dropped = parts.dropped_params(data, _HANDLED)
    system, messages, has_tool_blocks = _messages(data.get("messages"))
    out: dict[str, Any] = {"messages": messages}
    instruction = _format_instruction(data.get("response_format"))
    if instruction:
        system.append({"text": instruction})
    if system:
        out["system"] = system
    inference: dict[str, Any] = {}
    limit = parts.max_tokens(data)
    if limit is not None:
        inference["maxTokens"] = limit
    if data.get("temperature") is not None:
        inference["temperature"] = data["temperature"]
    if data.get("top_p") is not None:
        inference["topP"] = data["top_p"]
    stops = parts.stop_sequences(data)
    if stops:
        inference["stopSequences"] = stops
    if inference:
        out["inferenceConfig"] = inference
    extra: dict[str, Any] = {}
    if data.get("top_k") is not None:
        extra["top_k"] = data["top_k"]
    effort = data.get("reasoning_effort")
    if effort is not None and effort not in ("none", "minimal"):
        if effort not in REASONING_BUDGETS:
            raise BadRequest(f"unknown reasoning_effort {effort!r}", param="reasoning_effort")
        budget = min(REASONING_BUDGETS[effort], (limit or 4096) - 1)
        if _is_anthropic(model) and budget >= MIN_THINKING_BUDGET:
            extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
        else:
            dropped.append("reasoning_effort")  # only Claude on Bedrock takes a thinking budget
    if extra:
        out["additionalModelRequestFields"] = extra
    tool_config = _tool_config(data, has_tool_blocks)
    if tool_config is not None:
        out["toolConfig"] = tool_config
    guardrail = options.get("guardrail")
    if isinstance(guardrail, dict):
        out["guardrailConfig"] = guardrail
    return out, dropped


def _is_anthropic(model: str) -> bool:
    return "anthropic." in model  # also cross-region profiles: us.anthropic.claude-...


def _format_instruction(fmt: Any) -> str | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object", param="response_format")
        return JSON_SCHEMA_INSTRUCTION + parts.dumps(schema)
    raise BadRequest(f"unsupported response_format type {kind!r}", param="response_format")


def _tool_config(data: dict[str, Any], has_tool_blocks: bool) -> dict[str, Any] | None:
    tools = data.get("tools")
    if not tools:
        return None
    choice = parts.tool_choice(data.get("tool_choice"))
    if choice is not None and choice[0] == "none":
        if has_tool_blocks:
            # Converse needs toolConfig whenever the history holds tool blocks, and has no "none".
            raise UnsupportedParameter(
                "bedrock cannot forbid tool calls in a conversation that already used tools",
                param="tool_choice",
            )
        return None  # not offering the tools is what "none" asks
    specs = []
    for fn in parts.function_tools(tools, "bedrock"):
        spec: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            spec["description"] = fn["description"]
        spec["inputSchema"] = {"json": fn.get("parameters") or {"type": "object", "properties": {}}}
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice is not None:
        mode, names = choice
        if names and len(names) == 1 and mode == "required":
            config["toolChoice"] = {"tool": {"name": names[0]}}
        elif names:
            raise UnsupportedParameter(
                "bedrock cannot restrict tool_choice to several tools", param="tool_choice"
            )
        else:
            config["toolChoice"] = {"any": {}} if mode == "required" else {"auto": {}}
    return config


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    has_tool_blocks = False
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"'{param}' must be an object", param=param)
        role = msg.get("role")
        if role in ("system", "developer"):
            text = parts.text_of(msg.get("content"), f"{param}.content")
            if text:
                system.append({"text": text})
        elif role == "user":
            _append(turns, "user", _user_blocks(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            blocks = _assistant_blocks(msg, param)
            has_tool_blocks = has_tool_blocks or bool(msg.get("tool_calls"))
            if blocks:
                _append(turns, "assistant", blocks)
        elif role == "tool":
            has_tool_blocks = True
            _append(turns, "user", [_tool_result(msg, param)])
        elif role == "function":
            raise UnsupportedParameter("legacy 'function' messages are not supported; use tools", param=param)
        else:
            raise BadRequest(f"unknown role {role!r}", param=f"{param}.role")
    return system, turns, has_tool_blocks


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Converse requires alternating roles; tool results lead the user turn that answers.
    if turns and turns[-1]["role"] == role:
        merged = turns[-1]["content"] + blocks
        if role == "user":
            merged.sort(key=lambda block: "toolResult" not in block)
        turns[-1]["content"] = merged
    else:
        turns.append({"role": role, "content": list(blocks)})


def _user_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    return [_user_block(part, f"{param}[{j}]") for j, part in enumerate(array(content, param))]


def _user_block(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise BadRequest("text parts need a string 'text'", param=f"{param}.text")
        return {"text": part["text"]}
    if kind == "image_url":
        url = parts.image_url_of(part, param)
        if url.startswith("data:"):
            media_type, data = parts.parse_data_url(url, f"{param}.image_url.url")
            source: dict[str, Any] = {"bytes": data}
        elif url.startswith("s3://"):
            media_type, source = parts.media_type_from_url(url) or "", {"s3Location": {"uri": url}}
        else:
            raise UnsupportedParameter(
                "bedrock reads images from base64 data URLs or s3:// URIs, not web URLs",
                param=f"{param}.image_url.url",
            )
        image_format = _IMAGE_FORMATS.get(media_type)
        if image_format is None:
            raise UnsupportedParameter(f"bedrock does not read {media_type or 'this'} images", param=param)
        return {"image": {"format": image_format, "source": source}}
    if kind == "file":
        file = part.get("file") or {}
        if not isinstance(file.get("file_data"), str):
            raise UnsupportedParameter(
                "bedrock needs inline 'file_data' (file ids are not portable)", param=param
            )
        media_type, data = parts.parse_data_url(file["file_data"], f"{param}.file.file_data")
        doc_format = _DOCUMENT_FORMATS.get(media_type)
        if doc_format is None:
            raise UnsupportedParameter(f"bedrock does not read {media_type} documents", param=param)
        # Document names allow letters, digits, spaces, hyphens, parentheses and brackets.
        name = _DOCUMENT_NAME.sub(" ", str(file.get("filename") or "document")).strip() or "document"
        return {"document": {"format": doc_format, "name": name, "source": {"bytes": data}}}
    if kind is None:
        raise BadRequest("content parts must be objects with a 'type'", param=param)
    raise UnsupportedParameter(f"bedrock does not support '{kind}' content parts", param=param)


def _assistant_blocks(msg: dict[str, Any], param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"text": content})
    elif content is not None:
        text = parts.text_of(content, f"{param}.content")
        if text:
            blocks.append({"text": text})
    for j, call in enumerate(msg.get("tool_calls") or ()):
        call_id, name, args = parts.tool_arguments(call, f"{param}.tool_calls[{j}]")
        blocks.append({"toolUse": {"toolUseId": call_id, "name": name, "input": args}})
    return blocks


def _tool_result(msg: dict[str, Any], param: str) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str):
        raise BadRequest("tool messages need a 'tool_call_id'", param=f"{param}.tool_call_id")
    text = parts.text_of(msg.get("content"), f"{param}.content")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    block = {"json": value} if isinstance(value, dict) else {"text": text}
    return {"toolResult": {"toolUseId": call_id, "content": [block]}}


# --- responses ------------------------------------------------------------------------------


def usage_to_chat(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Converse usage -> canonical. ``inputTokens`` excludes cache reads and writes."""
    if not isinstance(usage, dict):
        return None
    cache_read = usage.get("cacheReadInputTokens") or 0
    cache_write = usage.get("cacheWriteInputTokens") or 0
    prompt = (usage.get("inputTokens") or 0) + cache_read + cache_write
    completion = usage.get("outputTokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_creation_tokens": cache_write},
    }


def converse_to_chat(payload: dict[str, Any], model: str = "") -> dict[str, Any]:
    message = (payload.get("output") or {}).get("message") or {}
    texts, reasoning, calls = [], [], []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            function = {"name": use.get("name"), "arguments": parts.dumps(use.get("input") or {})}
            calls.append({"id": use.get("toolUseId"), "type": "function", "function": function})
        elif isinstance(block.get("reasoningContent"), dict):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    out_message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    if calls:
        out_message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": parts.stable_id("chatcmpl-", parts.dumps(payload)),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": FINISH_REASONS.get(payload.get("stopReason") or "", "stop"),
                "logprobs": None,
            }
        ],
    }
    usage = usage_to_chat(payload.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


class ConverseStreamToChat:
    """ConverseStream events (decoded from the event stream) -> canonical chat chunks.

    ``done`` turns True at ``messageStop``; the ``metadata`` event that follows carries the
    usage, sent as a usage-only chunk by ``finish()``. Exceptions raise ``UpstreamError``.
    """

    def __init__(self, model: str) -> None:
        self.usage: dict[str, Any] | None = None
        self.done = False
        self._model = model
        self._id = parts.stable_id("chatcmpl-", time.time_ns(), id(self))
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}
        self._tool_args_seen: set[int] = set()

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        if event == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if not isinstance(use, dict):
                return []
            index = self._tool_index[data.get("contentBlockIndex", 0)] = len(self._tool_index)
            call = {"index": index, "id": use.get("toolUseId"), "type": "function",
                    "function": {"name": use.get("name"), "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if event == "contentBlockDelta":
            return self._delta(data.get("contentBlockIndex", 0), data.get("delta") or {})
        if event == "contentBlockStop":
            block = data.get("contentBlockIndex", 0)
            if block in self._tool_index and block not in self._tool_args_seen:
                # A tool called without arguments streams none, but "" is not JSON.
                call = {"index": self._tool_index[block], "function": {"arguments": "{}"}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if event == "messageStop":
            self.done = True
            return [self._chunk({}, FINISH_REASONS.get(data.get("stopReason") or "", "stop"))]
        if event == "metadata":
            self.usage = usage_to_chat(data.get("usage")) or self.usage
            return []
        if event == "exception":
            raise stream_exception(data)
        return []

    def _delta(self, block: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(delta.get("text"), str):
            return [self._chunk({"content": delta["text"]})]
        use = delta.get("toolUse")
        if isinstance(use, dict) and use.get("input") and block in self._tool_index:
            self._tool_args_seen.add(block)
            call = {"index": self._tool_index[block], "function": {"arguments": use["input"]}}
            return [self._chunk({"tool_calls": [call]})]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("text"), str):
            return [self._chunk({"reasoning_content": reasoning["text"]})]
        return []

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


# Exception name (header or stream event, any case) -> (HTTP status, OpenAI error type).
EXCEPTIONS: dict[str, tuple[int, str]] = {
    "validationexception": (400, "invalid_request_error"),
    "accessdeniedexception": (403, "permission_error"),
    "unrecognizedclientexception": (401, "authentication_error"),
    "invalidsignatureexception": (401, "authentication_error"),
    "expiredtokenexception": (401, "authentication_error"),
    "resourcenotfoundexception": (404, "not_found_error"),
    "throttlingexception": (429, "rate_limit_error"),
    "servicequotaexceededexception": (429, "rate_limit_error"),
    "modeltimeoutexception": (408, "timeout_error"),
    "modelnotreadyexception": (429, "api_error"),
    "modelerrorexception": (424, "api_error"),
    "modelstreamerrorexception": (424, "api_error"),
    "internalserverexception": (500, "api_error"),
    "serviceunavailableexception": (503, "api_error"),
}


def stream_exception(data: dict[str, Any]) -> UpstreamError:
    name = str(data.get("type") or "error")
    _, kind = EXCEPTIONS.get(name.lower(), (502, "api_error"))
    return UpstreamError(str(data.get("message") or name), provider="bedrock", type=kind, code=name)


# --- InvokeModel embeddings (Titan, Cohere) -------------------------------------------------


def embeddings_request(data: dict[str, Any], model: str, options: dict[str, Any]) -> dict[str, Any]:
    texts = parts.embedding_inputs(data.get("input"), "bedrock")
    if "titan-embed-text" in model:
        if len(texts) != 1:
            raise UnsupportedParameter(
                "Titan text embeddings take one input per request; send one string", param="input"
            )
        body: dict[str, Any] = {"inputText": texts[0]}
        if data.get("dimensions") is not None:
            body["dimensions"] = data["dimensions"]
        if "v1" not in model:
            body["normalize"] = True
        return body
    if "cohere.embed" in model:
        body = {
            "texts": texts,
            "input_type": options.get("embed_input_type") or "search_document",
            "embedding_types": ["float"],
        }
        if data.get("dimensions") is not None:
            body["output_dimension"] = data["dimensions"]
        return body
    raise UnsupportedParameter(
        f"bedrock embeddings support Titan text and Cohere embed models, not {model!r}", param="model"
    )


def embeddings_response(payload: dict[str, Any], model: str = "") -> dict[str, Any]:
    if isinstance(payload.get("embedding"), list):  # Titan
        tokens = payload.get("inputTextTokenCount")
        return parts.embeddings_response(
            [payload["embedding"]], model, int(tokens) if tokens is not None else None
        )
    embeddings = payload.get("embeddings")
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    return parts.embeddings_response([list(v) for v in vectors or ()], model)
