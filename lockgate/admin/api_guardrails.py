"""/guardrails (named definitions) and /guardrail-attachments (who runs which, Portkey-style lists).

Org-wide guardrails and the org's attachment need an org admin; a workspace's
guardrails, and the attachments of that workspace and its keys, its admins.
Viewers read. Definitions are validated as the data plane compiles them, so a
bad regex or an unknown check is a 400 naming the field, never a broken snapshot.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field, ValidationError

from lockgate.admin import guardrail_objects as rules
from lockgate.admin.app import Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.rbac import Actor
from lockgate.admin.schemas import Body
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.guardrails.definition import NAME_PATTERN, Action, GuardrailSpec
from lockgate.store.control import GUARDRAIL, GUARDRAIL_ATTACHMENT, WORKSPACE, Kind, Row

router = APIRouter()


class GuardrailCreate(Body):
    name: str = Field(pattern=NAME_PATTERN)
    workspace_id: str | None = Field(None, description="Unset: org-wide.")
    description: str = Field("", max_length=2000)
    checks: list[dict[str, Any]] = Field(min_length=1)
    action: Action = "deny"
    mode: Literal["sequential", "parallel"] = "sequential"
    on_error: Literal["open", "closed"] = "closed"
    timeout_ms: int = Field(1000, ge=1, le=60_000)
    roles: list[str] | None = None


class GuardrailUpdate(Body):
    description: str | None = Field(None, max_length=2000)
    checks: list[dict[str, Any]] | None = Field(None, min_length=1)
    action: Action | None = None
    mode: Literal["sequential", "parallel"] | None = None
    on_error: Literal["open", "closed"] | None = None
    timeout_ms: int | None = Field(None, ge=1, le=60_000)
    roles: list[str] | None = None


class AttachmentCreate(Body):
    scope: Literal["org", "workspace", "key"]
    target_id: str | None = Field(None, description="Workspace or key id; unset for the org.")
    input_guardrails: list[str] = Field(default_factory=list)
    output_guardrails: list[str] = Field(default_factory=list)


class AttachmentUpdate(Body):
    input_guardrails: list[str] | None = None
    output_guardrails: list[str] | None = None


def _spec(values: dict[str, Any]) -> GuardrailSpec:
    """Validate a definition; errors name the field (``checks.0.params.pattern``)."""
    try:
        return GuardrailSpec.model_validate(values)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'checks'}: {e['msg']}".replace("Value error, ", "")
            for e in errors
        )
        first = errors[0]
        param = ".".join(str(p) for p in first["loc"]) or _param_in(first["msg"])
        raise BadRequest(message, param=param, code="invalid_guardrail") from None


def _param_in(message: str) -> str:
    # Errors from compiling checks start with their field path: "checks.0.params.pattern: ...".
    head = message.replace("Value error, ", "").split(":", 1)[0]
    return head if head.startswith(("checks", "action")) else "checks"


async def _visible(ctx: Any, kind: Kind, object_id: str, actor: Actor, role: str) -> Row:
    row = await ctx.control.get(kind, object_id)
    if row is None or (row["workspace_id"] is not None and not actor.can_see(row["workspace_id"])):
        raise NotFound(f"No {kind.name} with id {object_id!r}.", param="id")
    if row["workspace_id"] is None and role == "viewer":
        return row
    actor.require(role, row["workspace_id"])
    return row


@router.get("/guardrails", tags=["guardrails"])
async def list_guardrails(
    ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None, workspace_id: str | None = None
) -> dict[str, Any]:
    result = await ctx.control.list(
        GUARDRAIL,
        equals={"workspace_id": workspace_id} if workspace_id else {},
        workspace_in=actor.visible_workspaces(),
        include_global=True,
        cursor=cursor,
        limit=limit,
    )
    return page(GUARDRAIL, result)


@router.post("/guardrails", status_code=201, tags=["guardrails"])
async def create_guardrail(body: GuardrailCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin", body.workspace_id)
    spec = _spec(body.model_dump(exclude={"name", "workspace_id"}))
    async with ctx.control.change(actor.audit) as tx:
        if body.workspace_id is not None and await tx.get(WORKSPACE, body.workspace_id) is None:
            raise BadRequest(f"No workspace with id {body.workspace_id!r}.", param="workspace_id")
        if await tx.find(GUARDRAIL, name=body.name) is not None:
            raise Conflict(f"A guardrail named {body.name!r} exists.", param="name")
        values = {"name": body.name, "workspace_id": body.workspace_id, **rules.spec_values(spec)}
        row = await tx.create(GUARDRAIL, values)
    await ctx.changed(tx.version)
    return one(GUARDRAIL, row)


@router.get("/guardrails/{guardrail_id}", tags=["guardrails"])
async def get_guardrail(guardrail_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    return one(GUARDRAIL, await _visible(ctx, GUARDRAIL, guardrail_id, actor, "viewer"))


@router.patch("/guardrails/{guardrail_id}", tags=["guardrails"])
async def update_guardrail(
    guardrail_id: str, body: GuardrailUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    await _visible(ctx, GUARDRAIL, guardrail_id, actor, "admin")
    changes = body.given()
    for column in ("checks", "action", "mode", "on_error", "timeout_ms", "description"):
        if column in changes and changes[column] is None:
            raise BadRequest(f"{column} cannot be null.", param=column)
    async with ctx.control.change(actor.audit) as tx:
        current = await tx.require(GUARDRAIL, guardrail_id)
        merged = {c: current[c] for c in rules.SPEC_COLUMNS} | changes
        spec = _spec({k: v for k, v in merged.items() if v is not None or k == "roles"})
        await rules.check_still_attachable(tx, current["name"], spec)
        row = await tx.update(GUARDRAIL, guardrail_id, rules.spec_values(spec), expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(GUARDRAIL, row)


@router.delete("/guardrails/{guardrail_id}", tags=["guardrails"])
async def delete_guardrail(guardrail_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _visible(ctx, GUARDRAIL, guardrail_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        row = await tx.require(GUARDRAIL, guardrail_id)
        await rules.check_unused(tx, row)
        await tx.delete(GUARDRAIL, guardrail_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": GUARDRAIL.name, "id": guardrail_id, "deleted": True}


@router.get("/guardrail-checks", tags=["guardrails"])
async def list_check_types(actor: Who) -> dict[str, Any]:
    """The registered check types and their parameters (JSON Schema), for consoles and linters."""
    from lockgate.guardrails import REGISTRY

    data = [
        {
            "type": spec.type,
            "description": spec.description,
            "stages": sorted(spec.stages),
            "mutates": spec.mutates,
            "params": spec.params.model_json_schema(by_alias=True),
        }
        for spec in REGISTRY.values()
    ]
    return {"object": "list", "data": sorted(data, key=lambda d: d["type"])}


# --- attachments ---------------------------------------------------------------------------


@router.get("/guardrail-attachments", tags=["guardrails"])
async def list_attachments(
    ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None, scope: str | None = None
) -> dict[str, Any]:
    result = await ctx.control.list(
        GUARDRAIL_ATTACHMENT,
        equals={"scope": scope} if scope else {},
        workspace_in=actor.visible_workspaces(),
        include_global=True,
        cursor=cursor,
        limit=limit,
    )
    return page(GUARDRAIL_ATTACHMENT, result)


@router.post("/guardrail-attachments", status_code=201, tags=["guardrails"])
async def create_attachment(body: AttachmentCreate, ctx: Ctx, actor: Who) -> dict[str, Any]:
    async with ctx.control.change(actor.audit) as tx:
        target_id, workspace_id = await rules.resolve_target(tx, body.scope, body.target_id)
        actor.require("admin", workspace_id)
        if await tx.find(GUARDRAIL_ATTACHMENT, scope=body.scope, target_id=target_id) is not None:
            raise Conflict(f"The {body.scope} {target_id!r} has an attachment; update it.", param="target_id")
        await rules.check_refs(tx, body.input_guardrails, "input", workspace_id, "input_guardrails")
        await rules.check_refs(tx, body.output_guardrails, "output", workspace_id, "output_guardrails")
        values = {
            "scope": body.scope,
            "target_id": target_id,
            "workspace_id": workspace_id,
            "input_guardrails": body.input_guardrails,
            "output_guardrails": body.output_guardrails,
        }
        row = await tx.create(GUARDRAIL_ATTACHMENT, values)
    await ctx.changed(tx.version)
    return one(GUARDRAIL_ATTACHMENT, row)


@router.get("/guardrail-attachments/{attachment_id}", tags=["guardrails"])
async def get_attachment(attachment_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    return one(
        GUARDRAIL_ATTACHMENT, await _visible(ctx, GUARDRAIL_ATTACHMENT, attachment_id, actor, "viewer")
    )


@router.patch("/guardrail-attachments/{attachment_id}", tags=["guardrails"])
async def update_attachment(
    attachment_id: str, body: AttachmentUpdate, ctx: Ctx, actor: Who, version: Version
) -> dict[str, Any]:
    row = await _visible(ctx, GUARDRAIL_ATTACHMENT, attachment_id, actor, "admin")
    values = {k: v for k, v in body.given().items() if v is not None}
    async with ctx.control.change(actor.audit) as tx:
        for stage in ("input", "output"):
            if f"{stage}_guardrails" in values:
                names = values[f"{stage}_guardrails"]
                await rules.check_refs(tx, names, stage, row["workspace_id"], f"{stage}_guardrails")
        row = await tx.update(GUARDRAIL_ATTACHMENT, attachment_id, values, expected_version=version)
    await ctx.changed(tx.version if tx.changed else None)
    return one(GUARDRAIL_ATTACHMENT, row)


@router.delete("/guardrail-attachments/{attachment_id}", tags=["guardrails"])
async def delete_attachment(attachment_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
    await _visible(ctx, GUARDRAIL_ATTACHMENT, attachment_id, actor, "admin")
    async with ctx.control.change(actor.audit) as tx:
        await tx.delete(GUARDRAIL_ATTACHMENT, attachment_id, expected_version=version)
    await ctx.changed(tx.version)
    return {"object": GUARDRAIL_ATTACHMENT.name, "id": attachment_id, "deleted": True}
