"""In-flight upstream calls (for the kill switch) and the tool-call record's argument redaction."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from lockgate.guardrails.pii import detect
from lockgate.mcp.jsonrpc import KILLED, McpError
from lockgate.mcp.policy import killed
from lockgate.mcp.registry import McpRegistry

_MAX_DEPTH = 20


class InFlight:
    """Each upstream call runs as its own task, so a kill can cut it while the caller still gets an answer."""

    def __init__(self) -> None:
        self._calls: dict[asyncio.Task[Any], tuple[str, str | None]] = {}
        self._cut: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._calls)

    async def run(self, address: str, tool: str | None, call: Coroutine[Any, Any, Any]) -> Any:
        task = asyncio.ensure_future(call)
        self._calls[task] = (address, tool)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task in self._cut:
                subject = f"the tool {tool!r} of {address}" if tool else address
                raise McpError(
                    KILLED, f"Cancelled by the kill switch: {subject} was killed mid-call."
                ) from None
            task.cancel()  # the caller went away: the upstream call goes too
            raise
        finally:
            self._calls.pop(task, None)
            self._cut.discard(task)

    def cut(self, registry: McpRegistry) -> int:
        """Cancel every call to a server or tool that ``registry`` marks killed (or no longer has)."""
        count = 0
        for task, (address, tool) in list(self._calls.items()):
            if not task.done() and killed(registry.by_address.get(address), tool):
                self._cut.add(task)
                task.cancel()
                count += 1
        return count


def redact(value: Any, depth: int = 0) -> Any:
    """Arguments as the record keeps them: PII in strings replaced by its label (guardrails' detector)."""
    if depth > _MAX_DEPTH:
        return "[truncated]"
    if isinstance(value, str):
        found = detect(value)
        if not found:
            return value
        parts, last = [], 0
        for start, end, _entity, label in found:
            parts.append(value[last:start])
            parts.append(f"[{label}]")
            last = end
        parts.append(value[last:])
        return "".join(parts)
    if isinstance(value, dict):
        return {k: redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value]
    return value
