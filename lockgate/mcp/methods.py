"""The MCP methods the gateway answers itself or fans out: lists merged, calls routed.

In the aggregate ``/mcp`` every name is ``server__name`` (tools, prompts) and every
resource URI ``server__uri`` (templates ``server__template``, so a URI the client fills
in from one comes back prefixed too); on ``/mcp/{server}`` names pass through unchanged.
Server names never contain ``_``, so the first ``__`` splits any prefixed name or URI back
into (server, the server's own name): ``orders__orders://order/7`` is ``orders://order/7``
of ``orders``. URIs in answers (read contents, embedded resources, resource links) get the
same prefix on the way back. Lists show only what the caller may use; calls are checked
before they leave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lockgate.governance.auth import Principal
from lockgate.mcp.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, UNKNOWN_SERVER, McpError
from lockgate.mcp.policy import (
    check_approved_pin,
    check_call,
    check_pin,
    check_server_status,
    listed,
    pin_hidden,
    server_refusal,
)
from lockgate.mcp.registry import SEPARATOR, AccessRule, McpRegistry, McpServer
from lockgate.mcp.session_codec import SessionState
from lockgate.telemetry.records import McpOrigin

log = logging.getLogger("lockgate.mcp")

# Methods whose result comes from one server, named in the params.
ROUTED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
LISTS = {
    "tools/list": ("tools", "name"),
    "prompts/list": ("prompts", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
}


@dataclass(slots=True)
class CallContext:
    principal: Principal
    registry: McpRegistry
    endpoint: McpServer | None  # None: the aggregate /mcp
    era: str  # modern | legacy
    session: SessionState | None = None
    session_id: str | None = None  # the caller's Mcp-Session-Id (handshake era): its notices' outbox
    progress: Callable[[dict[str, Any]], None] | None = None  # this request's progress, on its own stream
    rules: tuple[AccessRule, ...] = ()
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    trace: tuple[str, str] | None = None  # (trace id from traceparent, this call's span id)
    origin: McpOrigin | None = None  # what the call's span needs (telemetry/tracing.py)

    def servers(self) -> list[McpServer]:
        """Servers this caller can reach here: usable, allowed by the rules, enabled."""
        candidates = (
            [self.endpoint]
            if self.endpoint is not None
            else self.registry.servers_for(self.principal.workspace_id, self.principal.key_id)
        )
        return [s for s in candidates if s.status == "enabled" and server_refusal(s, self.rules) is None]

    def locate(self, name: str) -> tuple[McpServer, str]:
        """The server and the server's own name for ``name`` (``server__tool`` in the aggregate)."""
        if self.endpoint is not None:
            return self.endpoint, name
        server_name, sep, inner = name.partition(SEPARATOR)
        server = self.registry.latest.get(server_name) if sep else None
        if server is None or not server.usable_by(self.principal.workspace_id, self.principal.key_id):
            raise McpError(
                UNKNOWN_SERVER, f"No MCP server for {name!r}; names here are server{SEPARATOR}name."
            )
        return server, inner

    def upstream_session(self, server: McpServer) -> str | None:
        return self.session.upstream.get(server.address) if self.session is not None else None


def prefixed(ctx: CallContext, server: McpServer, item: dict[str, Any], key: str) -> dict[str, Any]:
    if ctx.endpoint is not None:
        return item
    renamed = {**item, key: f"{server.name}{SEPARATOR}{item[key]}"}
    if key != "name" and isinstance(item.get("name"), str):
        renamed["name"] = f"{server.name}{SEPARATOR}{item['name']}"
    return renamed


def routed_target(ctx: CallContext, method: str, params: dict[str, Any]) -> tuple[McpServer, str]:
    key = ROUTED[method]
    name = params.get(key)
    if not isinstance(name, str) or not name:
        raise McpError(INVALID_PARAMS, f"Invalid params: {method} needs {key!r} as a non-empty string.")
    return ctx.locate(name)


def check_routed(
    ctx: CallContext, method: str, server: McpServer, inner: str, params: dict[str, Any]
) -> None:
    """Status, access rules and argument shape, before anything leaves for the server."""
    if method == "tools/call":
        check_call(server, inner, ctx.rules)
        args = params.get("arguments", {})
        if args is not None and not isinstance(args, dict):
            raise McpError(INVALID_PARAMS, "Invalid params: 'arguments' must be an object.")
    else:
        check_server_status(server)
        refusal = server_refusal(server, ctx.rules)
        if refusal is not None:
            check_call(server, "", ctx.rules)  # raises FORBIDDEN naming the rule


def pin_verdict(ctx: CallContext, server: McpServer, tool: str, current: str | None) -> None:
    """The session's pin (handshake era), then the approved pin in the store."""
    pinned = ctx.session.pins.get(f"{server.address}{SEPARATOR}{tool}") if ctx.session else None
    verdict = check_pin(server, tool, pinned, current)
    if verdict is not None:
        ctx.verdicts.append(verdict)
    approved = ctx.registry.pins.get(server.id, {}).get(tool)
    verdict = check_approved_pin(server, tool, approved, current)
    if verdict is not None:
        ctx.verdicts.append(verdict)


async def gather_list(ctx: CallContext, method: str, fetch: Any, tools_of: Any) -> dict[str, Any]:
    """One merged list from every reachable server; in the aggregate a failing server is left out."""
    field_name, key = LISTS[method]
    servers = ctx.servers()
    if ctx.endpoint is not None and not servers:
        check_server_status(ctx.endpoint)
        check_call(ctx.endpoint, "", ctx.rules)

    async def one(server: McpServer) -> list[dict[str, Any]]:
        if method == "tools/list":
            listing = await tools_of(server)
            approved = ctx.registry.pins.get(server.id, {})
            return [
                prefixed(ctx, server, t, "name")
                for t in listing.tools
                if listed(server, t["name"], ctx.rules)
                and not pin_hidden(server, t["name"], approved.get(t["name"]), listing.hashes.get(t["name"]))
            ]
        result = await fetch(server, method, {})
        return [prefixed(ctx, server, item, key) for item in result.get(field_name) or () if key in item]

    results = await asyncio.gather(*(one(s) for s in servers), return_exceptions=True)
    merged: list[dict[str, Any]] = []
    for server, result in zip(servers, results, strict=True):
        if isinstance(result, BaseException):
            if ctx.endpoint is not None:
                raise result
            if isinstance(result, McpError) and result.code == METHOD_NOT_FOUND:
                continue
            log.warning("%s from %s left out of the aggregate: %s", method, server.address, result)
            continue
        merged.extend(result)
    return {field_name: merged}


def prefixed_result(ctx: CallContext, server: McpServer, result: dict[str, Any]) -> dict[str, Any]:
    """URIs inside a routed call's answer, prefixed like the lists' (aggregate only; rewritten in
    place: the dict was just decoded and is this call's own)."""
    if ctx.endpoint is not None:
        return result
    for item in result.get("contents") or ():  # resources/read
        _prefix_uri(server, item)
    blocks = list(result.get("content") or ())  # tools/call
    blocks.extend(m.get("content") for m in result.get("messages") or () if isinstance(m, dict))
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "resource_link":
            _prefix_uri(server, block)
        elif block.get("type") == "resource" and isinstance(block.get("resource"), dict):
            _prefix_uri(server, block["resource"])
    return result


def prefixed_notice(ctx: CallContext, server: McpServer, message: dict[str, Any]) -> dict[str, Any]:
    """An upstream's notification as the caller sees it: a resource URI gets the aggregate's prefix."""
    params = message.get("params")
    if ctx.endpoint is not None or message.get("method") != "notifications/resources/updated":
        return message
    if not isinstance(params, dict) or not isinstance(params.get("uri"), str):
        return message
    return {**message, "params": {**params, "uri": f"{server.name}{SEPARATOR}{params['uri']}"}}


def _prefix_uri(server: McpServer, item: Any) -> None:
    if isinstance(item, dict) and isinstance(item.get("uri"), str):
        item["uri"] = f"{server.name}{SEPARATOR}{item['uri']}"


def unprefixed_params(ctx: CallContext, method: str, params: dict[str, Any], inner: str) -> dict[str, Any]:
    return params if ctx.endpoint is not None else {**params, ROUTED[method]: inner}
