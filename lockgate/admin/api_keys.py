"""/keys: virtual keys. Members of a workspace manage its keys; the key is shown once."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter

from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.schemas import KeyCreate, KeyUpdate
from lockgate.errors import BadRequest, NotFound
from lockgate.governance.auth import generate_key, hash_key, key_hint
from lockgate.store.control import API_KEY, WORKSPACE, ControlStore, Row

router = APIRouter(tags=["keys"])


async def _key_in_reach(control: ControlStore, key_id: str, actor: Any, role: str) -> Row:
    row = await control.get(API_KEY, key_id)
    if row is None or not actor.can_see(row["workspace_id"]):
        raise NotFound(f"No api_key with id {key_id!r}.", param="key_id")
    actor.require(role, row["workspace_id"])
    return row


def _stamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


@router.get("/keys")
async def list_keys(
    ctx: Ctx,
    actor: Who,
    limit: Limit = 50,
    cursor: Cursor = None,
    workspace_id: str | None = None,
    status: Literal["active", "revoked"] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    equals = {k: v for k, v in {"workspace_id": workspace_id, "status": status, "name": name}.items() if v}
    result = await ctx.control.list(
        API_KEY, equals=equals, workspace_in=actor.visible_workspaces(), cursor=cursor, limit=limit
    )
    return page(API_KEY, result)


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("member", body.workspace_id)
    key = generate_key()
    async with ctx.control.change(actor.audit) as tx:
        if await tx.get(WORKSPACE, body.workspace_id) is None:
            raise BadRequest(f"No workspace with id {body.workspace_id!r}.", param="workspace_id")
        row = await tx.create(
            API_KEY,
            {
                "workspace_id": body.workspace_id,
                "name": body.name,
                "key_hash": hash_key(key),
                "key_hint": key_hint(key),
                "status": "active",
                "expires_at": _stamp(body.expires_at),
                "allowed_models": body.allowed_models,
                "metadata": body.metadata,
            },
        )
    await ctx.changed(tx.version)
    return {**one(API_KEY, row), "key": key}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    return one(API_KEY, await _key_in_reach(ctx.control, key_id, actor, "viewer"))


@router.patch("/keys/{key_id}")
async def update_key(key_id: str, body: KeyUpdate, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _key_in_reach(ctx.control, key_id, actor, "member")
    values = body.given()
    if "expires_at" in values:
        values["expires_at"] = _stamp(values["expires_at"])
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.update(API_KEY, key_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(API_KEY, row)


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    """A new secret for the same key (id, name, limits); the old secret stops working at once."""
    await _key_in_reach(ctx.control, key_id, actor, "member")
    key = generate_key()
    values = {"key_hash": hash_key(key), "key_hint": key_hint(key), "rotated_at": time.time()}
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.update(API_KEY, key_id, values, expected_version=version, action="rotate")
    await ctx.changed(tx.version)
    return {**one(API_KEY, row), "key": key}


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _key_in_reach(ctx.control, key_id, actor, "member")
    async with ctx.control.change(actor.audit) as tx:
        current = await tx.require(API_KEY, key_id)
        values = {"status": "revoked", "revoked_at": current["revoked_at"] or time.time()}
        row = await tx.update(API_KEY, key_id, values, expected_version=version, action="revoke")
    await ctx.changed(tx.version if tx.changed else None)
    return one(API_KEY, row)


@router.delete("/keys/{key_id}")
async def delete_key(key_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _key_in_reach(ctx.control, key_id, actor, "member")
    async with ctx.control.change(actor.audit) as tx:
        await tx.delete(API_KEY, key_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": "api_key", "id": key_id, "deleted": True}
