"""Cohere dialect of the mock provider: ``POST /v2/chat`` (plain and streamed) and ``POST /v2/embed``.

Same deterministic replies as the other dialects. With tools and a user turn last, the
mock plans (``tool_plan``) and calls the first two tools; ``tool_choice: REQUIRED`` with
one tool calls that one. Usage reports ``billed_units`` and ``tokens`` (the latter adds
Cohere's prompt template, modelled as 10 tokens). Errors are ``{"id", "message"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.testing.mock_provider_common import (
    MESSAGE_OVERHEAD,
    REPLY_OVERHEAD,
    BadRequest,
    Call,
    JSONDict,
    SSEStream,
    cohere_error,
    content_text,
    count_tokens,
    dumps,
    json_response,
    new_id,
    reply_text,
    sample_from_schema,
    short_id,
    split_pieces,
    text_tokens,
    token_pieces,
)
from lockgate.testing.mock_provider_openai import embedding_vector

TEMPLATE_TOKENS = 10
TOOL_PLAN = "I will call the tools to answer."


def check_auth(request: web.Request) -> web.Response | None:
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    return cohere_error(401, "no api key supplied")


def _prompt_tokens(messages: list[Any]) -> int:
    total = REPLY_OVERHEAD
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + text_tokens(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            total += count_tokens(str(function.get("name", ""))) + count_tokens(
                str(function.get("arguments", ""))
            )
    return total


def _usage(prompt: int, output: int) -> JSONDict:
    return {
        "billed_units": {"input_tokens": prompt, "output_tokens": output},
        "tokens": {"input_tokens": prompt + TEMPLATE_TOKENS, "output_tokens": output},
    }


def _plan(body: JSONDict) -> tuple[str, list[JSONDict]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise BadRequest("invalid request: messages must contain at least one message")
    last = messages[-1]
    if last.get("role") == "tool":
        return reply_text(content_text(last.get("content")), tool_result=True), []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    text = content_text(users[-1].get("content")) if users else ""
    tools = [t["function"] for t in body.get("tools") or () if isinstance(t, dict) and "function" in t]
    if tools and body.get("tool_choice") != "NONE" and last.get("role") == "user":
        calls = [
            {"id": short_id("call_", t.get("name"), i, text), "type": "function",
             "function": {"name": t.get("name"),
                          "arguments": dumps(sample_from_schema(t.get("parameters") or {"type": "object"}))}}
            for i, t in enumerate(tools[:2])
        ]  # fmt: skip
        return "", calls
    return reply_text(text), []


async def chat(call: Call) -> web.StreamResponse:
    body = call.body
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("invalid request: model must be a non-empty string")
    text, calls = _plan(body)
    if calls:
        pieces: list[str] = []
        output = count_tokens(TOOL_PLAN) + sum(
            count_tokens(c["function"]["name"]) + count_tokens(c["function"]["arguments"]) for c in calls
        )
        finish = "TOOL_CALL"
    else:
        pieces, output, truncated = token_pieces(text, body.get("max_tokens"))
        finish = "MAX_TOKENS" if truncated else "COMPLETE"
    usage = _usage(_prompt_tokens(body["messages"]), output)
    response_id = new_id("")
    if body.get("stream") is True:
        return await _stream(call, response_id, pieces, calls, finish, usage)
    message: JSONDict = {"role": "assistant"}
    if calls:
        message["tool_plan"] = TOOL_PLAN
        message["tool_calls"] = calls
    else:
        message["content"] = [{"type": "text", "text": "".join(pieces)}]
    payload: JSONDict = {"id": response_id, "finish_reason": finish, "message": message}
    if not call.no_usage:
        payload["usage"] = usage
    return json_response(payload, headers=call.extra_headers)


async def _stream(
    call: Call, response_id: str, pieces: list[str], calls: list[JSONDict], finish: str, usage: JSONDict
) -> web.StreamResponse:
    stream = SSEStream(call)
    await stream.start()

    async def send(kind: str, payload: JSONDict, frame: str = "meta") -> None:
        await stream.send({"type": kind, **payload}, event=kind, kind=frame)

    await send("message-start", {"id": response_id, "delta": {"message": {"role": "assistant"}}})
    if calls:
        for piece in split_pieces(TOOL_PLAN):
            await send("tool-plan-delta", {"delta": {"message": {"tool_plan": piece}}})
        for index, tool_call in enumerate(calls):
            start = {**tool_call, "function": {"name": tool_call["function"]["name"], "arguments": ""}}
            await send("tool-call-start", {"index": index, "delta": {"message": {"tool_calls": start}}})
            for piece in split_pieces(tool_call["function"]["arguments"]):
                delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
                await send("tool-call-delta", {"index": index, "delta": delta}, "content")
            await send("tool-call-end", {"index": index})
    else:
        start = {"message": {"content": {"type": "text", "text": ""}}}
        await send("content-start", {"index": 0, "delta": start})
        for piece in pieces:
            delta = {"message": {"content": {"text": piece}}}
            await send("content-delta", {"index": 0, "delta": delta}, "content")
        await send("content-end", {"index": 0})
    end: JSONDict = {"finish_reason": finish}
    if not call.no_usage:
        end["usage"] = usage
    await send("message-end", {"id": response_id, "delta": end}, "end")
    return await stream.finish()


async def embed(call: Call) -> web.StreamResponse:
    body = call.body
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("invalid request: texts must be a non-empty list of strings")
    if not body.get("input_type"):
        raise BadRequest("invalid request: input_type is required for embed models v3 and higher")
    dimensions = int(body.get("output_dimension") or 16)
    vectors = [embedding_vector(t, dimensions) for t in texts]
    payload: JSONDict = {
        "id": new_id(""),
        "embeddings": {"float": vectors},
        "texts": texts,
        "response_type": "embeddings_by_type",
    }
    if not call.no_usage:
        tokens = sum(count_tokens(t) for t in texts)
        payload["meta"] = {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}}
    return json_response(payload, headers=call.extra_headers)
