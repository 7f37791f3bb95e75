"""The worker's upstream connections and cached tool lists, one per registered server version.

Connections are made on first use and kept (pooled upstream sessions, one stdio
process); a registry change that alters a server's connection (URL, command,
credential) replaces it, and a server that leaves the registry is closed. Tool
lists are cached per server version and refreshed in the background when older
than ``refresh_s``; when the server says ``notifications/tools/list_changed`` the next
list is fetched before it is served, and ``on_changed`` is told (the proxy tells clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from lockgate.mcp.jsonrpc import UPSTREAM_ERROR, McpError
from lockgate.mcp.policy import definition_hash
from lockgate.mcp.registry import McpRegistry, McpServer
from lockgate.mcp.upstream.base import Upstream
from lockgate.mcp.upstream.sse import SseUpstream
from lockgate.mcp.upstream.stdio import StdioUpstream
from lockgate.mcp.upstream.streamable_http import StreamableHttpUpstream

log = logging.getLogger("lockgate.mcp")
_MAX_PAGES = 50


@dataclass(slots=True)
class ToolList:
    tools: list[dict[str, Any]]
    hashes: dict[str, str]
    fetched_at: float
    stale: bool = False


@dataclass(slots=True)
class _Entry:
    connection_id: str
    upstream: Upstream
    tools: ToolList | None = None
    refreshing: asyncio.Task[None] | None = field(default=None, repr=False)


class UpstreamPool:
    def __init__(
        self, http: Callable[[], aiohttp.ClientSession], *, stdio_allow_list: str, refresh_s: float
    ) -> None:
        self._http = http
        self._allow = stdio_allow_list
        self.refresh_s = refresh_s
        self._entries: dict[str, _Entry] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # Told of every fresh tool list (mcp/pins.py pins and flags definitions from it).
        self.on_listing: Callable[[McpServer, list[dict[str, Any]], dict[str, str]], None] | None = None
        # Told the address of a server that said its tool list changed.
        self.on_changed: Callable[[str], None] | None = None

    def get(self, server: McpServer) -> Upstream:
        entry = self._entries.get(server.address)
        if entry is None or entry.connection_id != server.connection_id:
            if entry is not None:
                self._close_later(entry.upstream)
            entry = _Entry(server.connection_id, self._connect(server))
            entry.upstream.on_list_changed = lambda: self._invalidate(server.address)
            self._entries[server.address] = entry
        return entry.upstream

    def _connect(self, server: McpServer) -> Upstream:
        if server.transport == "stdio":
            return StdioUpstream(server.address, server.command, server.env, self._allow)
        if server.url is None:
            raise McpError(UPSTREAM_ERROR, f"{server.name} has no URL.")
        if server.transport == "sse":
            return SseUpstream(server.address, server.url, server.headers, self._http)
        return StreamableHttpUpstream(server.address, server.url, server.headers, self._http)

    async def tools(self, server: McpServer) -> ToolList:
        """The server's tools, from the cache when there is one (a stale one is refreshed behind)."""
        self.get(server)
        entry = self._entries[server.address]
        cached = entry.tools
        if cached is None:
            return await self._fetch(server, entry)
        if cached.stale:  # the server said it changed: an old list must not be served again
            try:
                return await self._fetch(server, entry)
            except McpError as exc:
                log.warning("refetching the changed tools of %s failed: %s", server.address, exc.message)
                cached.stale = False  # one caller waited on it; the next refresh is the timed one
                return cached
        if time.monotonic() - cached.fetched_at > self.refresh_s and (
            entry.refreshing is None or entry.refreshing.done()
        ):
            entry.refreshing = asyncio.create_task(self._refresh(server, entry))
        return cached

    def cached(self, server: McpServer) -> ToolList | None:
        entry = self._entries.get(server.address)
        return entry.tools if entry is not None and entry.connection_id == server.connection_id else None

    async def _refresh(self, server: McpServer, entry: _Entry) -> None:
        try:
            await self._fetch(server, entry)
        except McpError as exc:
            log.warning("refreshing the tools of %s failed: %s", server.address, exc.message)

    async def _fetch(self, server: McpServer, entry: _Entry) -> ToolList:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"cursor": cursor} if cursor else {}
            result = await entry.upstream.request("tools/list", params, timeout_s=server.timeout_s)
            tools.extend(t for t in result.get("tools") or () if isinstance(t, dict) and "name" in t)
            cursor = result.get("nextCursor")
            if not cursor:
                break
        listing = ToolList(tools, {t["name"]: definition_hash(t) for t in tools}, time.monotonic())
        entry.tools = listing
        if self.on_listing is not None:
            self.on_listing(server, listing.tools, listing.hashes)
        return listing

    def _invalidate(self, address: str) -> None:
        entry = self._entries.get(address)
        if entry is not None and entry.tools is not None:
            entry.tools.stale = True
        if self.on_changed is not None:
            self.on_changed(address)

    def sync(self, registry: McpRegistry) -> None:
        """Close connections of server versions that left the registry or changed connection."""
        for address, entry in list(self._entries.items()):
            server = registry.by_address.get(address)
            if server is None or server.connection_id != entry.connection_id:
                del self._entries[address]
                self._close_later(entry.upstream)

    def _close_later(self, upstream: Upstream) -> None:
        task = asyncio.get_running_loop().create_task(upstream.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        entries, self._entries = self._entries, {}
        for entry in entries.values():
            if entry.refreshing is not None:
                entry.refreshing.cancel()
            with contextlib.suppress(Exception):
                await entry.upstream.close()
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task
