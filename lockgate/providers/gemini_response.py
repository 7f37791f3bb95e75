"""Gemini responses, stream chunks, usage, embeddings and errors -> canonical shapes.

The rules are listed in ``lockgate.providers.gemini``. Pure: no I/O.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from lockgate.errors import UpstreamError
from lockgate.providers import parts
from lockgate.providers.gemini_request import id_with_signature

# Every reason a candidate was stopped by a filter rather than by the model.
_FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
)
# google.rpc status -> OpenAI error type.
ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "INTERNAL": "api_error",
    "UNAVAILABLE": "api_error",
}


def finish_reason(reason: str | None, has_tool_calls: bool) -> str | None:
    if reason is None or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_tool_calls else "stop"


def usage_to_chat(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """``usageMetadata`` -> canonical usage.

    ``promptTokenCount`` already includes ``cachedContentTokenCount``; tool-use prompt
    tokens (e.g. search results) are prompt tokens too. ``candidatesTokenCount`` excludes
    ``thoughtsTokenCount``, which is billed as output: both make ``completion_tokens``.
    """
    if not isinstance(meta, dict):
        return None
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": meta.get("cachedContentTokenCount") or 0},
    }
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return usage


def _tool_call(call: dict[str, Any], part: dict[str, Any], salt: str, index: int) -> dict[str, Any]:
    args = call.get("args") or {}
    call_id = call.get("id") or parts.stable_id("call_", salt, index, call.get("name"), parts.dumps(args))
    return {
        "id": id_with_signature(call_id, part.get("thoughtSignature")),
        "type": "function",
        "function": {"name": call.get("name"), "arguments": parts.dumps(args)},
    }


def _read_parts(
    candidate: dict[str, Any], salt: str, first_index: int = 0
) -> tuple[list[str], list[str], list]:
    """(texts, thought texts, tool calls) of a candidate's content."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(_tool_call(part["functionCall"], part, salt, first_index + len(calls)))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
        # executableCode, codeExecutionResult, inlineData outputs have no chat equivalent.
    return texts, thoughts, calls


def response_to_chat(payload: dict[str, Any], model: str = "") -> dict[str, Any]:
    """A ``GenerateContentResponse`` -> a canonical ``chat.completion``."""
    response_id = payload.get("responseId") or parts.stable_id("gen-", parts.dumps(payload))
    choices = []
    for position, candidate in enumerate(payload.get("candidates") or ()):
        texts, thoughts, calls = _read_parts(candidate, f"{response_id}:{position}")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)) or "stop",
                "logprobs": None,
            }
        )
    if not choices and (payload.get("promptFeedback") or {}).get("blockReason"):
        # The prompt itself was blocked: no candidates at all.
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "finish_reason": "content_filter",
                "logprobs": None,
            }
        )
    out: dict[str, Any] = {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload.get("modelVersion") or model,
        "choices": choices,
    }
    usage = usage_to_chat(payload.get("usageMetadata"))
    if usage is not None:
        out["usage"] = usage
    return out


class GeminiStreamToChat:
    """``streamGenerateContent?alt=sse`` chunks -> canonical chat chunks.

    Each SSE event is a whole ``GenerateContentResponse`` holding the next piece of each
    candidate; function calls arrive complete (one chunk per call, with full arguments).
    ``done`` turns True with the first ``finishReason`` (or a blocked prompt); usage is the
    last ``usageMetadata`` seen and goes out as a usage-only chunk from ``finish()``.
    """

    def __init__(self, model: str) -> None:
        self.usage: dict[str, Any] | None = None
        self.done = False
        self._model = model
        self._id = ""
        self._created = int(time.time())
        self._started: set[int] = set()
        self._tool_count: dict[int, int] = {}

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(data.get("error"), dict):
            raise error_from_payload(data, None)
        self._id = self._id or data.get("responseId") or parts.stable_id("gen-", self._created, id(self))
        self._model = data.get("modelVersion") or self._model
        usage = usage_to_chat(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        out: list[dict[str, Any]] = []
        for position, candidate in enumerate(data.get("candidates") or ()):
            index = candidate.get("index", position)
            if index not in self._started:
                self._started.add(index)
                out.append(self._chunk(index, {"role": "assistant", "content": ""}))
            first = self._tool_count.get(index, 0)
            texts, thoughts, calls = _read_parts(candidate, f"{self._id}:{index}", first)
            # Final chunks often carry an empty text part: nothing to relay.
            if "".join(thoughts):
                out.append(self._chunk(index, {"reasoning_content": "".join(thoughts)}))
            if "".join(texts):
                out.append(self._chunk(index, {"content": "".join(texts)}))
            if calls:
                deltas = [{"index": first + k, **call} for k, call in enumerate(calls)]
                self._tool_count[index] = first + len(calls)
                out.append(self._chunk(index, {"tool_calls": deltas}))
            reason = finish_reason(candidate.get("finishReason"), bool(self._tool_count.get(index)))
            if reason is not None:
                self.done = True
                out.append(self._chunk(index, {}, reason))
        if not data.get("candidates") and (data.get("promptFeedback") or {}).get("blockReason"):
            self.done = True
            out.append(self._chunk(0, {"role": "assistant", "content": None}, "content_filter"))
        return out

    def finish(self) -> list[dict[str, Any]]:
        if self.usage is None:
            return []
        return [
            {
                "id": f"chatcmpl-{self._id}",
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": self.usage,
            }
        ]

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self._id}",
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }


# --- embeddings -----------------------------------------------------------------------------


def gemini_embeddings_to_openai(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """``batchEmbedContents`` (or a single ``embedContent``) response -> canonical embeddings."""
    items = payload.get("embeddings")
    if items is None and isinstance(payload.get("embedding"), dict):
        items = [payload["embedding"]]
    vectors = [list(item.get("values") or []) for item in items or ()]
    return parts.embeddings_response(vectors, model)


def vertex_embeddings_to_openai(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """Vertex ``:predict`` embeddings -> canonical embeddings, with the token counts it reports."""
    vectors: list[list[float]] = []
    tokens = 0
    for prediction in payload.get("predictions") or ():
        embedding = prediction.get("embeddings") or {}
        vectors.append(list(embedding.get("values") or []))
        tokens += int((embedding.get("statistics") or {}).get("token_count") or 0)
    return parts.embeddings_response(vectors, model, tokens)


# --- errors ---------------------------------------------------------------------------------


def error_from_payload(payload: Any, status: int | None, provider: str = "gemini") -> UpstreamError:
    if isinstance(payload, list) and payload:
        payload = payload[0]  # streamed requests report errors as a one-element array
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return UpstreamError(f"{provider} returned HTTP {status} with an unrecognised error body",
                             upstream_status=status, provider=provider)  # fmt: skip
    code = err.get("status") if isinstance(err.get("status"), str) else None
    message = err.get("message") if isinstance(err.get("message"), str) else f"{provider} returned an error"
    upstream_status = status if status is not None else err.get("code")
    return UpstreamError(
        message,
        upstream_status=upstream_status if isinstance(upstream_status, int) else None,
        provider=provider,
        type=ERROR_TYPES.get(code or "", "api_error"),
        code=code,
    )


def parse_error(status: int, raw: bytes, provider: str) -> UpstreamError:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        snippet = raw[:200].decode("utf-8", "replace").strip()
        return UpstreamError(f"{provider} returned HTTP {status}" + (f": {snippet}" if snippet else ""),
                             upstream_status=status, provider=provider)  # fmt: skip
    return error_from_payload(payload, status, provider)
