"""OpenAI dialect of the mock provider: chat completions, legacy completions, embeddings, models."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lockgate.testing import mock_provider_quirks as quirks
from lockgate.testing.mock_provider_common import (
    ENCODING,
    MESSAGE_OVERHEAD,
    REPLY_OVERHEAD,
    BadRequest,
    Call,
    JSONDict,
    SSEStream,
    content_text,
    continue_from,
    count_tokens,
    dumps,
    json_response,
    new_id,
    openai_error,
    reply_text,
    sample_from_schema,
    short_id,
    split_pieces,
    text_tokens,
    token_pieces,
)

SYSTEM_FINGERPRINT = "fp_mock"
DEFAULT_EMBEDDING_DIMENSIONS = 16
LEGACY_DEFAULT_MAX_TOKENS = 16  # the real /v1/completions default

MODELS: list[tuple[str, str]] = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("gpt-3.5-turbo-instruct", "openai"),
    ("text-embedding-3-small", "openai"),
    ("text-embedding-3-large", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
]
_MODELS_CREATED = 1_700_000_000


def check_auth(request: web.Request) -> web.Response | None:
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    return openai_error(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


def check_any_auth(request: web.Request) -> web.Response | None:
    """/v1/models serves both dialects' clients: a Bearer token or an x-api-key will do."""
    return None if request.headers.get("x-api-key") else check_auth(request)


# --- request helpers -----------------------------------------------------------------------


def _model(body: JSONDict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    return model


def _positive_int(body: JSONDict, name: str, default: int | None, maximum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"Invalid '{name}': expected an integer >= 1, got {value!r}.", name)
    if maximum is not None and value > maximum:
        raise BadRequest(f"Invalid '{name}': expected at most {maximum}, got {value}.", name)
    return value


def chat_prompt_tokens(messages: list[Any]) -> int:
    """Prompt tokens: the text of every message (+ tool-call names/arguments), +3 each, +3."""
    total = REPLY_OVERHEAD
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + text_tokens(message.get("content"))
        for tool_call in message.get("tool_calls") or []:
            function = (tool_call.get("function") or {}) if isinstance(tool_call, dict) else {}
            total += count_tokens(str(function.get("name", ""))) + count_tokens(
                str(function.get("arguments", ""))
            )
    return total


def _usage(prompt: int, completion: int) -> JSONDict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _logprob(position: int) -> float:
    return -round(0.01 * (1 + position % 7), 4)


def _chat_logprob_entry(piece: str, position: int, top: int) -> JSONDict:
    lp = _logprob(position)
    alternatives = [{"token": piece, "logprob": lp, "bytes": list(piece.encode())}]
    for j in range(1, top):
        alt = f" alt{j}"
        alternatives.append({"token": alt, "logprob": round(lp - j, 4), "bytes": list(alt.encode())})
    return {"token": piece, "logprob": lp, "bytes": list(piece.encode()), "top_logprobs": alternatives[:top]}


# --- what to answer ------------------------------------------------------------------------


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class ChatPlan:
    """The reply decided from the request: text pieces, or tool calls."""

    pieces: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    completion_tokens: int = 0  # per choice
    finish_reason: str = "stop"


def _function_tools(body: JSONDict) -> list[JSONDict]:
    tools = body.get("tools") or []
    return [
        t["function"]
        for t in tools
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
    ]


def _pick_tools(body: JSONDict, tools: list[JSONDict]) -> list[JSONDict]:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        named = [t for t in tools if t.get("name") == name]
        if not named:
            raise BadRequest(f"Invalid 'tool_choice': no function named {name!r} in 'tools'.", "tool_choice")
        return named[:1]
    parallel = body.get("parallel_tool_calls") is not False
    return tools[:2] if parallel and len(tools) >= 2 else tools[:1]


def plan_chat(body: JSONDict, max_tokens: int | None) -> ChatPlan:
    messages = body["messages"]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    tools = _function_tools(body)
    if tools and body.get("tool_choice") != "none" and last.get("role") == "user":
        calls = []
        for index, tool in enumerate(_pick_tools(body, tools)):
            name = str(tool.get("name", ""))
            arguments = dumps(sample_from_schema(tool.get("parameters") or {"type": "object"}))
            calls.append(
                ToolCall(short_id("call_", name, index, content_text(last.get("content"))), name, arguments)
            )
        tokens = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
        return ChatPlan(tool_calls=calls, completion_tokens=tokens, finish_reason="tool_calls")
    if last.get("role") == "tool":
        text = reply_text(content_text(last.get("content")), tool_result=True)
    else:
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = reply_text(content_text(users[-1].get("content")) if users else "")
        if last.get("role") == "assistant":
            text = continue_from(content_text(last.get("content")), text)
    text = _apply_response_format(body.get("response_format"), text)
    pieces, used, truncated = token_pieces(text, max_tokens)
    return ChatPlan(pieces=pieces, completion_tokens=used, finish_reason="length" if truncated else "stop")


def _apply_response_format(response_format: Any, text: str) -> str:
    if not isinstance(response_format, dict):
        return text
    if response_format.get("type") == "json_object":
        return dumps({"reply": text})
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        return dumps(sample_from_schema(schema))
    return text


# --- POST /v1/chat/completions -------------------------------------------------------------


async def chat_completions(call: Call) -> web.StreamResponse:
    body = call.body
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Invalid 'messages': expected a non-empty array.", "messages")
    n = _positive_int(body, "n", 1, maximum=128) or 1
    max_tokens = _positive_int(body, "max_completion_tokens", None) or _positive_int(body, "max_tokens", None)
    top = body.get("top_logprobs")
    if top is not None and (not isinstance(top, int) or not 0 <= top <= 20):
        raise BadRequest("Invalid 'top_logprobs': expected an integer between 0 and 20.", "top_logprobs")
    if top is not None and body.get("logprobs") is not True:
        raise BadRequest("'logprobs' must be set to true when 'top_logprobs' is used.", "logprobs")
    top_logprobs = top if body.get("logprobs") is True else None
    plan = plan_chat(body, max_tokens)
    usage = _usage(chat_prompt_tokens(messages), plan.completion_tokens * n)
    base = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if body.get("stream") is True:
        return await _stream_chat(call, base, plan, n, usage, top_logprobs)
    message: JSONDict = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    logprobs = None
    if plan.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in plan.tool_calls
        ]
    else:
        message["content"] = "".join(plan.pieces)
        if top_logprobs is not None:
            entries = [_chat_logprob_entry(p, k, top_logprobs) for k, p in enumerate(plan.pieces)]
            logprobs = {"content": entries, "refusal": None}
    choices = [
        {"index": i, "message": message, "logprobs": logprobs, "finish_reason": plan.finish_reason}
        for i in range(n)
    ]
    payload: JSONDict = {**base, "choices": choices}
    if not call.no_usage:
        payload["usage"] = usage
    return json_response(quirks.response(model, payload), headers=call.extra_headers)


async def _stream_chat(
    call: Call, base: JSONDict, plan: ChatPlan, n: int, usage: JSONDict, top_logprobs: int | None
) -> web.StreamResponse:
    include_usage = (call.body.get("stream_options") or {}).get("include_usage") is True
    stream = SSEStream(call)
    await stream.start()

    def chunk(index: int, delta: JSONDict, finish: str | None = None, logprobs: Any = None) -> JSONDict:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        data: JSONDict = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        if include_usage:
            data["usage"] = None  # as OpenAI does: every chunk but the last carries usage: null
        return data

    if plan.tool_calls:
        for i in range(n):
            for j, tc in enumerate(plan.tool_calls):
                start = {
                    "index": j,
                    "id": tc.id,
                    "type": "function",
                    "function": {"name": tc.name, "arguments": ""},
                }
                delta: JSONDict = {"tool_calls": [start]}
                if j == 0:
                    delta = {"role": "assistant", "content": None, **delta, "refusal": None}
                await stream.send(chunk(i, delta))
                for piece in split_pieces(tc.arguments):
                    args = {"tool_calls": [{"index": j, "function": {"arguments": piece}}]}
                    await stream.send(chunk(i, args), kind="content")
    else:
        for i in range(n):
            await stream.send(chunk(i, {"role": "assistant", "content": "", "refusal": None}))
        for k, piece in enumerate(plan.pieces):
            logprobs = None
            if top_logprobs is not None:
                logprobs = {"content": [_chat_logprob_entry(piece, k, top_logprobs)], "refusal": None}
            for i in range(n):
                await stream.send(chunk(i, {"content": piece}, logprobs=logprobs), kind="content")
    for i in range(n):
        await stream.send(chunk(i, {}, plan.finish_reason), kind="end")
    if include_usage and not call.no_usage:
        await stream.send(
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": quirks.usage(base["model"], usage),
            },
            kind="end",
        )
    await stream.send("[DONE]", kind="end")
    return await stream.finish()


# --- POST /v1/completions (legacy) ---------------------------------------------------------


def _prompts(prompt: Any) -> list[tuple[str, int]]:
    """Each prompt as (text, tokens); token-array prompts are decoded to text."""
    if isinstance(prompt, str):
        return [(prompt, count_tokens(prompt))]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return [(_decode(prompt), len(prompt))]
    if isinstance(prompt, list) and prompt:
        out: list[tuple[str, int]] = []
        for item in prompt:
            out.extend(_prompts(item) if isinstance(item, str | list) else _bad_prompt())
        return out
    return _bad_prompt()


def _bad_prompt() -> list[tuple[str, int]]:
    raise BadRequest("Invalid 'prompt': expected a string, an array of strings or of token arrays.", "prompt")


def _decode(tokens: list[int]) -> str:
    try:
        return ENCODING.decode(tokens)
    except Exception as exc:  # any bad token id: the real API answers 400 too
        raise BadRequest(f"Invalid token in 'prompt': {exc}", "prompt") from exc


def _legacy_logprobs(pieces: list[str], top: int, start: int = 0, offset: int = 0) -> JSONDict:
    """Legacy logprobs for ``pieces``, the first being token number ``start`` at char ``offset``."""
    offsets = []
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    positions = range(start, start + len(pieces))
    return {
        "tokens": pieces,
        "token_logprobs": [_logprob(k) for k in positions],
        "top_logprobs": [
            {p: _logprob(k), **{f" alt{j}": round(_logprob(k) - j, 4) for j in range(1, top)}}
            for k, p in zip(positions, pieces, strict=True)
        ],
        "text_offset": offsets,
    }


async def completions(call: Call) -> web.StreamResponse:
    body = call.body
    model = _model(body)
    prompts = _prompts(body.get("prompt"))
    n = _positive_int(body, "n", 1, maximum=128) or 1
    max_tokens = _positive_int(body, "max_tokens", LEGACY_DEFAULT_MAX_TOKENS)
    top = body.get("logprobs")
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 5):
        raise BadRequest("Invalid 'logprobs': expected an integer between 0 and 5.", "logprobs")
    choices: list[JSONDict] = []
    completion_tokens = 0
    for text, _ in prompts:
        pieces, used, truncated = token_pieces(reply_text(text), max_tokens)
        if body.get("echo") is True:
            pieces = [text, *pieces]
        for _ in range(n):
            completion_tokens += used
            choices.append({"pieces": pieces, "finish_reason": "length" if truncated else "stop"})
    usage = _usage(sum(t for _, t in prompts), completion_tokens)
    del usage["prompt_tokens_details"], usage["completion_tokens_details"]
    base = {"id": new_id("cmpl-"), "object": "text_completion", "created": int(time.time()), "model": model}
    base["system_fingerprint"] = SYSTEM_FINGERPRINT
    if body.get("stream") is True:
        return await _stream_completions(call, base, choices, usage, top)
    out = [
        {
            "text": "".join(c["pieces"]),
            "index": i,
            "logprobs": None if top is None else _legacy_logprobs(c["pieces"], top),
            "finish_reason": c["finish_reason"],
        }
        for i, c in enumerate(choices)
    ]
    payload: JSONDict = {**base, "choices": out}
    if not call.no_usage:
        payload["usage"] = usage
    return json_response(payload, headers=call.extra_headers)


async def _stream_completions(
    call: Call, base: JSONDict, choices: list[JSONDict], usage: JSONDict, top: int | None
) -> web.StreamResponse:
    include_usage = (call.body.get("stream_options") or {}).get("include_usage") is True
    stream = SSEStream(call)
    await stream.start()

    def chunk(index: int, text: str, finish: str | None, logprobs: Any = None) -> JSONDict:
        data: JSONDict = {
            **base,
            "choices": [{"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return data

    for i, c in enumerate(choices):
        offset = 0
        for k, piece in enumerate(c["pieces"]):
            logprobs = None if top is None else _legacy_logprobs([piece], top, k, offset)
            offset += len(piece)
            await stream.send(chunk(i, piece, None, logprobs), kind="content")
        await stream.send(chunk(i, "", c["finish_reason"]), kind="end")
    if include_usage and not call.no_usage:
        await stream.send({**base, "choices": [], "usage": usage}, kind="end")
    await stream.send("[DONE]", kind="end")
    return await stream.finish()


# --- POST /v1/embeddings -------------------------------------------------------------------


def embedding_vector(item: str | list[int], dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector from a hash of the input, exactly representable as float32."""
    seed = item if isinstance(item, str) else dumps(item)
    raw = b""
    counter = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.sha256(f"{counter}:{seed}".encode()).digest()
        counter += 1
    values = [int.from_bytes(raw[4 * i : 4 * i + 4], "little") / 2**31 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Round-trip through float32 so the "float" and "base64" encodings carry the same numbers.
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(t, int) for t in value):
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        items = []
    valid = items and all(
        (isinstance(i, str) and i) or (isinstance(i, list) and i and all(isinstance(t, int) for t in i))
        for i in items
    )
    if not valid:
        raise BadRequest(
            "Invalid 'input': expected a non-empty string, array of strings or array of token arrays.",
            "input",
        )
    return items


async def embeddings(call: Call) -> web.StreamResponse:
    body = call.body
    model = _model(body)
    items = _embedding_inputs(body.get("input"))
    dimensions = _positive_int(body, "dimensions", DEFAULT_EMBEDDING_DIMENSIONS, maximum=4096) or 1
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    data = []
    for index, item in enumerate(items):
        vector = embedding_vector(item, dimensions)
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(count_tokens(i) if isinstance(i, str) else len(i) for i in items)
    payload: JSONDict = {"object": "list", "data": data, "model": model}
    if not call.no_usage:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_response(payload, headers=call.extra_headers)


# --- GET /v1/models ------------------------------------------------------------------------


def _model_object(model_id: str, owner: str) -> JSONDict:
    return {"id": model_id, "object": "model", "created": _MODELS_CREATED, "owned_by": owner}


async def list_models(call: Call) -> web.StreamResponse:
    data = [_model_object(m, owner) for m, owner in MODELS]
    return json_response({"object": "list", "data": data}, headers=call.extra_headers)


async def get_model(call: Call) -> web.StreamResponse:
    wanted = call.request.match_info["model"]
    for model_id, owner in MODELS:
        if model_id == wanted:
            return json_response(_model_object(model_id, owner), headers=call.extra_headers)
    return openai_error(404, f"The model '{wanted}' does not exist", param="model", code="model_not_found")
