"""/mcp/oauth-issuers: the IdPs whose bearer JWTs /mcp accepts, and their claim -> workspace rules.

Org-wide objects (a rule may land a token in any workspace): org admins write, org viewers
read. Every change bumps the config version, so each worker picks the issuer up from its
snapshot and starts fetching its keys in the background (mcp/oauth.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.mcp.oauth_specs import OAuthIssuerSpec, issuer_values
from lockgate.store.control import OAUTH_ISSUER, WORKSPACE, Change, Row

router = APIRouter()


class IssuerUpdate(OAuthIssuerSpec):
    """Every field at once (an issuer is small); ``name`` stays."""

    name: str = Field("-", description="Ignored: an issuer keeps its name.")


async def _values(tx: Change, spec: OAuthIssuerSpec) -> dict[str, Any]:
    workspaces = {w["name"]: w["id"] for w in await tx.all(WORKSPACE)}

    def workspace_id(name: str, param: str) -> str:
        if name not in workspaces:
            raise BadRequest(f"{param}: no workspace named {name!r}", param=param)
        return str(workspaces[name])

    return issuer_values(spec, workspace_id)


async def _get(ctx: Any, issuer_id: str) -> Row:
    row: Row | None = await ctx.control.get(OAUTH_ISSUER, issuer_id)
    if row is None:
        raise NotFound(f"No oauth_issuer with id {issuer_id!r}.", param="id")
    return row


@router.get("/mcp/oauth-issuers", tags=["mcp"])
async def list_issuers(ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    actor.require("viewer")
    return page(OAUTH_ISSUER, await ctx.control.list(OAUTH_ISSUER, cursor=cursor, limit=limit))


@router.post("/mcp/oauth-issuers", status_code=201, tags=["mcp"])
async def create_issuer(body: OAuthIssuerSpec, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin")
    async with ctx.control.change(actor.audit) as tx:
        if await tx.find(OAUTH_ISSUER, name=body.name) is not None:
            raise Conflict(f"An OAuth issuer named {body.name!r} exists.", param="name")
        if await tx.find(OAUTH_ISSUER, issuer=body.issuer) is not None:
            raise Conflict(f"The issuer {body.issuer!r} is configured already.", param="issuer")
        row = await tx.create(OAUTH_ISSUER, await _values(tx, body))
    await ctx.changed(tx.version)
    return one(OAUTH_ISSUER, row)


@router.get("/mcp/oauth-issuers/{issuer_id}", tags=["mcp"])
async def get_issuer(issuer_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("viewer")
    return one(OAUTH_ISSUER, await _get(ctx, issuer_id))


@router.put("/mcp/oauth-issuers/{issuer_id}", tags=["mcp"])
async def replace_issuer(
    issuer_id: str, body: IssuerUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    actor.require("admin")
    existing = await _get(ctx, issuer_id)
    async with ctx.control.change(actor.audit) as tx:
        other = await tx.find(OAUTH_ISSUER, issuer=body.issuer)
        if other is not None and other["id"] != issuer_id:
            raise Conflict(f"The issuer {body.issuer!r} is configured already.", param="issuer")
        values = {**await _values(tx, body), "name": existing["name"]}
        row = await tx.update(OAUTH_ISSUER, issuer_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(OAUTH_ISSUER, row)


@router.delete("/mcp/oauth-issuers/{issuer_id}", tags=["mcp"])
async def delete_issuer(issuer_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    actor.require("admin")
    await _get(ctx, issuer_id)
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.delete(OAUTH_ISSUER, issuer_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": "oauth_issuer", "id": row["id"], "deleted": True}
