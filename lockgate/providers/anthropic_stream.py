"""Stream translation between Anthropic Messages SSE events and canonical chat chunks.

``MessagesStreamToChat``: an Anthropic upstream stream -> ``chat.completion.chunk`` dicts.
``ChatStreamToMessages``: canonical chunks (from any provider) -> Anthropic SSE events, for
clients of Lockgate's ``/v1/messages``. Both are pure state machines: one instance per stream,
fed decoded events, no I/O. The rules are listed in ``lockgate.providers.anthropic``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from lockgate.errors import UpstreamError
from lockgate.providers.anthropic_upstream import (
    ERROR_TYPES,
    STOP_REASONS,
    finish_reason,
    usage_from_chat,
    usage_to_chat,
)


class MessagesStreamToChat:
    """Anthropic stream events -> canonical chat chunks (the ``StreamTranslator`` protocol).

    ``usage`` is the canonical usage seen so far (``None`` until ``message_start``); it is
    complete once ``message_delta`` arrived, so a caller can settle from it even when the
    stream is relayed untranslated.
    """

    def __init__(self, model: str) -> None:
        self.usage: dict[str, Any] | None = None
        self._id = ""
        self._model = model
        self._created = int(time.time())
        self._raw_usage: dict[str, Any] = {}
        # Anthropic content block index -> chat tool call index, for tool_use blocks only.
        self._tool_index: dict[int, int] = {}
        self._tool_args_seen: set[int] = set()
        self._usage_sent = False

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type") or event
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = message.get("id") or self._id
            self._model = message.get("model") or self._model
            self._update_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(data.get("index", 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(data.get("index", 0), data.get("delta") or {})
        if kind == "message_delta":
            self._update_usage(data.get("usage"))
            reason = finish_reason((data.get("delta") or {}).get("stop_reason"))
            return [self._chunk({}, reason)] if reason else []
        if kind == "content_block_stop":
            return self._block_stop(data.get("index", 0))
        if kind == "message_stop":
            return self._usage_chunk()
        if kind == "error":
            err = data.get("error") or {}
            anthropic_type = err.get("type") or "api_error"
            raise UpstreamError(
                err.get("message") or "anthropic stream error",
                provider="anthropic",
                type=ERROR_TYPES.get(anthropic_type, "api_error"),
                code=anthropic_type,
            )
        return []  # ping and future event types carry nothing for chat

    def finish(self) -> list[dict[str, Any]]:
        # A stream that ended without message_stop still owes its usage if any was seen.
        return self._usage_chunk() if self.usage is not None else []

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "tool_use":
            tool_index = self._tool_index[index] = len(self._tool_index)
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning_content": block["thinking"]})]
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            # Server-tool blocks also stream input_json_delta; only client tool_use blocks map.
            partial = delta.get("partial_json")
            if index not in self._tool_index or not partial:
                return []
            self._tool_args_seen.add(index)
            call = {"index": self._tool_index[index], "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking_delta":
            return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
        return []  # signature_delta, citations_delta

    def _block_stop(self, index: int) -> list[dict[str, Any]]:
        if index not in self._tool_index or index in self._tool_args_seen:
            return []
        # A tool without arguments streams no input_json_delta, but chat clients parse
        # the accumulated arguments as JSON and "" is not JSON.
        call = {"index": self._tool_index[index], "function": {"arguments": "{}"}}
        return [self._chunk({"tool_calls": [call]})]

    def _update_usage(self, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        # message_delta counts are cumulative: overwrite, but keep what it omits.
        self._raw_usage.update({key: value for key, value in usage.items() if value is not None})
        self.usage = usage_to_chat(self._raw_usage)

    def _usage_chunk(self) -> list[dict[str, Any]]:
        if self._usage_sent or self.usage is None:
            return []
        self._usage_sent = True
        return [self._envelope([], usage=self.usage)]

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
        return self._envelope([choice])

    def _envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
            **extra,
        }


def message_id(chat_id: Any) -> str:
    """A ``msg_`` id derived from a chat completion id, so logs can relate the two."""
    if not isinstance(chat_id, str) or not chat_id:
        return f"msg_{uuid.uuid4().hex}"
    if chat_id.startswith("msg_"):
        return chat_id
    return "msg_" + chat_id.removeprefix("chatcmpl-")


Event = tuple[str, dict[str, Any]]


class ChatStreamToMessages:
    """Canonical chat chunks -> Anthropic SSE events ``(event name, data)``.

    Content blocks are opened and closed in order: text, then one ``tool_use`` block per
    tool call; a new tool call index closes the open block. Arguments arriving late for a
    tool call whose block was already closed are still sent with that block's index (SDKs
    accumulate by index). ``message_delta`` and ``message_stop`` come from ``finish()`` so a
    usage chunk arriving after the finish_reason chunk is included. ``message_start``
    reports ``input_tokens: 0`` when the first chunk carries no usage (chat streams report
    usage last); the real counts follow in ``message_delta.usage``, which Anthropic SDKs
    apply to the message.
    """

    def __init__(self, model: str) -> None:
        self.usage: dict[str, Any] | None = None
        self._model = model
        self._started = False
        self._next_block = 0
        self._open: int | None = None  # index of the open content block
        self._open_kind = ""
        self._tool_blocks: dict[int, int] = {}  # chat tool call index -> block index
        self._stop_reason: str | None = None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if not self._started:
            events.append(self._message_start(chunk))
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # /v1/messages has one answer; n > 1 cannot be asked for
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                events.extend(self._text(text))
            for position, call in enumerate(delta.get("tool_calls") or []):
                events.extend(self._tool_call(call, position))
            if choice.get("finish_reason"):
                self._stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return events

    def finish(self) -> list[Event]:
        events: list[Event] = []
        if not self._started:
            events.append(self._message_start({}))
        events.extend(self._close())
        usage: dict[str, Any] = usage_from_chat(self.usage) if self.usage else {"output_tokens": 0}
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _message_start(self, chunk: dict[str, Any]) -> Event:
        self._started = True
        usage = usage_from_chat(chunk["usage"]) if chunk.get("usage") else {}
        message = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0, **usage},
        }
        return "message_start", {"type": "message_start", "message": message}

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open_kind != "text":
            events.extend(self._open_block({"type": "text", "text": ""}, "text"))
        events.append(self._delta(self._open, {"type": "text_delta", "text": text}))
        return events

    def _tool_call(self, call: dict[str, Any], position: int) -> list[Event]:
        events: list[Event] = []
        index = call.get("index")
        if index is None:
            index = position  # some OpenAI-compatible servers omit it
        function = call.get("function") or {}
        if index not in self._tool_blocks:
            block = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": {},
            }
            events.extend(self._open_block(block, "tool_use"))
            self._tool_blocks[index] = self._next_block - 1
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append(self._delta(self._tool_blocks[index], delta))
        return events

    def _open_block(self, block: dict[str, Any], kind: str) -> list[Event]:
        events = self._close()
        self._open, self._open_kind = self._next_block, kind
        self._next_block += 1
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._open, "content_block": block},
            )
        )
        return events

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        event = ("content_block_stop", {"type": "content_block_stop", "index": self._open})
        self._open, self._open_kind = None, ""
        return [event]

    @staticmethod
    def _delta(index: int | None, delta: dict[str, Any]) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
