"""The MCP registry as the data plane sees it: part of the config snapshot, immutable.

Built from ``mcp_servers`` and ``mcp_access_rules`` rows; upstream credentials are
decrypted here, once per snapshot, into the headers (or stdio environment) the
upstream connection sends, and never leave the process. ``/mcp/{name}`` resolves
to the latest non-retired version; ``/mcp/{name}@{version}`` to that version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType

import orjson

from lockgate.governance.secrets import SecretBox, SecretKeyError
from lockgate.mcp.action_policy import ConditionError, ToolPolicy, build_policy
from lockgate.store.control import Row

log = logging.getLogger("lockgate.mcp")

TRANSPORTS = ("streamable_http", "sse", "stdio")
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # no "_": "__" separates server and tool in /mcp
SEPARATOR = "__"


@dataclass(frozen=True, slots=True)
class McpServer:
    id: str
    name: str
    version: str
    latest: bool
    description: str
    transport: str
    url: str | None
    command: tuple[str, ...]
    env: Mapping[str, str]
    headers: Mapping[str, str]  # with the upstream credential injected
    status: str  # enabled | disabled | killed
    status_reason: str | None
    tool_status: Mapping[str, str]
    pin_policy: str  # off | flag | block
    timeout_s: float
    tags: tuple[str, ...]
    workspace_ids: frozenset[str] | None
    key_ids: frozenset[str] | None
    # Identity of the upstream connection: a pooled connection is replaced when this changes.
    connection_id: str = ""
    tool_costs: Mapping[str, float] = field(default_factory=dict)  # tool or pattern -> USD per call
    # Guardrail names run on tools/call arguments (input) and results (output); see tool_guard.py.
    input_guardrails: tuple[str, ...] = ()
    output_guardrails: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.name}@{self.version}"

    def price(self, tool: str) -> float:
        """USD per call of ``tool``: its own price, else the first pattern that matches, else 0."""
        if tool in self.tool_costs:
            return self.tool_costs[tool]
        return next((usd for pattern, usd in self.tool_costs.items() if fnmatchcase(tool, pattern)), 0.0)

    def usable_by(self, workspace_id: str, key_id: str) -> bool:
        if self.workspace_ids is not None and workspace_id not in self.workspace_ids:
            return False
        return self.key_ids is None or key_id in self.key_ids


@dataclass(frozen=True, slots=True)
class AccessRule:
    name: str
    scope_type: str  # workspace | key
    scope_id: str
    allow_servers: tuple[str, ...] | None
    deny_servers: tuple[str, ...]
    allow_tools: tuple[str, ...] | None
    deny_tools: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class McpRegistry:
    by_address: Mapping[str, McpServer] = field(default_factory=dict)  # "name@version"
    latest: Mapping[str, McpServer] = field(default_factory=dict)  # "name"
    rules: Mapping[tuple[str, str], tuple[AccessRule, ...]] = field(default_factory=dict)
    policies: Mapping[tuple[str, str], tuple[ToolPolicy, ...]] = field(default_factory=dict)
    # server id -> tool -> the approved definition hash (mcp_tool_pins)
    pins: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def resolve(self, address: str) -> McpServer | None:
        return self.by_address.get(address) if "@" in address else self.latest.get(address)

    def servers_for(self, workspace_id: str, key_id: str) -> list[McpServer]:
        """Latest versions this caller may reach (status and access rules are checked per call)."""
        return [s for s in self.latest.values() if s.usable_by(workspace_id, key_id)]

    def rules_for(self, workspace_id: str, key_id: str) -> tuple[AccessRule, ...]:
        return self.rules.get(("workspace", workspace_id), ()) + self.rules.get(("key", key_id), ())

    def policies_for(self, workspace_id: str, key_id: str) -> tuple[ToolPolicy, ...]:
        """Action policies in the order they are tried: the workspace's, then the key's."""
        return self.policies.get(("workspace", workspace_id), ()) + self.policies.get(("key", key_id), ())

    @property
    def all_servers(self) -> Iterable[McpServer]:
        return self.by_address.values()


def build_registry(
    servers: list[Row],
    rules: list[Row],
    secrets: SecretBox,
    policies: list[Row] | None = None,
    pins: list[Row] | None = None,
) -> McpRegistry:
    by_address: dict[str, McpServer] = {}
    latest: dict[str, McpServer] = {}
    for row in servers:
        if row["retired"]:
            continue
        server = _server(row, secrets)
        if server is None:
            continue
        by_address[server.address] = server
        if server.latest:
            latest[server.name] = server
    grouped: dict[tuple[str, str], list[AccessRule]] = {}
    for row in sorted(rules, key=lambda r: (r["created_at"], r["id"])):
        rule = AccessRule(
            name=row["name"],
            scope_type=row["scope_type"],
            scope_id=row["scope_id"],
            allow_servers=_patterns(row["allow_servers"]),
            deny_servers=_patterns(row["deny_servers"]) or (),
            allow_tools=_patterns(row["allow_tools"]),
            deny_tools=_patterns(row["deny_tools"]) or (),
        )
        grouped.setdefault((rule.scope_type, rule.scope_id), []).append(rule)
    return McpRegistry(
        by_address=MappingProxyType(by_address),
        latest=MappingProxyType(latest),
        rules=MappingProxyType({k: tuple(v) for k, v in grouped.items()}),
        policies=MappingProxyType(_policies(policies or [])),
        pins=MappingProxyType(_pins(pins or [])),
    )


def _pins(rows: list[Row]) -> dict[str, Mapping[str, str]]:
    grouped: dict[str, dict[str, str]] = {}
    for row in rows:
        grouped.setdefault(row["server_id"], {})[row["tool"]] = row["hash"]
    return {k: MappingProxyType(v) for k, v in grouped.items()}


def _policies(rows: list[Row]) -> dict[tuple[str, str], tuple[ToolPolicy, ...]]:
    grouped: dict[tuple[str, str], list[ToolPolicy]] = {}
    for row in sorted(rows, key=lambda r: (r["created_at"], r["id"])):
        try:
            policy = build_policy(row)
        except ConditionError as exc:  # validated on write; only a hand-edited row gets here
            if row["action"] == "allow":
                log.error("MCP tool policy %s skipped: %s", row["name"], exc)
                continue
            # A guard that cannot be read fails closed: it denies every call it names.
            log.error("MCP tool policy %s denies every call it names: %s", row["name"], exc)
            policy = build_policy({**row, "when_expr": None, "action": "deny"})
        grouped.setdefault((policy.scope_type, policy.scope_id), []).append(policy)
    return {k: tuple(v) for k, v in grouped.items()}


def _patterns(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _server(row: Row, secrets: SecretBox) -> McpServer | None:
    headers = dict(row["headers"] or {})
    env = dict(row["env"] or {})
    if row["secret_ciphertext"]:
        try:
            secret = secrets.decrypt(row["secret_ciphertext"])
        except SecretKeyError as exc:
            log.error("MCP server %s@%s skipped: %s", row["name"], row["server_version"], exc)
            return None
        if row["transport"] == "stdio":
            env[row["auth_header"] or "MCP_TOKEN"] = secret  # stdio servers read it from the env
        else:
            scheme = row["auth_scheme"] if row["auth_scheme"] is not None else "Bearer"
            headers[row["auth_header"] or "Authorization"] = f"{scheme} {secret}".strip()
    command = tuple(row["command"] or ())
    guardrails = row.get("guardrails") or {}
    identity = orjson.dumps(
        [row["transport"], row["url"], command, sorted(env.items()), sorted(headers.items())]
    )
    return McpServer(
        id=row["id"],
        name=row["name"],
        version=row["server_version"],
        latest=bool(row["latest"]),
        description=row["description"],
        transport=row["transport"],
        url=row["url"],
        command=command,
        env=MappingProxyType(env),
        headers=MappingProxyType(headers),
        status=row["status"],
        status_reason=row["status_reason"],
        tool_status=MappingProxyType(dict(row["tool_status"] or {})),
        pin_policy=row["pin_policy"],
        timeout_s=row["timeout_ms"] / 1000,
        tags=tuple(row["tags"] or ()),
        workspace_ids=frozenset(row["workspace_ids"]) if row["workspace_ids"] is not None else None,
        key_ids=frozenset(row["key_ids"]) if row["key_ids"] is not None else None,
        connection_id=hashlib.sha256(identity).hexdigest()[:16],
        tool_costs=MappingProxyType(dict(row.get("tool_costs") or {})),
        input_guardrails=tuple(guardrails.get("input") or ()),
        output_guardrails=tuple(guardrails.get("output") or ()),
    )


def stdio_allowed(command: tuple[str, ...] | list[str], allow_list: str) -> bool:
    """The executable must be on ``LOCKGATE_MCP_STDIO_COMMANDS`` by name or absolute path."""
    if not command:
        return False
    allowed = {c.strip() for c in allow_list.split(",") if c.strip()}
    # Exact match only: an allowed bare name does not admit an absolute path of the same basename.
    return command[0] in allowed
