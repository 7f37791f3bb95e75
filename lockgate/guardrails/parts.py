"""The text of a request or an answer as ``Part``s, and how a rewritten part goes back in place.

Works on the client's own wire format (OpenAI chat/completions/embeddings, or
Anthropic Messages), so a guardrail sees exactly what the client sent and what
it will receive, whatever provider serves the request. Each part comes with a
setter that writes its new text back into the decoded body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lockgate.guardrails.base import Part

Setter = Callable[[str], None]
Extracted = tuple[list[Part], list[Setter]]


def _set_key(container: Any, key: Any) -> Setter:
    def put(text: str) -> None:
        container[key] = text

    return put


class _Collector:
    __slots__ = ("parts", "setters")

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.setters: list[Setter] = []

    def add(self, container: Any, key: Any, role: str, name: str | None = None) -> None:
        value = container[key]
        if isinstance(value, str) and value:
            self.parts.append(Part(value, role, name))
            self.setters.append(_set_key(container, key))

    def content(self, container: dict[str, Any], role: str) -> None:
        """A string content, or the text items of a list of content parts/blocks."""
        content = container.get("content")
        if isinstance(content, str):
            self.add(container, "content", role)
        elif isinstance(content, list):
            for block in content:
                kind = block.get("type") if isinstance(block, dict) else None
                if kind in ("text", "input_text", "output_text") and "text" in block:
                    self.add(block, "text", role)

    def leaves(self, value: Any, role: str, name: str | None) -> None:
        """Every string inside a JSON value (Anthropic tool_use input is an object, not text)."""
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str):
                    self.add(value, key, role, name)
                else:
                    self.leaves(item, role, name)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    self.add(value, i, role, name)
                else:
                    self.leaves(item, role, name)

    def openai_tool_calls(self, message: dict[str, Any]) -> None:
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and "arguments" in fn:
                self.add(fn, "arguments", "tool_call", fn.get("name"))
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and "arguments" in legacy:
            self.add(legacy, "arguments", "tool_call", legacy.get("name"))

    def anthropic_blocks(self, container: dict[str, Any], role: str) -> None:
        content = container.get("content")
        if isinstance(content, str):
            self.add(container, "content", role)
            return
        for block in content or ():
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and "text" in block:
                self.add(block, "text", role)
            elif kind == "tool_use":
                self.leaves(block.get("input"), "tool_call", block.get("name"))
            elif kind == "tool_result":
                self.anthropic_blocks(block, "tool")


def request_parts(endpoint: str, data: dict[str, Any]) -> Extracted:
    """``endpoint``: chat, completions, embeddings or messages (Anthropic)."""
    c = _Collector()
    if endpoint == "chat":
        for message in data.get("messages") or ():
            if isinstance(message, dict):
                c.content(message, str(message.get("role") or "user"))
                c.openai_tool_calls(message)
    elif endpoint == "messages":
        system = data.get("system")
        if isinstance(system, str):
            c.add(data, "system", "system")
        elif isinstance(system, list):
            for block in system:
                if isinstance(block, dict) and block.get("type") == "text" and "text" in block:
                    c.add(block, "text", "system")
        for message in data.get("messages") or ():
            if isinstance(message, dict):
                c.anthropic_blocks(message, str(message.get("role") or "user"))
    else:
        key = "prompt" if endpoint == "completions" else "input"
        value = data.get(key)
        if isinstance(value, str):
            c.add(data, key, "prompt")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    c.add(value, i, "prompt")
    return c.parts, c.setters


def response_parts(endpoint: str, data: dict[str, Any]) -> Extracted:
    """Generated text of a non-stream answer in the client's format."""
    c = _Collector()
    if endpoint == "messages":
        c.anthropic_blocks(data, "output")
    elif endpoint in ("chat", "completions"):
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("content"), str):
                    c.add(message, "content", "output")
                c.openai_tool_calls(message)
            elif isinstance(choice.get("text"), str):
                c.add(choice, "text", "output")
    return c.parts, c.setters
