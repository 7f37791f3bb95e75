"""Request validation: only what Lockgate reads or a provider would choke on, with the bad field named.

Everything else in the body is the provider's business and passes through.
Checks are plain isinstance tests: cheap enough for every request.
"""

from __future__ import annotations

from typing import Any

from lockgate.errors import BadRequest

_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMBER = (int, float)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _type_error(param: str, expected: str) -> BadRequest:
    return BadRequest(f"Invalid type for '{param}': expected {expected}.", param=param, code="invalid_type")


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_type")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise BadRequest(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str) or not model.strip():
        raise _type_error("model", "a non-empty string")
    return model


def _optional(body: dict[str, Any], checks: dict[str, tuple[Any, str]]) -> None:
    for param, (check, expected) in checks.items():
        value = body.get(param)
        if value is not None and not check(value):
            raise _type_error(param, expected)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _number_between(low: float, high: float) -> Any:
    return lambda v: _is_number(v) and low <= v <= high


def _stop(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(s, str) for s in value))


_COMMON = {
    "stream": (lambda v: isinstance(v, bool), "a boolean"),
    "n": (lambda v: _is_int(v) and 1 <= v <= 128, "an integer between 1 and 128"),
    "max_tokens": (_positive_int, "a positive integer"),
    "temperature": (_number_between(0, 2), "a number between 0 and 2"),
    "top_p": (_number_between(0, 1), "a number between 0 and 1"),
    "stop": (_stop, "a string or an array of strings"),
    "stream_options": (lambda v: isinstance(v, dict), "an object"),
    "user": (lambda v: isinstance(v, str), "a string"),
}

_CHAT = {
    **_COMMON,
    "max_completion_tokens": (_positive_int, "a positive integer"),
    "tools": (lambda v: isinstance(v, list) and all(isinstance(t, dict) for t in v), "an array of objects"),
    "tool_choice": (lambda v: isinstance(v, (str, dict)), "a string or an object"),
    "response_format": (
        lambda v: isinstance(v, dict) and isinstance(v.get("type"), str),
        "an object with a 'type'",
    ),
    "logprobs": (lambda v: isinstance(v, bool), "a boolean"),
    "top_logprobs": (lambda v: _is_int(v) and 0 <= v <= 20, "an integer between 0 and 20"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "a boolean"),
}


def validate_chat(body: Any) -> dict[str, Any]:
    body = _require_object(body)
    _model(body)
    messages = body.get("messages")
    if messages is None:
        raise BadRequest(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise _type_error("messages", "a non-empty array of message objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _type_error(f"messages[{i}]", "an object")
        role = message.get("role")
        if role not in _CHAT_ROLES:
            raise BadRequest(
                f"Invalid value for 'messages[{i}].role': expected one of {', '.join(sorted(_CHAT_ROLES))}.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _type_error(f"messages[{i}].content", "a string or an array of content parts")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _type_error(f"messages[{i}].content[{j}]", "an object with a 'type'")
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not (
            isinstance(tool_calls, list) and all(isinstance(c, dict) for c in tool_calls)
        ):
            raise _type_error(f"messages[{i}].tool_calls", "an array of objects")
    _optional(body, _CHAT)
    return body


def _token_input(value: Any) -> bool:
    """A string, strings, token ids, or lists of token ids (the OpenAI prompt/input forms)."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(v, str) for v in value) or all(_is_int(v) for v in value):
        return True
    return all(isinstance(v, list) and v and all(_is_int(t) for t in v) for v in value)


def validate_completions(body: Any) -> dict[str, Any]:
    body = _require_object(body)
    _model(body)
    if "prompt" not in body:
        raise BadRequest(
            "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
        )
    if not _token_input(body["prompt"]):
        raise _type_error("prompt", "a string, an array of strings, or an array of token arrays")
    _optional(body, {**_COMMON, "echo": (lambda v: isinstance(v, bool), "a boolean")})
    return body


def validate_embeddings(body: Any) -> dict[str, Any]:
    body = _require_object(body)
    _model(body)
    if "input" not in body:
        raise BadRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if not _token_input(body["input"]):
        raise _type_error("input", "a non-empty string, an array of strings, or an array of token arrays")
    _optional(
        body,
        {
            "encoding_format": (lambda v: v in ("float", "base64"), "'float' or 'base64'"),
            "dimensions": (_positive_int, "a positive integer"),
            "user": (lambda v: isinstance(v, str), "a string"),
        },
    )
    return body


def validate_messages(body: Any) -> dict[str, Any]:
    """Anthropic Messages: the fields Anthropic itself requires."""
    body = _require_object(body)
    _model(body)
    if "max_tokens" not in body:
        raise BadRequest(
            "Missing required parameter: 'max_tokens'.", param="max_tokens", code="missing_required_parameter"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _type_error("messages", "a non-empty array of message objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(
                f"Invalid value for 'messages[{i}]': expected an object with role 'user' or 'assistant'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise _type_error(f"messages[{i}].content", "a string or an array of content blocks")
        if isinstance(content, list) and not all(
            isinstance(b, dict) and isinstance(b.get("type"), str) for b in content
        ):
            raise _type_error(f"messages[{i}].content", "an array of objects with a 'type'")
    _optional(
        body,
        {
            "max_tokens": (_positive_int, "a positive integer"),
            "stream": (lambda v: isinstance(v, bool), "a boolean"),
            "system": (lambda v: isinstance(v, (str, list)), "a string or an array of text blocks"),
            "temperature": (_number_between(0, 1), "a number between 0 and 1"),
            "top_p": (_number_between(0, 1), "a number between 0 and 1"),
            "stop_sequences": (
                lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
                "an array of strings",
            ),
            "tools": (
                lambda v: isinstance(v, list) and all(isinstance(t, dict) for t in v),
                "an array of objects",
            ),
            "tool_choice": (lambda v: isinstance(v, dict), "an object"),
            "metadata": (lambda v: isinstance(v, dict), "an object"),
        },
    )
    return body
