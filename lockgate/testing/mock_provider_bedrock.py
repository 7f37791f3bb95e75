"""Bedrock dialect of the mock provider: Converse, ConverseStream (binary event stream), InvokeModel.

``POST /model/{model}/converse``, ``/model/{model}/converse-stream`` (answers in
``application/vnd.amazon.eventstream`` framing with CRCs, encoded by the same module the
gateway decodes with) and ``/model/{model}/invoke`` (Titan and Cohere embeddings).

Auth: SigV4 is not verified, but the ``Authorization`` header must be shaped like one
(``AWS4-HMAC-SHA256 Credential=<key>/<yyyymmdd>/<region>/bedrock/aws4_request,
SignedHeaders=...;x-amz-date..., Signature=<64 hex>``) with an ``X-Amz-Date``; a Bedrock API
key (``Bearer``) is accepted too. Errors are ``{"message"}`` with ``x-amzn-ErrorType``.
Replies follow the same deterministic rules as the other dialects.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from lockgate.providers.bedrock_eventstream import encode_event
from lockgate.testing.mock_provider_common import (
    MESSAGE_OVERHEAD,
    REPLY_OVERHEAD,
    BadRequest,
    Call,
    JSONDict,
    SSEStream,
    bedrock_error,
    count_tokens,
    dumps,
    json_response,
    new_id,
    reply_text,
    sample_from_schema,
    short_id,
    split_pieces,
    token_pieces,
)
from lockgate.testing.mock_provider_openai import embedding_vector

SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[A-Za-z0-9]+/\d{8}/[a-z0-9-]+/bedrock/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]*x-amz-date[a-z0-9;-]*, Signature=[0-9a-f]{64}$"
)


def check_auth(request: web.Request) -> web.Response | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer ") and len(auth) > 7:
        return None
    if not auth:
        return bedrock_error(403, "Missing Authentication Token", kind="MissingAuthenticationTokenException")
    if not SIGV4.match(auth) or not request.headers.get("X-Amz-Date"):
        return bedrock_error(403, "The request signature we calculated does not match the signature you "
                             "provided.", kind="InvalidSignatureException")  # fmt: skip
    return None


def _block_tokens(block: Any) -> int:
    if not isinstance(block, dict):
        return 0
    if isinstance(block.get("text"), str):
        return count_tokens(block["text"])
    if isinstance(block.get("toolUse"), dict):
        use = block["toolUse"]
        return count_tokens(str(use.get("name", ""))) + count_tokens(dumps(use.get("input") or {}))
    if isinstance(block.get("toolResult"), dict):
        return sum(
            count_tokens(c["text"]) if "text" in c else count_tokens(dumps(c.get("json")))
            for c in block["toolResult"].get("content") or ()
        )
    return 0


def input_tokens(body: JSONDict) -> int:
    total = REPLY_OVERHEAD
    system = body.get("system") or []
    if system:
        total += MESSAGE_OVERHEAD + sum(_block_tokens(b) for b in system)
    for message in body.get("messages") or ():
        total += MESSAGE_OVERHEAD + sum(_block_tokens(b) for b in message.get("content") or ())
    return total


def _plan(body: JSONDict) -> tuple[str, list[JSONDict]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise BadRequest(
            "The model returned the following errors: messages: at least one message is required"
        )
    last = messages[-1]
    results = [b["toolResult"] for b in last.get("content") or () if "toolResult" in b]
    if results:
        content = results[-1].get("content") or [{}]
        text = content[0].get("text") if "text" in content[0] else dumps(content[0].get("json"))
        return reply_text(str(text), tool_result=True), []
    users = [m for m in messages if m.get("role") == "user"]
    text = " ".join(b["text"] for b in users[-1].get("content") or () if "text" in b) if users else ""
    config = body.get("toolConfig") or {}
    specs = [t["toolSpec"] for t in config.get("tools") or () if "toolSpec" in t]
    if specs and last.get("role") == "user":
        choice = config.get("toolChoice") or {"auto": {}}
        if "tool" in choice:
            specs = [s for s in specs if s.get("name") == choice["tool"].get("name")]
        uses = [
            {"toolUseId": short_id("tooluse_", s.get("name"), i, text), "name": s.get("name"),
             "input": sample_from_schema((s.get("inputSchema") or {}).get("json") or {"type": "object"})}
            for i, s in enumerate(specs[:2])
        ]  # fmt: skip
        return "", uses
    return reply_text(text), []


async def converse(call: Call) -> web.StreamResponse:
    return await _converse(call, stream=False)


async def converse_stream(call: Call) -> web.StreamResponse:
    return await _converse(call, stream=True)


async def _converse(call: Call, *, stream: bool) -> web.StreamResponse:
    body = call.body
    text, uses = _plan(body)
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    if uses:
        pieces: list[str] = []
        output_tokens = sum(count_tokens(u["name"]) + count_tokens(dumps(u["input"])) for u in uses)
        stop_reason = "tool_use"
    else:
        pieces, output_tokens, truncated = token_pieces(text, limit)
        stop_reason = "max_tokens" if truncated else "end_turn"
    prompt = input_tokens(body)
    usage = {"inputTokens": prompt, "outputTokens": output_tokens, "totalTokens": prompt + output_tokens}
    if stream:
        return await _stream(call, pieces, uses, stop_reason, usage)
    content = [{"toolUse": u} for u in uses] if uses else [{"text": "".join(pieces)}]
    payload: JSONDict = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "metrics": {"latencyMs": 1},
    }
    if not call.no_usage:
        payload["usage"] = usage
    return json_response(payload, headers=call.extra_headers)


async def _stream(
    call: Call, pieces: list[str], uses: list[JSONDict], stop_reason: str, usage: JSONDict
) -> web.StreamResponse:
    stream = SSEStream(call, content_type="application/vnd.amazon.eventstream")
    await stream.start()

    async def send(event: str, payload: JSONDict, kind: str = "meta") -> None:
        # Real ConverseStream events carry a "p" padding field; clients ignore it.
        await stream.send_frame(encode_event(event, {**payload, "p": "abcdefgh"}), kind=kind)

    await send("messageStart", {"role": "assistant"})
    if uses:
        for index, use in enumerate(uses):
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            await send("contentBlockStart", {"contentBlockIndex": index, "start": start})
            for piece in split_pieces(dumps(use["input"])):
                delta = {"toolUse": {"input": piece}}
                await send("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}, "content")
            await send("contentBlockStop", {"contentBlockIndex": index})
    else:
        for piece in pieces:
            await send("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}, "content")
        await send("contentBlockStop", {"contentBlockIndex": 0})
    await send("messageStop", {"stopReason": stop_reason}, "end")
    if not call.no_usage:
        await send("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}, "end")
    return await stream.finish()


async def invoke(call: Call) -> web.StreamResponse:
    model = call.request.match_info["model"]
    body = call.body
    if "titan-embed" in model:
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            raise BadRequest("Malformed input request: #: required key [inputText] not found")
        vector = embedding_vector(text, int(body.get("dimensions") or 16))
        return json_response({"embedding": vector, "inputTextTokenCount": count_tokens(text)},
                             headers=call.extra_headers)  # fmt: skip
    if "cohere.embed" in model:
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not body.get("input_type"):
            raise BadRequest("Malformed input request: texts and input_type are required")
        vectors = [embedding_vector(t, int(body.get("output_dimension") or 16)) for t in texts]
        payload = {"id": new_id(""), "texts": texts, "embeddings": {"float": vectors},
                   "response_type": "embeddings_by_type"}  # fmt: skip
        return json_response(payload, headers=call.extra_headers)
    raise BadRequest(f"The mock serves InvokeModel for Titan and Cohere embeddings, not {model}.")
