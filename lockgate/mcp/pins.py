"""Tool-definition pins in the store: pinned on first discovery, flagged on change, re-approved by an admin.

Every tool list the pool fetches from an upstream is compared with the snapshot's pins (off the
request path, in a task). A tool without a pin is pinned; a tool whose definition hash differs
from its pin marks the pin ``changed`` with what the upstream serves now. Both are audited config
changes (the audit record holds the old and the new definition: the diff), and reach every worker
with the snapshot. On ``tools/call`` a changed definition is a verdict, and under the server's
``pin_policy: block`` a refusal, until ``POST /admin/v1/mcp/servers/{id}/pins/{tool}/approve``
re-pins it. Workers racing to pin one tool meet the unique (server, tool) constraint; the loser
drops its write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lockgate.errors import Conflict
from lockgate.mcp.registry import McpRegistry, McpServer
from lockgate.store.control import MCP_SERVER, MCP_TOOL_PIN, AuditActor, ControlStore

log = logging.getLogger("lockgate.mcp")

_ACTOR = AuditActor("mcp", "tool discovery")


def pinned_definition(tool: dict[str, Any]) -> dict[str, Any]:
    """What a pin keeps of a tool: the parts its hash covers."""
    return {k: tool.get(k) for k in ("description", "inputSchema", "outputSchema") if k in tool}


class PinBook:
    def __init__(
        self,
        control: ControlStore,
        changed: Callable[[int | None], Awaitable[None]],
        registry: Callable[[], McpRegistry],
    ) -> None:
        self.control = control
        self.changed = changed
        self.registry = registry
        self._seen: set[tuple[str, str, str]] = set()  # (server id, tool, hash) written already
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, server: McpServer, tools: list[dict[str, Any]], hashes: dict[str, str]) -> None:
        """A fresh tool list from ``server``: pin what is new, flag what changed (in a task)."""
        if server.pin_policy == "off":
            return
        pins = self.registry().pins.get(server.id, {})
        news = [
            (t, hashes[t["name"]])
            for t in tools
            if pins.get(t["name"]) != hashes[t["name"]]
            and (server.id, t["name"], hashes[t["name"]]) not in self._seen
        ]
        if not news:
            return
        for tool, digest in news:
            self._seen.add((server.id, tool["name"], digest))
        task = asyncio.get_running_loop().create_task(self._write(server, news))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, server: McpServer, news: list[tuple[dict[str, Any], str]]) -> None:
        try:
            async with self.control.change(_ACTOR) as tx:
                for tool, digest in news:
                    row = await tx.find(MCP_TOOL_PIN, server_id=server.id, tool=tool["name"])
                    definition = pinned_definition(tool)
                    if row is None:
                        values = {
                            "server_id": server.id,
                            "workspace_id": await _owner(tx, server.id),
                            "tool": tool["name"],
                            "hash": digest,
                            "definition": definition,
                            "status": "approved",
                        }
                        await tx.create(MCP_TOOL_PIN, values, action="pin")
                    elif row["hash"] != digest and row["current_hash"] != digest:
                        flagged = {
                            "status": "changed",
                            "current_hash": digest,
                            "current_definition": definition,
                        }
                        await tx.update(MCP_TOOL_PIN, row["id"], flagged, action="definition_changed")
                        log.warning("MCP tool %s of %s changed its definition", tool["name"], server.address)
                    elif row["hash"] == digest and row["status"] == "changed":  # changed back
                        back = {"status": "approved", "current_hash": None, "current_definition": None}
                        await tx.update(MCP_TOOL_PIN, row["id"], back, action="definition_restored")
            await self.changed(tx.version if tx.changed else None)
        except Conflict:  # another worker pinned it first; its snapshot brings the pin here
            for tool, digest in news:
                self._seen.discard((server.id, tool["name"], digest))
        except Exception:
            log.exception("recording the tool pins of %s failed", server.address)
            for tool, digest in news:
                self._seen.discard((server.id, tool["name"], digest))


async def _owner(tx: Any, server_id: str) -> str | None:
    row = await tx.get(MCP_SERVER, server_id)
    return row["workspace_id"] if row is not None else None
