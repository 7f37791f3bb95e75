"""/workspaces: org admins create and delete them; a workspace admin may edit its own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lockgate.admin import objects
from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.schemas import WorkspaceCreate, WorkspaceUpdate
from lockgate.errors import Conflict, NotFound
from lockgate.store.control import WORKSPACE
from lockgate.store.tables import DEFAULT_ORG_ID, DEFAULT_WORKSPACE_ID

router = APIRouter(tags=["workspaces"])


@router.get("/workspaces")
async def list_workspaces(
    ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None, name: str | None = None
) -> dict[str, Any]:
    equals = {"name": name} if name else {}
    result = await ctx.control.list(
        WORKSPACE, equals=equals, workspace_in=actor.visible_workspaces(), cursor=cursor, limit=limit
    )
    return page(WORKSPACE, result)


@router.post("/workspaces", status_code=201)
async def create_workspace(body: WorkspaceCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.create(WORKSPACE, {"org_id": DEFAULT_ORG_ID, **body.given(), **_defaults(body)})
    await ctx.changed(tx.version)
    return one(WORKSPACE, row)


@router.get("/workspaces/{workspace_id}")
async def get_workspace(workspace_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    row = await ctx.control.get(WORKSPACE, workspace_id)
    if row is None or not actor.can_see(workspace_id):
        raise NotFound(f"No workspace with id {workspace_id!r}.", param="workspace_id")
    return one(WORKSPACE, row)


@router.patch("/workspaces/{workspace_id}")
async def update_workspace(
    workspace_id: str, body: WorkspaceUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    actor.require("admin", workspace_id)
    async with ctx.control.change(actor.audit) as tx:
        values = {k: v for k, v in body.given().items() if not (k == "log_bodies" and v is None)}
        row = await tx.update(WORKSPACE, workspace_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(WORKSPACE, row)


@router.delete("/workspaces/{workspace_id}")
async def delete_workspace(workspace_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    actor.require("admin")
    if workspace_id == DEFAULT_WORKSPACE_ID:
        raise Conflict("The default workspace cannot be deleted.", code="default_workspace")
    async with ctx.control.change(actor.audit) as tx:
        await objects.check_workspace_empty(tx, workspace_id)
        row = await tx.delete(WORKSPACE, workspace_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": "workspace", "id": row["id"], "deleted": True}


def _defaults(body: WorkspaceCreate) -> dict[str, Any]:
    return {"description": body.description, "metadata": body.metadata, "log_bodies": body.log_bodies}
