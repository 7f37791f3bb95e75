"""Canonical chat and embeddings requests -> Gemini ``generateContent`` / embedding bodies.

The rules are listed in ``lockgate.providers.gemini``. Pure functions: no I/O, inputs
never mutated.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from lockgate.errors import BadRequest, UnsupportedParameter
from lockgate.providers import parts
from lockgate.providers.parts import array

# Keys of Gemini's ``Schema`` object (an OpenAPI 3.0 subset); other JSON Schema keywords
# ($schema, additionalProperties, strict, $defs ...) are removed, as Gemini rejects them.
_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
    }
)  # fmt: skip
# reasoning_effort -> thinkingBudget (Gemini 2.5) or thinkingLevel (Gemini 3).
THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
THINKING_LEVELS = {"minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high"}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# Separates a call id from the Gemini thought signature carried inside it (see gemini.py).
SIGNATURE_MARK = "__ts_"
_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
        "stop", "stream", "stream_options", "n", "seed", "presence_penalty", "frequency_penalty",
        "tools", "tool_choice", "response_format", "reasoning_effort", "modalities",
    }
)  # fmt: skip


def chat_to_gemini(
    data: dict[str, Any], options: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A canonical chat request -> (generateContent body, names of dropped parameters)."""
    options = options or {}
    parts.refuse_legacy_functions(data, "gemini")
    modalities = data.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise UnsupportedParameter("gemini chat answers with text only", param="modalities")
    # parallel_tool_calls: false has no Gemini switch, so it is among the dropped.
    dropped = parts.dropped_params(data, _HANDLED)
    system, contents = _contents(data.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": system}]}
    tools = data.get("tools")
    if tools:
        declarations = [_declaration(fn) for fn in parts.function_tools(tools, "gemini")]
        out["tools"] = [{"functionDeclarations": declarations}]
        choice = parts.tool_choice(data.get("tool_choice"))
        if choice is not None:
            mode, names = choice
            config: dict[str, Any] = {"mode": _TOOL_MODES[mode]}
            if names:
                config["allowedFunctionNames"] = names
            out["toolConfig"] = {"functionCallingConfig": config}
    generation = _generation_config(data, str(data.get("model") or ""))
    if generation:
        out["generationConfig"] = generation
    if isinstance(options.get("safety_settings"), list):
        out["safetySettings"] = options["safety_settings"]
    return out, dropped


def _generation_config(data: dict[str, Any], model: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, native in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if data.get(key) is not None:
            config[native] = data[key]
    limit = parts.max_tokens(data)
    if limit is not None:
        config["maxOutputTokens"] = limit
    stops = parts.stop_sequences(data)
    if stops:
        config["stopSequences"] = stops
    n = data.get("n")
    if n is not None and n != 1:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise BadRequest("'n' must be a positive integer", param="n")
        config["candidateCount"] = n
    fmt = data.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object", param="response_format")
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = gemini_schema(schema)
    elif fmt is not None and kind != "text":
        raise BadRequest(f"unsupported response_format type {kind!r}", param="response_format")
    effort = data.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGETS:
            raise BadRequest(f"unknown reasoning_effort {effort!r}", param="reasoning_effort")
        if model.startswith(("gemini-3", "models/gemini-3")):
            config["thinkingConfig"] = {"thinkingLevel": THINKING_LEVELS.get(effort, "low")}
        else:
            config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    return config


def gemini_schema(schema: Any) -> Any:
    """A JSON Schema -> Gemini's Schema subset: unknown keywords removed, recursively."""
    if isinstance(schema, list):
        return [gemini_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = gemini_schema(value)
        elif key == "type" and isinstance(value, list):
            # ["string", "null"] -> string + nullable: Gemini types are single names.
            types = [t for t in value if t != "null"]
            out[key] = types[0] if len(types) == 1 else value
            if "null" in value:
                out["nullable"] = True
        else:
            out[key] = value
    return out


def _declaration(function: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    params = function.get("parameters")
    # Gemini rejects an OBJECT with no properties: a parameterless function declares none.
    if isinstance(params, dict) and params.get("properties"):
        out["parameters"] = gemini_schema(params)
    return out


# --- messages -> contents -------------------------------------------------------------------


def _contents(messages: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    names = parts.tool_names_by_id(messages)
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"'{param}' must be an object", param=param)
        role = msg.get("role")
        if role in ("system", "developer"):
            text = parts.text_of(msg.get("content"), f"{param}.content")
            if text:
                system.append(text)
        elif role == "user":
            _append(turns, "user", _user_parts(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            model_parts = _assistant_parts(msg, param)
            if model_parts:
                _append(turns, "model", model_parts)
        elif role == "tool":
            _append(turns, "user", [_function_response(msg, names, param)])
        elif role == "function":
            raise UnsupportedParameter("legacy 'function' messages are not supported; use tools", param=param)
        else:
            raise BadRequest(f"unknown role {role!r}", param=f"{param}.role")
    if not turns:
        raise BadRequest("at least one user or assistant message is required", param="messages")
    return "\n\n".join(system), turns


def _append(turns: list[dict[str, Any]], role: str, new: list[dict[str, Any]]) -> None:
    # Parallel function responses must share one turn; Gemini also prefers alternating roles.
    if turns and turns[-1]["role"] == role:
        turns[-1]["parts"].extend(new)
    else:
        turns.append({"role": role, "parts": new})


def _user_parts(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    out = []
    for j, part in enumerate(array(content, param)):
        out.append(_user_part(part, f"{param}[{j}]"))
    return out


def _user_part(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise BadRequest("text parts need a string 'text'", param=f"{param}.text")
        return {"text": part["text"]}
    if kind == "image_url":
        url = parts.image_url_of(part, param)
        if url.startswith("data:"):
            media_type, data = parts.parse_data_url(url, f"{param}.image_url.url")
            return {"inlineData": {"mimeType": media_type, "data": data}}
        if url.startswith(("https://", "http://", "gs://")):
            media_type = parts.media_type_from_url(url)
            if media_type is None:
                raise UnsupportedParameter(
                    "gemini needs the media type of a URL image: use a URL ending in a known image "
                    "extension (.png, .jpg, .webp ...) or a base64 data URL",
                    param=f"{param}.image_url.url",
                )
            return {"fileData": {"mimeType": media_type, "fileUri": url}}
        raise BadRequest(
            "image URLs must be http(s), gs:// or base64 data URLs", param=f"{param}.image_url.url"
        )
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        if not isinstance(audio.get("data"), str) or audio.get("format") not in ("wav", "mp3"):
            raise BadRequest("input_audio needs base64 'data' and a 'format' of wav or mp3", param=param)
        return {"inlineData": {"mimeType": f"audio/{audio['format']}", "data": audio["data"]}}
    if kind == "file":
        file = part.get("file") or {}
        if not isinstance(file.get("file_data"), str):
            raise UnsupportedParameter(
                "gemini needs inline 'file_data' (file ids are not portable)", param=param
            )
        media_type, data = parts.parse_data_url(file["file_data"], f"{param}.file.file_data")
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if kind is None:
        raise BadRequest("content parts must be objects with a 'type'", param=param)
    raise UnsupportedParameter(f"gemini does not support '{kind}' content parts", param=param)


def _assistant_parts(msg: dict[str, Any], param: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            out.append({"text": content})
    elif content is not None:
        for j, part in enumerate(array(content, f"{param}.content")):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                out.append({"text": part["text"]})
            elif isinstance(part, dict) and part.get("type") == "refusal":
                out.append({"text": str(part.get("refusal", ""))})
            else:
                raise BadRequest("assistant content parts must be text", param=f"{param}.content[{j}]")
    for j, call in enumerate(msg.get("tool_calls") or ()):
        call_id, name, args = parts.tool_arguments(call, f"{param}.tool_calls[{j}]")
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        signature = signature_from_id(call_id)
        if signature is not None:
            part["thoughtSignature"] = signature  # Gemini 3 requires it echoed back
        out.append(part)
    return out


def _function_response(msg: dict[str, Any], names: dict[str, str], param: str) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str):
        raise BadRequest("tool messages need a 'tool_call_id'", param=f"{param}.tool_call_id")
    name = names.get(call_id)
    if name is None:
        raise BadRequest(
            "gemini needs the function name of a tool result: no assistant tool call has this id",
            param=f"{param}.tool_call_id",
        )
    text = parts.text_of(msg.get("content"), f"{param}.content")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    # functionResponse.response is a JSON object: objects pass, anything else is wrapped.
    response = value if isinstance(value, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def signature_from_id(call_id: str) -> str | None:
    """The thought signature carried in a tool call id (url-safe base64 back to standard)."""
    _, mark, encoded = call_id.partition(SIGNATURE_MARK)
    if not mark or not encoded:
        return None
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    return base64.b64encode(raw).decode()


def id_with_signature(call_id: str, signature: str | None) -> str:
    if not signature:
        return call_id
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return call_id  # not base64: cannot be carried safely, Gemini re-derives it
    return call_id + SIGNATURE_MARK + base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- embeddings -----------------------------------------------------------------------------


def embeddings_to_gemini(data: dict[str, Any], model: str, options: dict[str, Any]) -> dict[str, Any]:
    """``/v1/embeddings`` -> a ``batchEmbedContents`` body (AI Studio)."""
    texts = parts.embedding_inputs(data.get("input"), "gemini")
    base: dict[str, Any] = {"model": f"models/{model}"}
    if data.get("dimensions") is not None:
        base["outputDimensionality"] = data["dimensions"]
    if options.get("embedding_task_type"):
        base["taskType"] = options["embedding_task_type"]
    return {"requests": [{**base, "content": {"parts": [{"text": t}]}} for t in texts]}


def embeddings_to_vertex(data: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``/v1/embeddings`` -> a Vertex ``:predict`` body."""
    texts = parts.embedding_inputs(data.get("input"), "vertex")
    task = options.get("embedding_task_type")
    instances = [{"content": t, **({"task_type": task} if task else {})} for t in texts]
    out: dict[str, Any] = {"instances": instances}
    if data.get("dimensions") is not None:
        out["parameters"] = {"outputDimensionality": data["dimensions"]}
    return out
