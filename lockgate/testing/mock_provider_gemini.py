"""Gemini dialect of the mock provider: the Gemini API (AI Studio) and Vertex AI paths.

``POST /v1beta/models/{model}:{method}``, ``POST /v1/projects/{p}/locations/{r}/publishers/
google/models/{model}:{method}`` and Vertex express ``/v1/publishers/google/models/...``;
methods ``generateContent``, ``streamGenerateContent`` (``?alt=sse`` only),
``batchEmbedContents``, ``embedContent`` and ``predict`` (Vertex embeddings).

Deterministic rules, as for the other dialects: the reply is ``reply_text`` of the last
user text; with function declarations (mode not NONE) and a user turn last, the first
two functions are called (one with ``allowedFunctionNames``/mode ANY restricted);
after a ``functionResponse`` the reply quotes the response. A user text containing
``[mock:safety]`` is blocked: finishReason SAFETY, no content. ``thinkingConfig`` with a
non-zero budget adds 16 thought tokens to the usage.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from lockgate.testing.mock_provider_common import (
    MESSAGE_OVERHEAD,
    REPLY_OVERHEAD,
    BadRequest,
    Call,
    JSONDict,
    SSEStream,
    count_tokens,
    dumps,
    gemini_error,
    json_response,
    new_id,
    reply_text,
    sample_from_schema,
    short_id,
    token_pieces,
)
from lockgate.testing.mock_provider_openai import embedding_vector

SAFETY_TRIGGER = "[mock:safety]"
THOUGHT_TOKENS = 16


def check_auth(request: web.Request) -> web.Response | None:
    if request.headers.get("x-goog-api-key") or request.query.get("key"):
        return None
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    return gemini_error(
        401,
        "Request is missing required authentication credential. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
    )


def _part_tokens(part: Any) -> int:
    if not isinstance(part, dict):
        return 0
    if isinstance(part.get("text"), str):
        return count_tokens(part["text"])
    if isinstance(part.get("functionCall"), dict):
        call = part["functionCall"]
        return count_tokens(str(call.get("name", ""))) + count_tokens(dumps(call.get("args") or {}))
    if isinstance(part.get("functionResponse"), dict):
        return count_tokens(dumps(part["functionResponse"].get("response") or {}))
    if "inlineData" in part or "fileData" in part:
        return 258  # Gemini bills an image as 258 tokens
    return 0


def prompt_tokens(body: JSONDict) -> int:
    total = REPLY_OVERHEAD
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        total += MESSAGE_OVERHEAD + sum(_part_tokens(p) for p in system.get("parts") or ())
    for content in body.get("contents") or ():
        if isinstance(content, dict):
            total += MESSAGE_OVERHEAD + sum(_part_tokens(p) for p in content.get("parts") or ())
    return total


def _texts(content: JSONDict) -> str:
    return " ".join(p["text"] for p in content.get("parts") or () if isinstance(p, dict) and "text" in p)


def _plan(body: JSONDict) -> tuple[str, list[JSONDict], bool]:
    """(reply text, function calls, blocked)."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents or not isinstance(contents[-1], dict):
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    last = contents[-1]
    responses = [p["functionResponse"] for p in last.get("parts") or () if "functionResponse" in p]
    if responses:
        return reply_text(dumps(responses[-1].get("response") or {}), tool_result=True), [], False
    users = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
    text = _texts(users[-1]) if users else ""
    if SAFETY_TRIGGER in text:
        return "", [], True
    declarations = [d for tool in body.get("tools") or () for d in tool.get("functionDeclarations") or ()]
    config = ((body.get("toolConfig") or {}).get("functionCallingConfig")) or {}
    if declarations and config.get("mode", "AUTO") != "NONE" and last.get("role", "user") == "user":
        allowed = config.get("allowedFunctionNames")
        chosen = [d for d in declarations if not allowed or d.get("name") in allowed][:2]
        calls = [
            {"name": d.get("name"), "args": sample_from_schema(d.get("parameters") or {"type": "object"})}
            for d in chosen
        ]
        return "", calls, False
    return reply_text(text), [], False


def _usage(body: JSONDict, output_tokens: int) -> JSONDict:
    prompt = prompt_tokens(body)
    thinking = ((body.get("generationConfig") or {}).get("thinkingConfig")) or {}
    thoughts = THOUGHT_TOKENS if thinking.get("thinkingBudget", 1) else 0
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt + output_tokens + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


async def handle(call: Call) -> web.StreamResponse:
    model = call.request.match_info["model"]
    method = call.request.match_info["method"]
    if method == "generateContent":
        return await _generate(call, model, stream=False)
    if method == "streamGenerateContent":
        if call.request.query.get("alt") != "sse":
            raise BadRequest("The mock serves streamGenerateContent with alt=sse only.")
        return await _generate(call, model, stream=True)
    if method in ("batchEmbedContents", "embedContent"):
        return _embed(call, batch=method == "batchEmbedContents")
    if method == "predict":
        return _predict(call)
    return gemini_error(404, f"Method {method} not found for model {model}.")


async def _generate(call: Call, model: str, *, stream: bool) -> web.StreamResponse:
    body = call.body
    text, calls, blocked = _plan(body)
    limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
    response_id = new_id("")
    if calls:
        parts = [{"functionCall": c} for c in calls]
        output_tokens = sum(count_tokens(c["name"]) + count_tokens(dumps(c["args"])) for c in calls)
        pieces, finish = [], "STOP"
    elif blocked:
        parts, output_tokens, pieces, finish = [], 0, [], "SAFETY"
    else:
        pieces, output_tokens, truncated = token_pieces(text, limit)
        parts, finish = [{"text": "".join(pieces)}], "MAX_TOKENS" if truncated else "STOP"
    usage = _usage(body, output_tokens)
    base: JSONDict = {"modelVersion": model, "responseId": response_id}
    if stream:
        return await _stream(call, base, pieces, parts if calls else [], finish, usage)
    candidate: JSONDict = {"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}
    if blocked:
        candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                       "blocked": True}]  # fmt: skip
    payload: JSONDict = {"candidates": [candidate], **base}
    if not call.no_usage:
        payload["usageMetadata"] = usage
    return json_response(payload, headers=call.extra_headers)


async def _stream(
    call: Call, base: JSONDict, pieces: list[str], call_parts: list[JSONDict], finish: str, usage: JSONDict
) -> web.StreamResponse:
    stream = SSEStream(call)
    await stream.start()
    partial = {k: v for k, v in usage.items() if k != "candidatesTokenCount"}

    def chunk(parts: list[JSONDict], finish_reason: str | None = None) -> JSONDict:
        candidate: JSONDict = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish_reason:
            candidate["finishReason"] = finish_reason
        out: JSONDict = {"candidates": [candidate], **base}
        if not call.no_usage:
            out["usageMetadata"] = usage if finish_reason else partial
        return out

    if call_parts:
        await stream.send(chunk(call_parts), kind="content")
    for piece in pieces:
        await stream.send(chunk([{"text": piece}]), kind="content")
    await stream.send(chunk([], finish), kind="end")
    return await stream.finish()


def _embed(call: Call, *, batch: bool) -> web.StreamResponse:
    requests = call.body.get("requests") if batch else [call.body]
    if not isinstance(requests, list) or not requests:
        raise BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    vectors = []
    for request in requests:
        text = _texts((request or {}).get("content") or {})
        if not text:
            raise BadRequest("* EmbedContentRequest.content: contains an empty Part")
        vectors.append({"values": embedding_vector(text, int(request.get("outputDimensionality") or 16))})
    payload = {"embeddings": vectors} if batch else {"embedding": vectors[0]}
    return json_response(payload, headers=call.extra_headers)


def _predict(call: Call) -> web.StreamResponse:
    instances = call.body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise BadRequest("instances: at least one instance is required")
    dimensions = int((call.body.get("parameters") or {}).get("outputDimensionality") or 16)
    predictions = []
    for instance in instances:
        text = str((instance or {}).get("content") or "")
        statistics = {"token_count": count_tokens(text), "truncated": False}
        predictions.append(
            {"embeddings": {"values": embedding_vector(text, dimensions), "statistics": statistics}}
        )
    return json_response({"predictions": predictions, "metadata": {}}, headers=call.extra_headers)


# --- the Google OAuth token endpoint (service-account JWT bearer grant) ---------------------


def _b64json(segment: str) -> Any:
    import orjson

    return orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def check_jwt_assertion(assertion: str, audience: str) -> str | None:
    """What is wrong with a JWT-bearer assertion's shape and claims (the signature is not checked)."""
    pieces = assertion.split(".")
    if len(pieces) != 3:
        return "assertion is not a JWT"
    try:
        header, claims = _b64json(pieces[0]), _b64json(pieces[1])
    except ValueError:
        return "assertion is not base64url JSON"
    if header.get("alg") != "RS256":
        return "alg must be RS256"
    for claim in ("iss", "scope", "aud", "iat", "exp"):
        if claim not in claims:
            return f"missing claim {claim}"
    if claims["aud"] != audience:
        return f"aud must be {audience}"
    return None


def token_fingerprint(assertion: str) -> str:
    return short_id("", assertion)[:12]
