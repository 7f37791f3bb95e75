"""Reading canonical chat requests: the pieces every non-OpenAI dialect needs.

Gemini, Bedrock and Cohere all take apart the same OpenAI request shapes (messages,
content parts, tool calls, tool choices, embedding inputs) before building their own.
These helpers validate as they read and raise ``BadRequest``/``UnsupportedParameter``
with the JSON path in ``param``, so every dialect reports a bad request the same way.
Pure functions; inputs are never mutated.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from lockgate.errors import BadRequest, UnsupportedParameter

# OpenAI defaults: a parameter set to one of these changes nothing and is consumed quietly.
NO_DEFAULT: Any = object()
OPENAI_DEFAULTS: dict[str, Any] = {
    "logprobs": False,
    "logit_bias": {},
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "store": False,
    "metadata": {},
    "parallel_tool_calls": True,
    "n": 1,
    "modalities": ["text"],
}

_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"'{param}' must be an array", param=param)
    return value


def dropped_params(data: Mapping[str, Any], handled: Iterable[str]) -> list[str]:
    """Keys a dialect does not handle, unless null or equal to OpenAI's default (in request order)."""
    known = set(handled)
    out = []
    for key, value in data.items():
        if value is None or key in known:
            continue
        default = OPENAI_DEFAULTS.get(key, NO_DEFAULT)
        if default is NO_DEFAULT or value != default:
            out.append(key)
    return out


def refuse_n(data: Mapping[str, Any], provider: str) -> None:
    n = data.get("n")
    if n is not None and n != 1:
        raise UnsupportedParameter(f"{provider} does not support n > 1", param="n")


def refuse_legacy_functions(data: Mapping[str, Any], provider: str) -> None:
    if data.get("functions") is not None or data.get("function_call") is not None:
        raise UnsupportedParameter(
            f"{provider} does not support the legacy 'functions' parameter; use 'tools'", param="functions"
        )


def max_tokens(data: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BadRequest(f"'{key}' must be a positive integer", param=key)
        return value
    return None


def stop_sequences(data: Mapping[str, Any]) -> list[str] | None:
    stop = data.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and stop:
        return [str(s) for s in stop]
    return None


def text_of(content: Any, param: str) -> str:
    """A system or tool message's content as one string (text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(array(content, param)):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise BadRequest("only text parts are allowed here", param=f"{param}[{j}]")
        texts.append(part["text"])
    return "\n".join(texts)


def parse_data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` -> (media type, base64 data)."""
    header, sep, data = url[5:].partition(",")
    media_type, *options = header.split(";")
    if not url.startswith("data:") or not sep or "base64" not in options or not media_type:
        raise BadRequest("data URLs must look like data:<media type>;base64,<data>", param=param)
    return media_type, data


def media_type_from_url(url: str) -> str | None:
    """The media type a URL's file extension names, for the image and document types models read."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    _, dot, ext = path.rpartition(".")
    return _IMAGE_TYPES.get(ext.lower()) if dot else None


def image_url_of(part: Mapping[str, Any], param: str) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise BadRequest("image_url parts need a string 'url'", param=f"{param}.image_url.url")
    return url


def tool_arguments(call: Any, param: str) -> tuple[str, str, dict[str, Any]]:
    """An assistant tool call -> (id, function name, parsed arguments object)."""
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise UnsupportedParameter("only function tool calls are supported", param=param)
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
    return call["id"], function["name"], parsed


def tool_names_by_id(messages: list[Any]) -> dict[str, str]:
    """tool_call_id -> function name, from every assistant message's tool_calls."""
    names: dict[str, str] = {}
    for msg in messages:
        if isinstance(msg, dict) and msg.get("role") == "assistant":
            for call in msg.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    function = call.get("function") or {}
                    if isinstance(function.get("name"), str):
                        names[call["id"]] = function["name"]
    return names


def function_tools(tools: Any, provider: str) -> list[dict[str, Any]]:
    """``tools`` -> their ``function`` objects (name required); non-function tools refused."""
    out = []
    for i, tool in enumerate(array(tools, "tools")):
        param = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise UnsupportedParameter(f"{provider} supports only function tools", param=param)
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest("function tools need a 'function' with a 'name'", param=f"{param}.function")
        out.append(function)
    return out


def tool_choice(choice: Any) -> tuple[str, list[str] | None] | None:
    """``tool_choice`` -> (mode, allowed function names or None); mode is auto, none or required.

    A named function is ``required`` restricted to that name; ``allowed_tools`` keeps its
    mode and restricts the names.
    """
    if choice is None:
        return None
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        return choice, None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str):
            return "required", [name]
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools") or {}
        mode = spec.get("mode", "auto")
        names = [
            (t.get("function") or {}).get("name")
            for t in spec.get("tools") or ()
            if isinstance(t, dict) and t.get("type", "function") == "function"
        ]
        if mode in ("auto", "required") and names and all(isinstance(n, str) for n in names):
            return mode, names
    raise BadRequest("invalid tool_choice", param="tool_choice")


def embedding_inputs(value: Any, provider: str) -> list[str]:
    """``input`` as a list of strings; token arrays cannot be read by non-OpenAI tokenizers."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise BadRequest("'input' must be a non-empty string or array of strings", param="input")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise UnsupportedParameter(
                f"{provider} embeds text only; token-array inputs are not supported", param=f"input[{i}]"
            )
    return items


def embeddings_response(
    vectors: list[list[float]], model: str, prompt_tokens: int | None = None
) -> dict[str, Any]:
    """Float vectors -> a canonical ``/v1/embeddings`` response (``usage`` only when reported)."""
    out: dict[str, Any] = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
    }
    if prompt_tokens is not None:
        out["usage"] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return out


def encode_base64_embedding(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def stable_id(prefix: str, *parts: object) -> str:
    """A deterministic id (same inputs, same id) for providers that return none."""
    return prefix + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]
