"""/integrations, /models (aliases) and /configs (saved route configs).

Integrations are org-level: org admins write them; anyone sees those shared with
a workspace they can see, with the secret masked (``secret_hint``). Aliases and
configs are org-wide (``workspace_id`` null, org admins) or belong to one
workspace (its admins).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError

from lockgate.admin import objects
from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.rbac import Actor
from lockgate.admin.schemas import (
    AliasCreate,
    AliasUpdate,
    ConfigCreate,
    ConfigUpdate,
    IntegrationCreate,
    IntegrationUpdate,
)
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.gateway.route_config import RouteConfig, refuse_inline_keys
from lockgate.store.control import INTEGRATION, MODEL_ALIAS, ROUTE_CONFIG, WORKSPACE, Change, Kind, Row

router = APIRouter()


def _integration_visible(actor: Actor, row: Row) -> bool:
    shared = row["workspace_ids"]
    return actor.org_role is not None or any(actor.can_see(w) for w in (shared or actor.workspace_roles))


async def _check_workspaces(tx: Change, ids: list[str] | None, param: str) -> None:
    for i, workspace_id in enumerate(ids or []):
        if await tx.get(WORKSPACE, workspace_id) is None:
            raise BadRequest(f"No workspace with id {workspace_id!r}.", param=f"{param}.{i}")


@router.get("/integrations", tags=["integrations"])
async def list_integrations(
    ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None, provider: str | None = None
) -> dict[str, Any]:
    result = await ctx.control.list(
        INTEGRATION,
        equals={"provider": provider} if provider else {},
        keep=lambda row: _integration_visible(actor, row),
        cursor=cursor,
        limit=limit,
    )
    return page(INTEGRATION, result)


@router.post("/integrations", status_code=201, tags=["integrations"])
async def create_integration(body: IntegrationCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin")
    values = objects.integration_values(
        ctx.secrets,
        name=body.name,
        provider=body.provider,
        base_url=body.base_url,
        api_key=body.api_key,
        headers=body.headers,
        options=body.options,
        workspace_ids=body.workspace_ids,
        allowed_models=body.allowed_models,
    )
    values.update(objects.secret_values(ctx.secrets, body.api_key) if body.api_key else {})
    async with ctx.control.change(actor.audit) as tx:
        if await tx.find(INTEGRATION, name=body.name) is not None:
            raise Conflict(f"An integration named {body.name!r} exists.", param="name")
        await _check_workspaces(tx, body.workspace_ids, "workspace_ids")
        row = await tx.create(INTEGRATION, {"name": body.name, **values})
    await ctx.changed(tx.version)
    return one(INTEGRATION, row)


@router.get("/integrations/{integration_id}", tags=["integrations"])
async def get_integration(integration_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    row = await ctx.control.get(INTEGRATION, integration_id)
    if row is None or not _integration_visible(actor, row):
        raise NotFound(f"No integration with id {integration_id!r}.", param="integration_id")
    return one(INTEGRATION, row)


@router.patch("/integrations/{integration_id}", tags=["integrations"])
async def update_integration(
    integration_id: str, body: IntegrationUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    actor.require("admin")
    given = body.given()
    async with ctx.control.change(actor.audit) as tx:
        current = await tx.require(INTEGRATION, integration_id)
        if {"api_key", "options", "headers"} <= given.keys():  # all replaced: nothing to decrypt
            api_key, options, headers = None, {}, {}
        else:
            api_key, options, headers = objects.stored_fields(ctx.secrets, current)
        if "api_key" in given:  # null: the integration has no secret
            api_key = given["api_key"]
        # Options and headers are replaced whole (null: none); a mask read from this API
        # keeps the secret it stands for.
        if "options" in given:
            options = given["options"] or {}
        if "headers" in given:
            headers = given["headers"] or {}
        kept = ("base_url", "workspace_ids", "allowed_models")
        values = objects.integration_values(
            ctx.secrets,
            name=current["name"],
            provider=current["provider"],
            api_key=api_key,
            options=options,
            headers=headers,
            previous=current,
            **{k: given[k] if k in given else current[k] for k in kept},
        )
        if "api_key" in given:
            values.update(
                objects.secret_values(ctx.secrets, api_key)
                if api_key
                else {"secret_ciphertext": None, "secret_hint": None}
            )
        await _check_workspaces(tx, given.get("workspace_ids"), "workspace_ids")
        row = await tx.update(INTEGRATION, integration_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(INTEGRATION, row)


@router.delete("/integrations/{integration_id}", tags=["integrations"])
async def delete_integration(integration_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    actor.require("admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.require(INTEGRATION, integration_id)
        await objects.check_integration_unused(tx, row["name"])
        await tx.delete(INTEGRATION, integration_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": INTEGRATION.name, "id": integration_id, "deleted": True}


# --- aliases and configs: org-wide or one workspace's -------------------------------------


async def _scoped(ctx: Any, kind: Kind, object_id: str, actor: Actor, role: str) -> Row:
    row = await ctx.control.get(kind, object_id)
    if row is None or (not actor.can_see(row["workspace_id"]) and row["workspace_id"] is not None):
        raise NotFound(f"No {kind.name} with id {object_id!r}.", param="id")
    if row["workspace_id"] is None and role == "viewer":
        return row  # org-wide aliases and configs are visible to every admin identity
    actor.require(role, row["workspace_id"])
    return row


async def _alias_refs(tx: Change, targets: list[str] | None, config_id: str | None) -> None:
    names = [r["name"] for r in await tx.all(INTEGRATION)]
    configs = [config_id] if config_id and await tx.get(ROUTE_CONFIG, config_id) else []
    try:
        objects.check_alias_refs(targets or [], config_id, names, configs, "body")
    except BadRequest as exc:  # "body.targets.0: …" -> param "targets.0"
        param = (exc.param or "").removeprefix("body.")
        raise BadRequest(exc.message.removeprefix("body."), param=param) from None


def _valid_config(data: dict[str, Any]) -> dict[str, Any]:
    try:
        config = RouteConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        fields = [".".join(["config", *(str(p) for p in e["loc"])]) for e in errors]
        message = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, errors, strict=True))
        raise BadRequest(message, param=fields[0], code="invalid_config") from None
    refuse_inline_keys(config, "config.")
    return data


@router.get("/models", tags=["models"])
async def list_aliases(
    ctx: Ctx,
    actor: Who,
    limit: Limit = 50,
    cursor: Cursor = None,
    workspace_id: str | None = None,
    alias: str | None = None,
) -> dict[str, Any]:
    equals = {k: v for k, v in {"workspace_id": workspace_id, "alias": alias}.items() if v}
    result = await ctx.control.list(
        MODEL_ALIAS,
        equals=equals,
        workspace_in=actor.visible_workspaces(),
        include_global=True,
        cursor=cursor,
        limit=limit,
    )
    return page(MODEL_ALIAS, result)


@router.post("/models", status_code=201, tags=["models"])
async def create_alias(body: AliasCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin", body.workspace_id)
    async with ctx.control.change(actor.audit) as tx:
        if body.workspace_id is not None and await tx.get(WORKSPACE, body.workspace_id) is None:
            raise BadRequest(f"No workspace with id {body.workspace_id!r}.", param="workspace_id")
        if await tx.find(MODEL_ALIAS, alias=body.alias, workspace_id=body.workspace_id) is not None:
            raise Conflict(f"The alias {body.alias!r} exists in this scope.", param="alias")
        await _alias_refs(tx, body.targets, body.config_id)
        row = await tx.create(MODEL_ALIAS, body.model_dump())
    await ctx.changed(tx.version)
    return one(MODEL_ALIAS, row)


@router.get("/models/{alias_id}", tags=["models"])
async def get_alias(alias_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    return one(MODEL_ALIAS, await _scoped(ctx, MODEL_ALIAS, alias_id, actor, "viewer"))


@router.patch("/models/{alias_id}", tags=["models"])
async def update_alias(
    alias_id: str, body: AliasUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    await _scoped(ctx, MODEL_ALIAS, alias_id, actor, "admin")
    values = body.given()
    if values.get("targets") is not None:
        values["config_id"] = None
    elif values.get("config_id") is not None:
        values["targets"] = None
    elif values:
        raise BadRequest("Give either 'targets' or 'config_id'.", param="targets")
    async with ctx.control.change(actor.audit) as tx:
        await _alias_refs(tx, values.get("targets"), values.get("config_id"))
        row = await tx.update(MODEL_ALIAS, alias_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(MODEL_ALIAS, row)


@router.delete("/models/{alias_id}", tags=["models"])
async def delete_alias(alias_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _scoped(ctx, MODEL_ALIAS, alias_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        await tx.delete(MODEL_ALIAS, alias_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": MODEL_ALIAS.name, "id": alias_id, "deleted": True}


@router.get("/configs", tags=["configs"])
async def list_configs(
    ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None, workspace_id: str | None = None
) -> dict[str, Any]:
    result = await ctx.control.list(
        ROUTE_CONFIG,
        equals={"workspace_id": workspace_id} if workspace_id else {},
        workspace_in=actor.visible_workspaces(),
        include_global=True,
        cursor=cursor,
        limit=limit,
    )
    return page(ROUTE_CONFIG, result)


@router.post("/configs", status_code=201, tags=["configs"])
async def create_config(body: ConfigCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin", body.workspace_id)
    values = {
        "workspace_id": body.workspace_id,
        "description": body.description,
        "config": _valid_config(body.config),
    }
    if body.id is not None:
        values["id"] = body.id
    async with ctx.control.change(actor.audit) as tx:
        if body.id is not None and await tx.get(ROUTE_CONFIG, body.id) is not None:
            raise Conflict(f"A config with id {body.id!r} exists.", param="id")
        if body.workspace_id is not None and await tx.get(WORKSPACE, body.workspace_id) is None:
            raise BadRequest(f"No workspace with id {body.workspace_id!r}.", param="workspace_id")
        row = await tx.create(ROUTE_CONFIG, values)
    await ctx.changed(tx.version)
    return one(ROUTE_CONFIG, row)


@router.get("/configs/{config_id}", tags=["configs"])
async def get_config(config_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    return one(ROUTE_CONFIG, await _scoped(ctx, ROUTE_CONFIG, config_id, actor, "viewer"))


@router.patch("/configs/{config_id}", tags=["configs"])
async def update_config(
    config_id: str, body: ConfigUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    await _scoped(ctx, ROUTE_CONFIG, config_id, actor, "admin")
    values = body.given()
    if values.get("config") is not None:
        _valid_config(values["config"])
    elif "config" in values:
        raise BadRequest("config cannot be null.", param="config")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.update(ROUTE_CONFIG, config_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(ROUTE_CONFIG, row)


@router.delete("/configs/{config_id}", tags=["configs"])
async def delete_config(config_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _scoped(ctx, ROUTE_CONFIG, config_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        if await tx.find(MODEL_ALIAS, config_id=config_id) is not None:
            raise Conflict("An alias still uses this config.", code="in_use")
        await tx.delete(ROUTE_CONFIG, config_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": ROUTE_CONFIG.name, "id": config_id, "deleted": True}
