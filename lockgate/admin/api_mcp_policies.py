"""/mcp/tool-policies, /mcp/approvals and /mcp/servers/{id}/pins: action policies on tools/call, the
calls waiting on a human, and the tool-definition pins an admin re-approves after a change.

A workspace's admins write its policies (and its keys'); viewers read. Approving or rejecting a
waiting call is an audited change like any other: it bumps the config version, and that notice
(pub/sub, or the next poll) is what wakes the worker holding the call (mcp/approvals.py).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field

from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.rbac import Actor
from lockgate.admin.schemas import Body
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.mcp.specs import McpToolPolicySpec, policy_values
from lockgate.store.control import (
    API_KEY,
    MCP_APPROVAL,
    MCP_SERVER,
    MCP_TOOL_PIN,
    MCP_TOOL_POLICY,
    WORKSPACE,
    Change,
    Row,
)

router = APIRouter()


class PolicyCreate(McpToolPolicySpec):
    scope_type: Literal["workspace", "key"]
    scope_id: str


class PolicyUpdate(McpToolPolicySpec):
    """Every field at once (a policy is small); ``name`` and the scope stay."""

    name: str = Field("-", description="Ignored: a policy keeps its name.")


class Decision(Body):
    reason: str | None = Field(None, max_length=2000)


async def _scope_workspace(tx: Change, scope_type: str, scope_id: str) -> str:
    if scope_type == "workspace":
        if await tx.get(WORKSPACE, scope_id) is None:
            raise BadRequest(f"No workspace with id {scope_id!r}.", param="scope_id")
        return scope_id
    key = await tx.get(API_KEY, scope_id)
    if key is None:
        raise BadRequest(f"No key with id {scope_id!r}.", param="scope_id")
    return str(key["workspace_id"])


async def _own(ctx: Any, kind: Any, object_id: str, actor: Actor, role: str) -> Row:
    row: Row | None = await ctx.control.get(kind, object_id)
    if row is None or not actor.can_see(row["workspace_id"]):
        raise NotFound(f"No {kind.name} with id {object_id!r}.", param="id")
    actor.require(role, row["workspace_id"])
    return row


@router.get("/mcp/tool-policies", tags=["mcp"])
async def list_policies(ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    result = await ctx.control.list(
        MCP_TOOL_POLICY, workspace_in=actor.visible_workspaces(), cursor=cursor, limit=limit
    )
    return page(MCP_TOOL_POLICY, result)


@router.post("/mcp/tool-policies", status_code=201, tags=["mcp"])
async def create_policy(body: PolicyCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    async with ctx.control.change(actor.audit) as tx:
        workspace_id = await _scope_workspace(tx, body.scope_type, body.scope_id)
        actor.require("admin", workspace_id)
        if await tx.find(MCP_TOOL_POLICY, name=body.name) is not None:
            raise Conflict(f"A tool policy named {body.name!r} exists.", param="name")
        values = {
            **policy_values(body),
            "scope_type": body.scope_type,
            "scope_id": body.scope_id,
            "workspace_id": workspace_id,
        }
        row = await tx.create(MCP_TOOL_POLICY, values)
    await ctx.changed(tx.version)
    return one(MCP_TOOL_POLICY, row)


@router.get("/mcp/tool-policies/{policy_id}", tags=["mcp"])
async def get_policy(policy_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    return one(MCP_TOOL_POLICY, await _own(ctx, MCP_TOOL_POLICY, policy_id, actor, "viewer"))


@router.put("/mcp/tool-policies/{policy_id}", tags=["mcp"])
async def replace_policy(
    policy_id: str, body: PolicyUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    existing = await _own(ctx, MCP_TOOL_POLICY, policy_id, actor, "admin")
    values = {**policy_values(body), "name": existing["name"]}
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.update(MCP_TOOL_POLICY, policy_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(MCP_TOOL_POLICY, row)


@router.delete("/mcp/tool-policies/{policy_id}", tags=["mcp"])
async def delete_policy(policy_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _own(ctx, MCP_TOOL_POLICY, policy_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.delete(MCP_TOOL_POLICY, policy_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": "mcp_tool_policy", "id": row["id"], "deleted": True}


@router.get("/mcp/approvals", tags=["mcp"])
async def list_approvals(
    ctx: Ctx,
    actor: Who,
    status: Literal["pending", "approved", "rejected", "expired"] | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    result = await ctx.control.list(
        MCP_APPROVAL,
        equals={"status": status} if status else None,
        workspace_in=actor.visible_workspaces(),
        cursor=cursor,
        limit=limit,
    )
    return page(MCP_APPROVAL, result)


@router.post("/mcp/approvals/{approval_id}/{verdict}", tags=["mcp"])
async def decide_approval(
    approval_id: str,
    verdict: Literal["approve", "reject"],
    ctx: Ctx,
    actor: Who,
    body: Decision | None = None,
) -> dict[str, Any]:
    await _own(ctx, MCP_APPROVAL, approval_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.require(MCP_APPROVAL, approval_id)
        if row["status"] != "pending" or row["expires_at"] <= tx.now:
            state = row["status"] if row["status"] != "pending" else "expired"
            raise Conflict(f"The approval {approval_id!r} is {state}; only a pending call can be decided.")
        values = {
            "status": "approved" if verdict == "approve" else "rejected",
            "decided_by": actor.audit.name,
            "reason": body.reason if body is not None else None,
        }
        row = await tx.update(MCP_APPROVAL, approval_id, values, action=verdict)
    await ctx.changed(tx.version)
    return one(MCP_APPROVAL, row)


@router.get("/mcp/servers/{server_id}/pins", tags=["mcp"])
async def list_pins(
    server_id: str, ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """The pinned tool definitions of a server; ``status: changed`` ones await re-approval."""
    await _own(ctx, MCP_SERVER, server_id, actor, "viewer")
    result = await ctx.control.list(MCP_TOOL_PIN, equals={"server_id": server_id}, cursor=cursor, limit=limit)
    return page(MCP_TOOL_PIN, result)


@router.post("/mcp/servers/{server_id}/pins/{tool}/approve", tags=["mcp"])
async def approve_pin(server_id: str, tool: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    """Pin what the upstream serves now; the audit record holds the old and the new definition."""
    await _own(ctx, MCP_SERVER, server_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.find(MCP_TOOL_PIN, server_id=server_id, tool=tool)
        if row is None:
            raise NotFound(f"No pin for the tool {tool!r} of this server.", param="tool")
        if row["status"] != "changed":
            raise Conflict(f"The definition of {tool!r} has not changed since it was approved.")
        values = {
            "hash": row["current_hash"],
            "definition": row["current_definition"],
            "status": "approved",
            "current_hash": None,
            "current_definition": None,
        }
        row = await tx.update(MCP_TOOL_PIN, row["id"], values, expected_version=version, action="approve")
    await ctx.changed(tx.version)
    return one(MCP_TOOL_PIN, row)
