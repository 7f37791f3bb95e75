"""Canonical chat -> Anthropic Messages requests, and Anthropic responses -> canonical chat.

This is the upstream half of the Anthropic dialect (Lockgate calling Anthropic on behalf
of an OpenAI-format client). The rules it applies are listed in ``lockgate.providers.anthropic``;
the shared vocabulary (usage, stop reasons, error types) lives here too so the stream and
ingress modules can import it without a cycle. Pure functions: no I/O, inputs never mutated.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from lockgate.errors import BadRequest, UnsupportedParameter

# --- shared vocabulary -------------------------------------------------------------------

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Anthropic error type -> the OpenAI error type a chat client expects.
ERROR_TYPES: dict[str, str] = {
    "invalid_request_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "billing_error": "insufficient_quota",
    "timeout_error": "timeout_error",
    "api_error": "api_error",
    "overloaded_error": "api_error",
}

REASONING_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
MIN_THINKING_BUDGET = 1024  # Anthropic rejects smaller thinking budgets.

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no Markdown code fences."
)
JSON_SCHEMA_INSTRUCTION = (
    "Respond with a single valid JSON value that conforms to the JSON Schema below and nothing else: "
    "no prose, no Markdown code fences.\nJSON Schema:\n"
)


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def usage_to_chat(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> canonical usage. Anthropic's ``input_tokens`` excludes cached tokens."""
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_creation = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cache_read + cache_creation
    completion = usage.get("output_tokens") or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_creation_tokens": cache_creation},
    }
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and details.get("thinking_tokens"):
        out["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    return out


def usage_from_chat(usage: dict[str, Any]) -> dict[str, Any]:
    """Canonical usage -> Anthropic usage (``input_tokens`` without the cached part)."""
    details = usage.get("prompt_tokens_details") or {}
    cache_read = details.get("cached_tokens") or 0
    cache_creation = details.get("cache_creation_tokens") or 0
    prompt = usage.get("prompt_tokens") or 0
    return {
        "input_tokens": max(prompt - cache_read - cache_creation, 0),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }


# --- request: canonical chat -> Anthropic Messages ----------------------------------------

# OpenAI parameters Anthropic cannot express. Each is dropped and reported, unless it is set
# to OpenAI's own default (then it changes nothing and is consumed silently).
_NO_DEFAULT = object()
_DROPPED: dict[str, Any] = {
    "logprobs": False,
    "top_logprobs": _NO_DEFAULT,
    "logit_bias": {},
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "seed": _NO_DEFAULT,
    "service_tier": _NO_DEFAULT,
    "store": False,
    "metadata": {},
}
# Keys handled explicitly below; anything not here or in _DROPPED is dropped and reported.
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "stream",
        "stream_options",
        "n",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "thinking",
    }
)


def chat_to_messages_request(
    data: dict[str, Any],
    *,
    default_max_tokens: int = 4096,
    native_structured_outputs: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """A canonical chat request -> (Anthropic Messages body, names of dropped parameters)."""
    if data.get("functions") is not None or data.get("function_call") is not None:
        raise UnsupportedParameter(
            "anthropic does not support the legacy 'functions' parameter; use 'tools'", param="functions"
        )
    n = data.get("n")
    if n is not None and n != 1:
        raise UnsupportedParameter("anthropic does not support n > 1", param="n")

    dropped: list[str] = []
    for key, value in data.items():
        if value is None or key in _HANDLED:
            continue
        default = _DROPPED.get(key, _NO_DEFAULT)
        if default is _NO_DEFAULT or value != default:
            dropped.append(key)

    system, messages = _convert_messages(data.get("messages"))
    out: dict[str, Any] = {"model": data.get("model")}
    max_tokens = _max_tokens(data, default_max_tokens)

    response_format = data.get("response_format")
    if response_format is not None:
        system, output_format = _response_format(response_format, system, native_structured_outputs)
        if output_format is not None:
            out["output_config"] = {"format": output_format}
    if system:
        out["system"] = system
    out["messages"] = messages
    out["max_tokens"] = max_tokens

    temperature = data.get("temperature")
    if temperature is not None:
        # OpenAI allows 0..2, Anthropic 0..1: clamp rather than rescale so common values keep meaning.
        out["temperature"] = min(temperature, 1.0) if isinstance(temperature, int | float) else temperature
    for key in ("top_p", "top_k"):
        if data.get(key) is not None:
            out[key] = data[key]
    stop = data.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    if isinstance(data.get("user"), str):
        out["metadata"] = {"user_id": data["user"]}
    if data.get("stream"):
        out["stream"] = True

    tools = data.get("tools")
    if tools:
        out["tools"] = [_tool(tool, i) for i, tool in enumerate(_array(tools, "tools"))]
        tool_choice = _tool_choice(data.get("tool_choice"))
        if data.get("parallel_tool_calls") is False:
            tool_choice = tool_choice or {"type": "auto"}
            if tool_choice["type"] != "none":
                tool_choice["disable_parallel_tool_use"] = True
        if tool_choice is not None:
            out["tool_choice"] = tool_choice

    thinking = data.get("thinking")
    if isinstance(thinking, dict):
        out["thinking"] = thinking  # Anthropic's own parameter, sent by clients that know the target.
    elif data.get("reasoning_effort") is not None:
        budget = _thinking_budget(data["reasoning_effort"], max_tokens)
        if budget is None:
            if data["reasoning_effort"] not in ("none", "minimal"):
                dropped.append("reasoning_effort")
        else:
            out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return out, dropped


def _max_tokens(data: dict[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BadRequest(f"'{key}' must be a positive integer", param=key)
        return value
    return default


def _thinking_budget(effort: Any, max_tokens: int) -> int | None:
    if effort in ("none", "minimal"):
        return None
    if effort not in REASONING_BUDGETS:
        raise BadRequest(f"unknown reasoning_effort {effort!r}", param="reasoning_effort")
    # The budget must stay below max_tokens; below Anthropic's minimum, thinking cannot be enabled.
    budget = min(REASONING_BUDGETS[effort], max_tokens - 1)
    return budget if budget >= MIN_THINKING_BUDGET else None


def _response_format(
    fmt: Any, system: str | list[dict[str, Any]] | None, native: bool
) -> tuple[str | list[dict[str, Any]] | None, dict[str, Any] | None]:
    """Returns the (possibly extended) system prompt and a native ``output_config.format``."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return system, None
    if kind == "json_object":
        return _append_system(system, JSON_OBJECT_INSTRUCTION), None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object", param="response_format")
        if native:
            return system, {"type": "json_schema", "schema": schema}
        return _append_system(system, JSON_SCHEMA_INSTRUCTION + dumps(schema)), None
    raise BadRequest(f"unsupported response_format type {kind!r}", param="response_format")


def _append_system(system: str | list[dict[str, Any]] | None, text: str) -> str | list[dict[str, Any]]:
    if not system:
        return text
    if isinstance(system, str):
        return f"{system}\n\n{text}"
    return [*system, {"type": "text", "text": text}]


def _array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"'{param}' must be an array", param=param)
    return value


def _convert_messages(
    messages: Any,
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    system_chunks: list[str | list[dict[str, Any]]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"'{param}' must be an object", param=param)
        role = msg.get("role")
        if role in ("system", "developer"):
            # Anthropic has one top-level system prompt: every system message is hoisted into it.
            chunk = _system_content(msg.get("content"), f"{param}.content")
            if chunk:
                system_chunks.append(chunk)
        elif role == "user":
            _append_turn(turns, "user", _user_content(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            content = _assistant_content(msg, param)
            if content:
                _append_turn(turns, "assistant", content)
        elif role == "tool":
            _append_turn(turns, "user", [_tool_result(msg, param)])
        elif role == "function":
            raise UnsupportedParameter(
                "anthropic does not support legacy 'function' messages; use tools", param=f"{param}.role"
            )
        else:
            raise BadRequest(f"unknown role {role!r}", param=f"{param}.role")
    return _join_system(system_chunks), turns


def _append_turn(turns: list[dict[str, Any]], role: str, content: str | list[dict[str, Any]]) -> None:
    # Anthropic requires alternating roles, so consecutive same-role messages become one turn.
    if not turns or turns[-1]["role"] != role:
        turns.append({"role": role, "content": content})
        return
    merged = _blocks(turns[-1]["content"]) + _blocks(content)
    if role == "user":
        # tool_result blocks must lead the user turn that answers a tool_use; the sort is stable.
        merged.sort(key=lambda block: block.get("type") != "tool_result")
    turns[-1]["content"] = merged


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def _join_system(chunks: list[str | list[dict[str, Any]]]) -> str | list[dict[str, Any]] | None:
    if not chunks:
        return None
    if all(isinstance(chunk, str) for chunk in chunks):
        return "\n\n".join(chunk for chunk in chunks if isinstance(chunk, str))
    blocks: list[dict[str, Any]] = []
    for chunk in chunks:
        blocks.extend(_blocks(chunk))
    return blocks


def _system_content(content: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    blocks = []
    for j, part in enumerate(_array(content, param)):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise BadRequest("system messages may only contain text parts", param=f"{param}[{j}]")
        blocks.append(_text_block(part, f"{param}[{j}]"))
    return blocks


def _text_block(part: dict[str, Any], param: str) -> dict[str, Any]:
    text = part.get("text")
    if not isinstance(text, str):
        raise BadRequest("text parts need a string 'text'", param=f"{param}.text")
    block: dict[str, Any] = {"type": "text", "text": text}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]  # Anthropic prompt caching, passed through.
    return block


def _user_content(content: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [_user_part(part, f"{param}[{j}]") for j, part in enumerate(_array(content, param))]


def _user_part(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return _text_block(part, param)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise BadRequest("image_url parts need a string 'url'", param=f"{param}.image_url.url")
        block: dict[str, Any] = {"type": "image", "source": _image_source(url, f"{param}.image_url.url")}
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        return block
    if kind == "file":
        return _file_block(part.get("file"), f"{param}.file")
    if kind is None:
        raise BadRequest("content parts must be objects with a 'type'", param=param)
    raise UnsupportedParameter(f"anthropic does not support '{kind}' content parts", param=param)


def _image_source(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        media_type, data = _parse_data_url(url, param)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise BadRequest("image URLs must be http(s) or base64 data URLs", param=param)


def _parse_data_url(url: str, param: str) -> tuple[str, str]:
    header, sep, data = url[5:].partition(",")
    media_type, *options = header.split(";")
    if not sep or "base64" not in options or not media_type:
        raise BadRequest("data URLs must look like data:<media type>;base64,<data>", param=param)
    return media_type, data


def _file_block(file: Any, param: str) -> dict[str, Any]:
    file_data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(file_data, str):
        raise UnsupportedParameter(
            "anthropic needs inline 'file_data' (file ids are not portable)", param=param
        )
    media_type, data = _parse_data_url(file_data, f"{param}.file_data")
    if media_type != "application/pdf":
        raise UnsupportedParameter(
            f"anthropic does not support {media_type} files", param=f"{param}.file_data"
        )
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def _assistant_content(msg: dict[str, Any], param: str) -> str | list[dict[str, Any]]:
    content = msg.get("content")
    thinking = msg.get("thinking_blocks")
    tool_calls = msg.get("tool_calls")
    if isinstance(content, str) and not tool_calls and not thinking:
        return content
    # Thinking blocks (with their signatures) must precede text and tool_use when echoed back.
    blocks: list[dict[str, Any]] = list(thinking) if isinstance(thinking, list) else []
    if isinstance(content, str):
        blocks.extend(_blocks(content))
    elif content is not None:
        for j, part in enumerate(_array(content, f"{param}.content")):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                blocks.append(_text_block(part, f"{param}.content[{j}]"))
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                blocks.append({"type": "text", "text": part["refusal"]})
            else:
                raise BadRequest("assistant content parts must be text", param=f"{param}.content[{j}]")
    if tool_calls:
        for j, call in enumerate(_array(tool_calls, f"{param}.tool_calls")):
            blocks.append(_tool_use(call, f"{param}.tool_calls[{j}]"))
    return blocks


def _tool_use(call: Any, param: str) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise UnsupportedParameter("anthropic supports only function tool calls", param=param)
    function = call.get("function") or {}
    if not isinstance(call.get("id"), str) or not isinstance(function.get("name"), str):
        raise BadRequest("tool calls need an 'id' and a 'function.name'", param=param)
    arguments = function.get("arguments") or "{}"  # some clients send "" for argument-less tools
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise BadRequest(
            "tool call arguments are not valid JSON", param=f"{param}.function.arguments"
        ) from None
    if not isinstance(parsed, dict):
        raise BadRequest("tool call arguments must be a JSON object", param=f"{param}.function.arguments")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed}


def _tool_result(msg: dict[str, Any], param: str) -> dict[str, Any]:
    tool_call_id = msg.get("tool_call_id")
    if not isinstance(tool_call_id, str):
        raise BadRequest("tool messages need a 'tool_call_id'", param=f"{param}.tool_call_id")
    content = msg.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    if isinstance(content, str):
        block["content"] = content
    elif content is not None:
        param = f"{param}.content"
        block["content"] = [
            _user_part(part, f"{param}[{j}]") for j, part in enumerate(_array(content, param))
        ]
    return block


def _tool(tool: Any, i: int) -> dict[str, Any]:
    param = f"tools[{i}]"
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise UnsupportedParameter("anthropic supports only function tools", param=param)
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest("function tools need a 'function' with a 'name'", param=f"{param}.function")
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(choice, str) and choice in simple:
        return {"type": simple[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str):
            return {"type": "tool", "name": name}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        raise UnsupportedParameter("anthropic does not support allowed_tools", param="tool_choice")
    raise BadRequest("invalid tool_choice", param="tool_choice")


# --- response: Anthropic Message -> canonical chat.completion ----------------------------


def messages_response_to_chat(msg: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic ``message`` -> a canonical ``chat.completion``."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in msg.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": dumps(block.get("input") or {})},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            if kind == "thinking":
                reasoning.append(block.get("thinking", ""))
            thinking_blocks.append(block)
        # Server-tool blocks (server_tool_use, web_search_tool_result, ...) have no chat equivalent.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": msg.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(msg.get("stop_reason")),
                "logprobs": None,
            }
        ],
        "usage": usage_to_chat(msg.get("usage") or {}),
    }
