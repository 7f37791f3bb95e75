"""MCP server and access-rule definitions as the admin API and lockgate.yaml accept them.

One pydantic model per object validates both doors, so a bad transport/URL/command
combination is a 400 (or a start-up error) naming the field, never a broken snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lockgate.mcp.action_policy import compile_condition
from lockgate.mcp.registry import NAME_PATTERN

if TYPE_CHECKING:
    from lockgate.store.control import Change

Transport = Literal["streamable_http", "sse", "stdio"]
Status = Literal["enabled", "disabled", "killed"]


class ToolGuardrails(BaseModel):
    """Guardrails (by name) on this server's tool calls, with the actions they have for LLM traffic."""

    model_config = ConfigDict(extra="forbid")

    input: list[str] = Field(default_factory=list, description="Run on tools/call arguments, in order.")
    output: list[str] = Field(default_factory=list, description="Run on tools/call results, in order.")


class McpServerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Lower-case; addressed as /mcp/{name}.")
    version: str = Field("1", pattern=r"^[A-Za-z0-9._+-]{1,64}$", description="Server version.")
    description: str = Field("", max_length=2000)
    transport: Transport = "streamable_http"
    url: str | None = Field(None, pattern=r"^https?://", description="Streamable HTTP or SSE endpoint.")
    command: list[str] | None = Field(None, min_length=1, description="argv for stdio servers.")
    env: dict[str, str] = Field(default_factory=dict, description="Non-secret environment (stdio).")
    headers: dict[str, str] = Field(default_factory=dict, description="Non-secret upstream headers.")
    secret: str | None = Field(None, description="Upstream credential; stored encrypted, never returned.")
    auth_header: str | None = Field(None, description="Header (or stdio env var) for the secret.")
    auth_scheme: str | None = Field(None, description='Prefix of the header value; default "Bearer".')
    status: Status = "enabled"
    status_reason: str | None = None
    tool_status: dict[str, Literal["disabled", "killed"]] = Field(default_factory=dict)
    pin_policy: Literal["off", "flag", "block"] = "flag"
    timeout_ms: int = Field(30_000, ge=100, le=3_600_000)
    tags: list[str] = Field(default_factory=list)
    tool_costs: dict[str, float] = Field(
        default_factory=dict,
        description='USD per call by tool name or fnmatch pattern ("*"), charged to the caller\'s budgets.',
    )
    guardrails: ToolGuardrails | None = Field(None, description="Guardrails on arguments and results.")

    @field_validator("tool_costs")
    @classmethod
    def _prices(cls, value: dict[str, float]) -> dict[str, float]:
        for tool, usd in value.items():
            if not tool or len(tool) > 200:
                raise ValueError("a tool name or pattern has 1 to 200 characters")
            if not (0 <= usd <= 1_000_000):  # also refuses NaN
                raise ValueError(f"{tool}: a price is between 0 and 1,000,000 USD per call")
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerSpec:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("command: a stdio server needs a command")
            if self.url is not None:
                raise ValueError("url: a stdio server has no URL")
        elif self.url is None:
            raise ValueError(f"url: a {self.transport} server needs a URL")
        elif self.command is not None:
            raise ValueError(f"command: only stdio servers have a command (this one is {self.transport})")
        return self


async def check_guardrail_refs(
    tx: Change, guardrails: ToolGuardrails | None, workspace_id: str | None, where: str
) -> None:
    """Each name is a guardrail the server's owner may use, able to run at its stage (400 if not)."""
    from lockgate.admin.guardrail_objects import check_refs  # admin code; imported only when writing

    if guardrails is not None:
        await check_refs(tx, guardrails.input, "input", workspace_id, f"{where}.input")
        await check_refs(tx, guardrails.output, "output", workspace_id, f"{where}.output")


def server_values(spec: McpServerSpec, encrypt: Any) -> dict[str, Any]:
    """Column values for a stored row; ``encrypt`` seals the secret."""
    return {
        "name": spec.name,
        "server_version": spec.version,
        "description": spec.description,
        "transport": spec.transport,
        "url": spec.url,
        "command": spec.command,
        "env": spec.env or None,
        "headers": spec.headers or None,
        "secret_ciphertext": encrypt(spec.secret) if spec.secret else None,
        "auth_header": spec.auth_header,
        "auth_scheme": spec.auth_scheme,
        "status": spec.status,
        "status_reason": spec.status_reason,
        "tool_status": spec.tool_status,
        "pin_policy": spec.pin_policy,
        "timeout_ms": spec.timeout_ms,
        "tags": spec.tags,
        "tool_costs": spec.tool_costs or None,
        "guardrails": spec.guardrails.model_dump()
        if spec.guardrails is not None and (spec.guardrails.input or spec.guardrails.output)
        else None,
    }


class McpAccessRuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    allow_servers: list[str] | None = Field(None, description="fnmatch patterns; unset: any.")
    deny_servers: list[str] | None = None
    allow_tools: list[str] | None = Field(None, description="Patterns over server__tool; unset: any.")
    deny_tools: list[str] | None = None


RULE_COLUMNS = ("allow_servers", "deny_servers", "allow_tools", "deny_tools")


class McpServerConfig(McpServerSpec):
    workspace: str | None = Field(None, description="Owner workspace (by name); unset: the org.")
    workspaces: list[str] | None = Field(None, description="Who may use it (names); unset: everyone.")
    keys: list[str] | None = Field(None, description='Only these keys ("workspace/key"); unset: any.')


class McpAccessRuleConfig(McpAccessRuleSpec):
    workspace: str = Field(description="The workspace the rule applies to (by name).")
    key: str | None = Field(None, description="Only this key of the workspace (by name).")


class ToolLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: int = Field(ge=1, le=10_000_000, description="Calls allowed in each window.")
    per: Literal["minute", "hour", "day"] = Field(description="The sliding window.")
    by: Literal["key", "workspace"] = Field("key", description="Whose calls are counted together.")


class McpToolPolicySpec(BaseModel):
    """An action policy on tools/call (mcp/action_policy.py); ``when`` is compiled on write."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    server: str = Field("*", min_length=1, max_length=200, description="fnmatch over server names.")
    tool: str = Field("*", min_length=1, max_length=200, description="fnmatch over the server's tools.")
    when: str | None = Field(
        None,
        max_length=4000,
        description='CEL over tool, server, args, principal, e.g. "args.amount > 100"; unset: always.',
    )
    action: Literal["allow", "deny", "require_approval", "limit"] = "deny"
    approval_timeout_s: int = Field(300, ge=1, le=86_400, description="How long a call waits.")
    limit: ToolLimit | None = Field(None, description='For action "limit": calls per window.')

    @field_validator("when")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_condition(value)  # ConditionError is a ValueError: a 400 naming ``when``
        return value

    @model_validator(mode="after")
    def _limit_with_its_action(self) -> McpToolPolicySpec:
        if (self.action == "limit") != (self.limit is not None):
            raise ValueError('limit: set it exactly when action is "limit"')
        return self


POLICY_COLUMNS = ("server", "tool", "action", "approval_timeout_s")


def policy_values(spec: McpToolPolicySpec) -> dict[str, Any]:
    limit = spec.limit
    return {
        "name": spec.name,
        "when_expr": spec.when,
        **{c: getattr(spec, c) for c in POLICY_COLUMNS},
        "limit_calls": limit.calls if limit else None,
        "limit_window": limit.per if limit else None,
        "limit_by": limit.by if limit else None,
    }


def limit_of(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["limit_calls"] is None:
        return None
    return {"calls": row["limit_calls"], "per": row["limit_window"], "by": row["limit_by"]}


class McpToolPolicyConfig(McpToolPolicySpec):
    workspace: str = Field(description="The workspace the policy applies to (by name).")
    key: str | None = Field(None, description="Only this key of the workspace (by name).")
