"""Anthropic dialect of the mock provider: ``POST /v1/messages``, plain and streamed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lockgate.testing.mock_provider_common import (
    MESSAGE_OVERHEAD,
    REPLY_OVERHEAD,
    BadRequest,
    Call,
    JSONDict,
    SSEStream,
    anthropic_error,
    content_text,
    continue_from,
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


def check_auth(request: web.Request) -> web.Response | None:
    if not request.headers.get("anthropic-version"):
        return anthropic_error(400, "anthropic-version: header is required")
    if request.headers.get("x-api-key") or request.headers.get("Authorization"):
        return None
    return anthropic_error(401, "x-api-key header is required")


# --- token counting ------------------------------------------------------------------------


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return count_tokens(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "tool_use":
        return count_tokens(str(block.get("name", ""))) + count_tokens(dumps(block.get("input", {})))
    if kind == "tool_result":
        return text_tokens(block.get("content"))
    return count_tokens(block["text"]) if isinstance(block.get("text"), str) else 0


def _content_tokens(content: Any) -> int:
    if isinstance(content, list):
        return sum(_block_tokens(b) for b in content)
    return _block_tokens(content)


def input_tokens(body: JSONDict) -> int:
    """Prompt tokens: system text (+3 when present) + every message's blocks +3 each, +3.

    Blocks count their text; tool_use its name + compact JSON input; tool_result its content.
    """
    total = REPLY_OVERHEAD
    system = body.get("system")
    if system:
        total += MESSAGE_OVERHEAD + _content_tokens(system)
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
    return total


def _has_cache_control(body: JSONDict) -> bool:
    if "cache_control" in body:  # automatic caching: one breakpoint for the whole request
        return True
    blocks: list[Any] = []
    for part in (body.get("system"), body.get("tools")):
        if isinstance(part, list):
            blocks.extend(part)
    for message in body.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            blocks.extend(message["content"])
    return any(isinstance(b, dict) and "cache_control" in b for b in blocks)


def usage_for(body: JSONDict, output_tokens: int) -> JSONDict:
    """With any cache_control in the request, half the prompt (rounded down) is a cache read."""
    total = input_tokens(body)
    cached = total // 2 if _has_cache_control(body) else 0
    return {
        "input_tokens": total - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


# --- what to answer ------------------------------------------------------------------------


@dataclass
class ToolUse:
    id: str
    name: str
    input: Any

    @property
    def json(self) -> str:
        return dumps(self.input)


def _tool_results(content: Any) -> list[JSONDict]:
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _pick_tools(body: JSONDict, last_text: str) -> list[ToolUse]:
    # Server tools (web_search, ...) have a versioned type and no input_schema: never "called".
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or not isinstance(choice, dict) or choice.get("type") == "none":
        return []
    if choice.get("type") == "tool":
        chosen = [t for t in tools if t.get("name") == choice.get("name")]
        if not chosen:
            raise BadRequest(f"tool_choice names a tool not in tools: {choice.get('name')!r}")
    else:
        parallel = not choice.get("disable_parallel_tool_use", False)
        chosen = tools[:2] if parallel and len(tools) >= 2 else tools[:1]
    return [
        ToolUse(short_id("toolu_", t.get("name"), i, last_text), str(t.get("name", "")),
                sample_from_schema(t.get("input_schema") or {"type": "object"}))
        for i, t in enumerate(chosen)
    ]  # fmt: skip


def _block_text(content: Any) -> str:
    """Text blocks of a user turn, tool_result blocks excluded."""
    if isinstance(content, list):
        return content_text([b for b in content if isinstance(b, dict) and b.get("type") == "text"])
    return content_text(content)


def _plan(body: JSONDict) -> tuple[str, list[ToolUse]]:
    messages = body["messages"]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    results = _tool_results(last.get("content"))
    if last.get("role") == "user" and results:
        return reply_text(content_text(results[-1].get("content")), tool_result=True), []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last_text = _block_text(users[-1].get("content")) if users else ""
    if last.get("role") == "user":
        tools = _pick_tools(body, last_text)
        if tools:
            return "", tools
    if last.get("role") == "assistant":
        return continue_from(_block_text(last.get("content")), reply_text(last_text)), []
    return reply_text(last_text), []


def _validate(body: JSONDict) -> tuple[str, int]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("max_tokens: Field required (an integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise BadRequest("system: Input should be a valid string or a list of text blocks")
    return model, max_tokens


# --- POST /v1/messages ---------------------------------------------------------------------


async def messages(call: Call) -> web.StreamResponse:
    body = call.body
    model, max_tokens = _validate(body)
    text, tools = _plan(body)
    if tools:
        pieces: list[str] = []
        output_tokens = sum(count_tokens(t.name) + count_tokens(t.json) for t in tools)
        stop_reason = "tool_use"
    else:
        pieces, output_tokens, truncated = token_pieces(text, max_tokens)
        stop_reason = "max_tokens" if truncated else "end_turn"
    usage = usage_for(body, output_tokens)
    message: JSONDict = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if body.get("stream") is True:
        return await _stream(call, message, pieces, tools, stop_reason, usage)
    if tools:
        message["content"] = [
            {"type": "tool_use", "id": t.id, "name": t.name, "input": t.input} for t in tools
        ]
    else:
        message["content"] = [{"type": "text", "text": "".join(pieces)}]
    message["stop_reason"] = stop_reason
    if not call.no_usage:
        message["usage"] = usage
    return json_response(message, headers=call.extra_headers)


async def _stream(
    call: Call, message: JSONDict, pieces: list[str], tools: list[ToolUse], stop_reason: str, usage: JSONDict
) -> web.StreamResponse:
    stream = SSEStream(call)
    await stream.start()

    async def send(event: str, data: JSONDict, kind: str = "meta") -> None:
        await stream.send({"type": event, **data}, event=event, kind=kind)

    start = dict(message)
    if not call.no_usage:
        # message_start carries the prompt side; output_tokens grows in message_delta.
        start["usage"] = {**usage, "output_tokens": 1}
    await send("message_start", {"message": start})
    if tools:
        for index, tool in enumerate(tools):
            block = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
            await send("content_block_start", {"index": index, "content_block": block})
            if index == 0:
                await send("ping", {})
            for piece in split_pieces(tool.json):
                delta = {"type": "input_json_delta", "partial_json": piece}
                await send("content_block_delta", {"index": index, "delta": delta}, "content")
            await send("content_block_stop", {"index": index})
    else:
        await send("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        await send("ping", {})
        for piece in pieces:
            delta = {"type": "text_delta", "text": piece}
            await send("content_block_delta", {"index": 0, "delta": delta}, "content")
        await send("content_block_stop", {"index": 0})
    final: JSONDict = {"delta": {"stop_reason": stop_reason, "stop_sequence": None}}
    if not call.no_usage:
        final["usage"] = {"output_tokens": usage["output_tokens"]}
    await send("message_delta", final, "end")
    await send("message_stop", {}, "end")
    return await stream.finish()
