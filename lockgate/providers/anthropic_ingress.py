"""Anthropic Messages requests -> canonical chat, and canonical responses -> Anthropic.

This is the ingress half of the Anthropic dialect: clients speaking the Messages API to
Lockgate's ``/v1/messages`` while the route targets any provider. (Anthropic-dialect
targets never come through here: their bytes are forwarded untouched.) The rules are
listed in ``lockgate.providers.anthropic``. Pure functions: no I/O, inputs never mutated.
"""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.errors import BadRequest, UnsupportedParameter
from lockgate.providers.anthropic_stream import message_id
from lockgate.providers.anthropic_upstream import STOP_REASONS, dumps, usage_from_chat

# Messages parameters handled below; any other key is dropped (and reported when asked).
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "output_config",
    }
)
TOOL_ERROR_PREFIX = "Error: "


def messages_request_to_chat(data: Any, *, dropped: list[str] | None = None) -> dict[str, Any]:
    """An Anthropic Messages request -> a canonical chat request.

    Names of parameters with no chat equivalent are appended to ``dropped`` when given.
    """
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string", param="model")
    max_tokens = data.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("'max_tokens' is required and must be a positive integer", param="max_tokens")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("'messages' is required and must be a non-empty array", param="messages")

    messages: list[dict[str, Any]] = []
    system = data.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _system(system)})
    for i, msg in enumerate(raw_messages):
        messages.extend(_message(msg, f"messages[{i}]"))

    out: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    for key in ("temperature", "top_p"):
        value = data.get(key)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise BadRequest(f"'{key}' must be a number", param=key)
            out[key] = value
    stop = data.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise BadRequest("'stop_sequences' must be an array of strings", param="stop_sequences")
        if stop:
            out["stop"] = stop
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise BadRequest("'metadata' must be an object", param="metadata")
        if isinstance(metadata.get("user_id"), str):
            out["user"] = metadata["user_id"]
    _tools(data, out)
    _output_config(data.get("output_config"), out, dropped)
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # usage is needed to settle the request
    if dropped is not None:
        dropped.extend(key for key, value in data.items() if key not in _HANDLED and value is not None)
    return out


def _system(system: Any) -> str | list[dict[str, Any]]:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise BadRequest("'system' must be a string or an array of text blocks", param="system")
    parts = []
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise BadRequest("'system' blocks must be text blocks", param=f"system[{j}]")
        parts.append(_text_part(block, f"system[{j}]"))
    return parts


def _text_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    text = block.get("text")
    if not isinstance(text, str):
        raise BadRequest("text blocks need a string 'text'", param=f"{param}.text")
    part: dict[str, Any] = {"type": "text", "text": text}
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]  # kept so an Anthropic target can still cache
    return part


def _message(msg: Any, param: str) -> list[dict[str, Any]]:
    if not isinstance(msg, dict):
        raise BadRequest("messages must be objects", param=param)
    role = msg.get("role")
    content = msg.get("content")
    if role not in ("user", "assistant"):
        raise BadRequest("'role' must be 'user' or 'assistant'", param=f"{param}.role")
    if not isinstance(content, str | list):
        raise BadRequest("'content' must be a string or an array of blocks", param=f"{param}.content")
    if role == "assistant":
        return [_assistant(content, f"{param}.content")]
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    # Tool results become role "tool" messages, placed before the rest of the user turn.
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        block_param = f"{param}.content[{j}]"
        if isinstance(block, dict) and block.get("type") == "tool_result":
            tool_messages.append(_tool_result(block, block_param))
        else:
            parts.append(_user_part(block, block_param))
    return tool_messages + ([{"role": "user", "content": parts}] if parts else [])


def _user_part(block: Any, param: str) -> dict[str, Any]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return _text_part(block, param)
    if kind == "image":
        part: dict[str, Any] = {"type": "image_url", "image_url": {"url": _image_url(block, param)}}
        if "cache_control" in block:
            part["cache_control"] = block["cache_control"]
        return part
    if kind == "document":
        return _document(block, param)
    if kind is None:
        raise BadRequest("content blocks must be objects with a 'type'", param=param)
    raise UnsupportedParameter(f"'{kind}' blocks can only be sent to Anthropic models", param=param)


def _image_url(block: dict[str, Any], param: str) -> str:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return str(source["url"])
    raise UnsupportedParameter("image sources must be base64 or url", param=f"{param}.source")


def _document(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        file: dict[str, Any] = {"file_data": f"data:application/pdf;base64,{source.get('data')}"}
        if isinstance(block.get("title"), str):
            file["filename"] = block["title"]
        return {"type": "file", "file": file}
    raise UnsupportedParameter(
        "only plain-text and base64 PDF documents can be sent to non-Anthropic models",
        param=f"{param}.source",
    )


def _tool_result(block: dict[str, Any], param: str) -> dict[str, Any]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str):
        raise BadRequest("tool_result blocks need a 'tool_use_id'", param=f"{param}.tool_use_id")
    content = block.get("content")
    result: str | list[dict[str, Any]]
    if content is None or isinstance(content, str):
        result = content or ""
    elif isinstance(content, list):
        result = []
        for k, item in enumerate(content):
            if not isinstance(item, dict) or item.get("type") != "text":
                # Chat tool messages carry text only.
                raise UnsupportedParameter(
                    "tool results sent to non-Anthropic models may only contain text",
                    param=f"{param}.content[{k}]",
                )
            result.append(_text_part(item, f"{param}.content[{k}]"))
    else:
        raise BadRequest("tool_result content must be a string or an array", param=f"{param}.content")
    if block.get("is_error"):
        # Chat has no error flag for tool results: say it in the text the model reads.
        texts = [result] if isinstance(result, str) else [part["text"] for part in result]
        result = TOOL_ERROR_PREFIX + "".join(texts)
    return {"role": "tool", "tool_call_id": tool_use_id, "content": result}


def _assistant(content: str | list[Any], param: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text_part(block, f"{param}[{j}]")["text"])
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise BadRequest("tool_use blocks need an 'id' and a 'name'", param=f"{param}[{j}]")
            call = {"name": block["name"], "arguments": dumps(block.get("input") or {})}
            tool_calls.append({"id": block["id"], "type": "function", "function": call})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed for Anthropic only; other providers cannot use them
        elif kind is None:
            raise BadRequest("content blocks must be objects with a 'type'", param=f"{param}[{j}]")
        else:
            raise UnsupportedParameter(
                f"'{kind}' blocks can only be sent to Anthropic models", param=f"{param}[{j}]"
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tools(data: dict[str, Any], out: dict[str, Any]) -> None:
    tools = data.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("'tools' must be an array", param="tools")
        functions = []
        for i, tool in enumerate(tools):
            param = f"tools[{i}]"
            if not isinstance(tool, dict):
                raise BadRequest("tools must be objects", param=param)
            if tool.get("type") not in (None, "custom"):
                raise UnsupportedParameter(
                    f"server tool '{tool.get('type')}' can only be used with Anthropic models", param=param
                )
            if not isinstance(tool.get("name"), str):
                raise BadRequest("tools need a 'name'", param=f"{param}.name")
            function: dict[str, Any] = {"name": tool["name"]}
            if tool.get("description"):
                function["description"] = tool["description"]
            function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
            functions.append({"type": "function", "function": function})
        if functions:
            out["tools"] = functions
    choice = data.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "any", "none"):
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    elif kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise BadRequest("invalid tool_choice", param="tool_choice")
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False


def _output_config(config: Any, out: dict[str, Any], dropped: list[str] | None) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise BadRequest("'output_config' must be an object", param="output_config")
    fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        # Non-strict: OpenAI's strict mode accepts only a subset of JSON Schema.
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"]},
        }
    elif fmt is not None:
        raise BadRequest("output_config.format must be a json_schema format", param="output_config.format")
    if dropped is not None and config.get("effort") is not None:
        dropped.append("output_config.effort")


# --- responses and errors ----------------------------------------------------------------


def chat_response_to_messages(chat: dict[str, Any], *, model: str) -> dict[str, Any]:
    """A canonical ``chat.completion`` -> an Anthropic ``message``."""
    choices = chat.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content") or message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None
        # Messages clients need an object; keep what the model produced rather than lose it.
        tool_input = parsed if isinstance(parsed, dict) else {"_raw": arguments}
        content.append(
            {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": tool_input}
        )
    reason = choice.get("finish_reason")
    return {
        "id": message_id(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(reason, "end_turn") if reason else "end_turn",
        "stop_sequence": None,
        "usage": usage_from_chat(chat.get("usage") or {}),
    }


_STATUS_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_to_anthropic(status: int, error: dict[str, Any]) -> dict[str, Any]:
    """Lockgate's OpenAI-shaped error envelope -> Anthropic's, typed by HTTP status."""
    inner = error.get("error") if isinstance(error.get("error"), dict) else error
    message = inner.get("message") if isinstance(inner, dict) else None
    # Anthropic documents invalid_request_error for 4xx statuses without their own type.
    kind = _STATUS_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message if isinstance(message, str) else ""}}
