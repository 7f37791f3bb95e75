"""Who may see and call what: server visibility, access rules, tool status, pins.

Every check is a plain function of the snapshot's registry; a refusal is an
``McpError`` whose message names the rule (or the status) that refused, so an
agent's operator can find it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

import orjson

from lockgate.mcp.jsonrpc import DISABLED, FORBIDDEN, KILLED, PIN_CHANGED, McpError
from lockgate.mcp.registry import SEPARATOR, AccessRule, McpServer


def _any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def server_refusal(server: McpServer, rules: tuple[AccessRule, ...]) -> str | None:
    """Why these rules keep the caller off ``server``, or None."""
    for rule in rules:
        if _any(server.name, rule.deny_servers):
            return f"the access rule {rule.name!r} denies the server {server.name!r}"
        if rule.allow_servers is not None and not _any(server.name, rule.allow_servers):
            return f"the access rule {rule.name!r} does not allow the server {server.name!r}"
    return None


def tool_refusal(server: McpServer, tool: str, rules: tuple[AccessRule, ...]) -> str | None:
    """Why the caller may not use ``server__tool``, or None. Every rule in scope must allow it."""
    refusal = server_refusal(server, rules)
    if refusal is not None:
        return refusal
    qualified = f"{server.name}{SEPARATOR}{tool}"
    for rule in rules:
        if _any(qualified, rule.deny_tools):
            return f"the access rule {rule.name!r} denies the tool {qualified!r}"
        if rule.allow_tools is not None and not _any(qualified, rule.allow_tools):
            return f"the access rule {rule.name!r} does not allow the tool {qualified!r}"
    return None


def listed(server: McpServer, tool: str, rules: tuple[AccessRule, ...]) -> bool:
    return server.tool_status.get(tool) is None and tool_refusal(server, tool, rules) is None


def check_server_status(server: McpServer) -> None:
    if server.status == "killed":
        raise McpError(KILLED, f"The MCP server {server.name!r} was killed: {_reason(server.status_reason)}")
    if server.status == "disabled":
        raise McpError(
            DISABLED, f"The MCP server {server.name!r} is disabled: {_reason(server.status_reason)}"
        )


def check_call(server: McpServer, tool: str, rules: tuple[AccessRule, ...]) -> None:
    """Status first (a kill wins over everything), then the access rules."""
    check_server_status(server)
    status = server.tool_status.get(tool)
    if status == "killed":
        raise McpError(KILLED, f"The tool {tool!r} of {server.name!r} was killed.")
    if status == "disabled":
        raise McpError(DISABLED, f"The tool {tool!r} of {server.name!r} is disabled.")
    refusal = tool_refusal(server, tool, rules)
    if refusal is not None:
        raise McpError(FORBIDDEN, f"Forbidden: {refusal}.", {"rule": refusal})


def killed(server: McpServer | None, tool: str | None) -> bool:
    """Whether an in-flight call to ``tool`` must be cut under this registry."""
    if server is None or server.status == "killed":
        return True
    return tool is not None and server.tool_status.get(tool) == "killed"


def _reason(reason: str | None) -> str:
    return reason or "no reason given"


def definition_hash(tool: dict[str, Any]) -> str:
    """The pin of a tool definition: its description and schemas, nothing cosmetic."""
    pinned = [tool.get("description"), tool.get("inputSchema"), tool.get("outputSchema")]
    return hashlib.sha256(orjson.dumps(pinned, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def check_pin(server: McpServer, tool: str, pinned: str | None, current: str | None) -> dict[str, Any] | None:
    """A changed definition is a verdict; under ``pin_policy: block`` also a refusal."""
    if pinned is None or current is None or pinned == current or server.pin_policy == "off":
        return None
    verdict = {"check": "tool_pin", "tool": tool, "pinned": pinned, "current": current}
    if server.pin_policy == "block":
        raise McpError(
            PIN_CHANGED,
            f"The definition of {server.name}{SEPARATOR}{tool} changed since this session pinned it; "
            "start a new session to accept the change.",
            verdict,
        )
    return {**verdict, "verdict": "flag"}


def check_approved_pin(
    server: McpServer, tool: str, approved: str | None, current: str | None
) -> dict[str, Any] | None:
    """The stored pin (mcp/pins.py): a definition other than the approved one is a verdict, and
    under ``pin_policy: block`` a refusal until an admin approves the new definition."""
    if approved is None or current is None or approved == current or server.pin_policy == "off":
        return None
    verdict = {"check": "tool_pin_approved", "tool": tool, "approved": approved, "current": current}
    if server.pin_policy == "block":
        raise McpError(
            PIN_CHANGED,
            f"The definition of {server.name}{SEPARATOR}{tool} changed since it was approved; "
            "it is blocked until an admin approves the new definition.",
            {**verdict, "verdict": "deny"},
        )
    return {**verdict, "verdict": "flag"}


def pin_hidden(server: McpServer, tool: str, approved: str | None, current: str | None) -> bool:
    """Under ``block`` a tool whose definition changed is left out of tools/list too."""
    return server.pin_policy == "block" and approved is not None and approved != current
