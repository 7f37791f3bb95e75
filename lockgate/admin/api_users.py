"""/users and their admin keys: owners manage them; anyone may read their own identity (/me)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.rbac import ADMIN_KEY_PREFIX
from lockgate.admin.schemas import AdminKeyCreate, UserCreate, UserUpdate
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.governance.auth import generate_key, hash_key, key_hint
from lockgate.store.control import ADMIN_KEY, ADMIN_USER, WORKSPACE, Change

router = APIRouter(tags=["admin users"])


@router.get("/me")
async def me(actor: Who) -> dict[str, Any]:
    return {
        "object": "actor",
        "id": actor.id,
        "name": actor.name,
        "org_role": actor.org_role,
        "workspace_roles": dict(actor.workspace_roles),
    }


async def _check_roles(tx: Change, roles: list[dict[str, Any]]) -> None:
    for i, binding in enumerate(roles):
        workspace_id = binding.get("workspace_id")
        if workspace_id is not None and await tx.get(WORKSPACE, workspace_id) is None:
            raise BadRequest(f"No workspace with id {workspace_id!r}.", param=f"roles.{i}.workspace_id")


@router.get("/users")
async def list_users(ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    actor.require("admin")
    return page(ADMIN_USER, await ctx.control.list(ADMIN_USER, cursor=cursor, limit=limit))


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("owner")
    roles = [r.model_dump() for r in body.roles]
    async with ctx.control.change(actor.audit) as tx:
        if await tx.find(ADMIN_USER, name=body.name) is not None:
            raise Conflict(f"An admin user named {body.name!r} exists.", param="name")
        await _check_roles(tx, roles)
        row = await tx.create(
            ADMIN_USER, {"name": body.name, "email": body.email, "roles": roles, "status": "active"}
        )
    return one(ADMIN_USER, row)


@router.get("/users/{user_id}")
async def get_user(user_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    if actor.id != user_id:
        actor.require("admin")
    row = await ctx.control.get(ADMIN_USER, user_id)
    if row is None:
        raise NotFound(f"No admin_user with id {user_id!r}.", param="user_id")
    return one(ADMIN_USER, row)


@router.patch("/users/{user_id}")
async def update_user(
    user_id: str, body: UserUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    actor.require("owner")
    values = body.given()
    if "roles" in values:
        values["roles"] = [r.model_dump() for r in body.roles or []]
    async with ctx.control.change(actor.audit) as tx:
        await _check_roles(tx, values.get("roles", []))
        row = await tx.update(ADMIN_USER, user_id, values, expected_version=version)
    return one(ADMIN_USER, row)


@router.delete("/users/{user_id}")
async def delete_user(user_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("owner")
    if user_id == actor.id:
        raise Conflict("You cannot delete yourself.", code="self_delete")
    async with ctx.control.change(actor.audit) as tx:
        for key in await tx.all(ADMIN_KEY, user_id=user_id):
            await tx.delete(ADMIN_KEY, key["id"])
        await tx.delete(ADMIN_USER, user_id)
    return {"object": ADMIN_USER.name, "id": user_id, "deleted": True}


@router.get("/users/{user_id}/keys")
async def list_admin_keys(
    user_id: str, ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    if actor.id != user_id:
        actor.require("owner")
    result = await ctx.control.list(ADMIN_KEY, equals={"user_id": user_id}, cursor=cursor, limit=limit)
    return page(ADMIN_KEY, result)


@router.post("/users/{user_id}/keys", status_code=201)
async def create_admin_key(user_id: str, body: AdminKeyCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("owner")
    async with ctx.control.change(actor.audit) as tx:
        await tx.require(ADMIN_USER, user_id)
        row, key = await create_admin_key_in(
            tx, user_id, body.name, body.expires_at.timestamp() if body.expires_at else None
        )
    return {**one(ADMIN_KEY, row), "key": key}


@router.post("/admin-keys/{admin_key_id}/revoke")
async def revoke_admin_key(admin_key_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("owner")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.update(
            ADMIN_KEY, admin_key_id, {"status": "revoked", "revoked_at": time.time()}, action="revoke"
        )
    return one(ADMIN_KEY, row)


async def create_admin_key_in(
    tx: Change, user_id: str, name: str, expires_at: float | None
) -> tuple[dict[str, Any], str]:
    key = generate_key(ADMIN_KEY_PREFIX)
    row = await tx.create(
        ADMIN_KEY,
        {
            "user_id": user_id,
            "name": name,
            "key_hash": hash_key(key),
            "key_hint": key_hint(key),
            "status": "active",
            "expires_at": expires_at,
        },
    )
    return row, key
