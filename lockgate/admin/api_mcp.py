"""/mcp/servers, /mcp/access-rules and /mcp/tool-calls: the MCP registry, its kill switch and records.

Org-wide servers need an org admin; a workspace's servers (and its access rules)
its admins. Viewers read. Every change bumps the config version, so it reaches
every worker and replica through the snapshot (pub/sub, or the next poll), and
writes a hash-chained audit record; kill and disable are ordinary audited changes.
Upstream secrets are write-only: rows leave through ``one``, which drops them.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field, ValidationError

from lockgate.admin.api_logs import CallFilter, listing
from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.rbac import Actor
from lockgate.admin.schemas import Body
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.mcp.registry import stdio_allowed
from lockgate.mcp.server_json import spec_from_server_json
from lockgate.mcp.specs import (
    RULE_COLUMNS,
    McpAccessRuleSpec,
    McpServerSpec,
    ToolGuardrails,
    check_guardrail_refs,
    server_values,
)
from lockgate.store.control import API_KEY, MCP_ACCESS_RULE, MCP_SERVER, WORKSPACE, Change, Row

router = APIRouter()


class ServerCreate(McpServerSpec):
    workspace_id: str | None = Field(None, description="Owner workspace; unset: the org.")
    workspace_ids: list[str] | None = Field(None, description="Who may use it; unset: every workspace.")
    key_ids: list[str] | None = Field(None, description="Only these keys; unset: any key.")


class ServerUpdate(Body):
    description: str | None = Field(None, max_length=2000)
    url: str | None = Field(None, pattern=r"^https?://")
    command: list[str] | None = Field(None, min_length=1)
    env: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    secret: str | None = None
    auth_header: str | None = None
    auth_scheme: str | None = None
    pin_policy: Literal["off", "flag", "block"] | None = None
    timeout_ms: int | None = Field(None, ge=100, le=3_600_000)
    tags: list[str] | None = None
    tool_costs: dict[str, float] | None = None
    guardrails: ToolGuardrails | None = None
    workspace_ids: list[str] | None = None
    key_ids: list[str] | None = None


class StatusChange(Body):
    reason: str | None = Field(None, max_length=2000)


class RuleCreate(McpAccessRuleSpec):
    scope_type: Literal["workspace", "key"]
    scope_id: str


class RuleUpdate(Body):
    allow_servers: list[str] | None = None
    deny_servers: list[str] | None = None
    allow_tools: list[str] | None = None
    deny_tools: list[str] | None = None


class ServerJsonImport(Body):
    server: dict[str, Any] = Field(description="An official MCP registry server.json document.")
    name: str | None = Field(None, description="Registry name to use instead of the document's.")
    secret: str | None = None
    workspace_id: str | None = None


async def _server(ctx: Any, server_id: str, actor: Actor, role: str) -> Row:
    row = await ctx.control.get(MCP_SERVER, server_id)
    if row is None or not actor.can_see(row["workspace_id"]):
        raise NotFound(f"No mcp_server with id {server_id!r}.", param="id")
    if role != "viewer" or row["workspace_id"] is not None:
        actor.require(role, row["workspace_id"])
    return row


def _check_stdio(ctx: Any, command: list[str] | None) -> None:
    if command is not None and not stdio_allowed(command, ctx.mcp_stdio_commands):
        raise BadRequest(
            f"command: {command[0]!r} is not on LOCKGATE_MCP_STDIO_COMMANDS; stdio servers run only "
            "allow-listed executables.",
            param="command",
            code="command_not_allowed",
        )


async def _check_refs(tx: Change, workspace_ids: list[str] | None, key_ids: list[str] | None) -> None:
    for i, workspace_id in enumerate(workspace_ids or ()):
        if await tx.get(WORKSPACE, workspace_id) is None:
            raise BadRequest(f"No workspace with id {workspace_id!r}.", param=f"workspace_ids.{i}")
    for i, key_id in enumerate(key_ids or ()):
        if await tx.get(API_KEY, key_id) is None:
            raise BadRequest(f"No key with id {key_id!r}.", param=f"key_ids.{i}")


async def _create_server(ctx: Any, actor: Actor, spec: McpServerSpec, extra: dict[str, Any]) -> Row:
    actor.require("admin", extra.get("workspace_id"))
    if spec.transport == "stdio":
        _check_stdio(ctx, spec.command)
    async with ctx.control.change(actor.audit) as tx:
        if extra.get("workspace_id") is not None and await tx.get(WORKSPACE, extra["workspace_id"]) is None:
            raise BadRequest(f"No workspace with id {extra['workspace_id']!r}.", param="workspace_id")
        await _check_refs(tx, extra.get("workspace_ids"), extra.get("key_ids"))
        await check_guardrail_refs(tx, spec.guardrails, extra.get("workspace_id"), "guardrails")
        if await tx.find(MCP_SERVER, name=spec.name, server_version=spec.version) is not None:
            raise Conflict(f"{spec.name}@{spec.version} is registered already.", param="version")
        # A new version becomes what /mcp/{name} means; older ones stay at /mcp/{name}@{version}.
        for older in await tx.all(MCP_SERVER, name=spec.name, latest=True):
            await tx.update(MCP_SERVER, older["id"], {"latest": False}, action="superseded")
        values = {**server_values(spec, ctx.secrets.encrypt), **extra, "latest": True, "retired": False}
        row = await tx.create(MCP_SERVER, values)
    await ctx.changed(tx.version)
    return row


@router.get("/mcp/servers", tags=["mcp"])
async def list_servers(
    ctx: Ctx,
    actor: Who,
    limit: Limit = 50,
    cursor: Cursor = None,
    name: str | None = None,
    tools: bool = Query(False, description="Include each server's cached tool list (discovery)."),
) -> dict[str, Any]:
    result = await ctx.control.list(
        MCP_SERVER,
        equals={"name": name} if name else {},
        workspace_in=actor.visible_workspaces(),
        include_global=True,
        cursor=cursor,
        limit=limit,
    )
    body = page(MCP_SERVER, result)
    if tools and ctx.mcp is not None:
        for item in body["data"]:
            item["tools"] = await ctx.mcp.discover(item["name"], item["server_version"])
    return body


@router.post("/mcp/servers", status_code=201, tags=["mcp"])
async def create_server(body: ServerCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    extra = {"workspace_id": body.workspace_id, "workspace_ids": body.workspace_ids, "key_ids": body.key_ids}
    spec = McpServerSpec.model_validate(body.model_dump(exclude=set(extra)))
    return one(MCP_SERVER, await _create_server(ctx, actor, spec, extra))


@router.post("/mcp/servers/import", status_code=201, tags=["mcp"])
async def import_server_json(body: ServerJsonImport, ctx: Ctx, actor: Who) -> dict[str, Any]:
    """Register a server from an official MCP registry ``server.json`` (its first remote)."""
    spec = spec_from_server_json(body.server, name=body.name, secret=body.secret)
    extra = {"workspace_id": body.workspace_id, "workspace_ids": None, "key_ids": None}
    return one(MCP_SERVER, await _create_server(ctx, actor, spec, extra))


@router.get("/mcp/servers/{server_id}", tags=["mcp"])
async def get_server(server_id: str, ctx: Ctx, actor: Who, tools: bool = False) -> dict[str, Any]:
    row = await _server(ctx, server_id, actor, "viewer")
    body = one(MCP_SERVER, row)
    if tools and ctx.mcp is not None:
        body["tools"] = await ctx.mcp.discover(row["name"], row["server_version"])
    return body


@router.patch("/mcp/servers/{server_id}", tags=["mcp"])
async def update_server(
    server_id: str, body: ServerUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    current = await _server(ctx, server_id, actor, "admin")
    changes = body.given()
    merged = {
        "name": current["name"],
        "version": current["server_version"],
        "transport": current["transport"],
        **{c: current[c] for c in ("description", "url", "command", "auth_header", "auth_scheme")},
        "env": current["env"] or {},
        "headers": current["headers"] or {},
        **{
            c: current[c]
            for c in (
                "status",
                "status_reason",
                "tool_status",
                "pin_policy",
                "timeout_ms",
                "tags",
                "guardrails",
            )
        },
        "tool_costs": current["tool_costs"] or {},
        **{k: v for k, v in changes.items() if k not in ("secret", "workspace_ids", "key_ids")},
    }
    try:
        spec = McpServerSpec.model_validate({k: v for k, v in merged.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise BadRequest(first["msg"].replace("Value error, ", ""), param="body") from None
    if spec.transport == "stdio" and "command" in changes:
        _check_stdio(ctx, spec.command)
    values = server_values(spec, ctx.secrets.encrypt)
    values["secret_ciphertext"] = (
        ctx.secrets.encrypt(changes["secret"]) if changes.get("secret") else current["secret_ciphertext"]
    )
    if "secret" in changes and changes["secret"] is None:
        values["secret_ciphertext"] = None
    for column in ("workspace_ids", "key_ids"):
        if column in changes:
            values[column] = changes[column]
    async with ctx.control.change(actor.audit) as tx:
        await _check_refs(tx, values.get("workspace_ids"), values.get("key_ids"))
        if "guardrails" in changes:
            await check_guardrail_refs(tx, spec.guardrails, current["workspace_id"], "guardrails")
        row = await tx.update(MCP_SERVER, server_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(MCP_SERVER, row)


@router.post("/mcp/servers/{server_id}/{action}", tags=["mcp"])
async def set_server_status(
    server_id: str,
    action: Literal["enable", "disable", "kill", "retire"],
    ctx: Ctx,
    actor: Who,
    body: StatusChange | None = None,
) -> dict[str, Any]:
    """The kill switch: ``kill`` refuses new calls and cuts in-flight ones on every worker;
    ``disable`` refuses new calls; ``retire`` takes a version off the air for good."""
    await _server(ctx, server_id, actor, "admin")
    reason = body.reason if body is not None else None
    if action == "retire":
        values: dict[str, Any] = {"retired": True, "latest": False}
    else:
        status = {"enable": "enabled", "disable": "disabled", "kill": "killed"}[action]
        values = {"status": status, "status_reason": reason if status != "enabled" else None}
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.update(MCP_SERVER, server_id, values, action=action)
    await ctx.changed(tx.version if tx.changed else None)
    return one(MCP_SERVER, row)


@router.post("/mcp/servers/{server_id}/tools/{tool}/{action}", tags=["mcp"])
async def set_tool_status(
    server_id: str, tool: str, action: Literal["enable", "disable", "kill"], ctx: Ctx, actor: Who
) -> dict[str, Any]:
    await _server(ctx, server_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        current = await tx.require(MCP_SERVER, server_id)
        statuses = dict(current["tool_status"] or {})
        if action == "enable":
            statuses.pop(tool, None)
        else:
            statuses[tool] = {"disable": "disabled", "kill": "killed"}[action]
        row = await tx.update(MCP_SERVER, server_id, {"tool_status": statuses}, action=f"tool_{action}")
    await ctx.changed(tx.version if tx.changed else None)
    return one(MCP_SERVER, row)


@router.delete("/mcp/servers/{server_id}", tags=["mcp"])
async def delete_server(server_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _server(ctx, server_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.delete(MCP_SERVER, server_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": "mcp_server", "id": row["id"], "deleted": True}


@router.get("/mcp/access-rules", tags=["mcp"])
async def list_rules(ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    result = await ctx.control.list(
        MCP_ACCESS_RULE, workspace_in=actor.visible_workspaces(), cursor=cursor, limit=limit
    )
    return page(MCP_ACCESS_RULE, result)


@router.post("/mcp/access-rules", status_code=201, tags=["mcp"])
async def create_rule(body: RuleCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    async with ctx.control.change(actor.audit) as tx:
        if body.scope_type == "workspace":
            workspace_id = body.scope_id
            if await tx.get(WORKSPACE, workspace_id) is None:
                raise BadRequest(f"No workspace with id {workspace_id!r}.", param="scope_id")
        else:
            key = await tx.get(API_KEY, body.scope_id)
            if key is None:
                raise BadRequest(f"No key with id {body.scope_id!r}.", param="scope_id")
            workspace_id = key["workspace_id"]
        actor.require("admin", workspace_id)
        if await tx.find(MCP_ACCESS_RULE, name=body.name) is not None:
            raise Conflict(f"An access rule named {body.name!r} exists.", param="name")
        values = {
            "name": body.name,
            "scope_type": body.scope_type,
            "scope_id": body.scope_id,
            "workspace_id": workspace_id,
            **{c: getattr(body, c) for c in RULE_COLUMNS},
        }
        row = await tx.create(MCP_ACCESS_RULE, values)
    await ctx.changed(tx.version)
    return one(MCP_ACCESS_RULE, row)


async def _rule(ctx: Any, rule_id: str, actor: Actor, role: str) -> Row:
    row = await ctx.control.get(MCP_ACCESS_RULE, rule_id)
    if row is None or not actor.can_see(row["workspace_id"]):
        raise NotFound(f"No mcp_access_rule with id {rule_id!r}.", param="id")
    actor.require(role, row["workspace_id"])
    return row


@router.patch("/mcp/access-rules/{rule_id}", tags=["mcp"])
async def update_rule(
    rule_id: str, body: RuleUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    await _rule(ctx, rule_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.update(MCP_ACCESS_RULE, rule_id, body.given(), expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(MCP_ACCESS_RULE, row)


@router.delete("/mcp/access-rules/{rule_id}", tags=["mcp"])
async def delete_rule(rule_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _rule(ctx, rule_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.delete(MCP_ACCESS_RULE, rule_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": "mcp_access_rule", "id": row["id"], "deleted": True}


@router.get("/mcp/tool-calls", tags=["mcp"])
async def list_tool_calls(
    ctx: Ctx, f: CallFilter, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Tool-call records, newest first (``/logs?kind=tool_call``); workspace admins see their
    workspaces' calls."""
    return await listing(ctx, f, limit, cursor)
