"""/audit (read, verify) and /config (lockgate.yaml export and apply)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query

from lockgate.admin.app import Ctx, Limit, Who
from lockgate.admin.declarative import apply_config, export_config
from lockgate.admin.schemas import ApplyRequest
from lockgate.config import ConfigError, parse_config_text
from lockgate.errors import BadRequest
from lockgate.store import audit

router = APIRouter()


@router.get("/audit", tags=["audit"])
async def list_audit(
    ctx: Ctx,
    actor: Who,
    limit: Limit = 50,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of the previous page.")] = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    workspace_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Newest first. Without an org role you see the entries of your workspaces only."""
    filters = {"object_type": object_type, "object_id": object_id, "actor_id": actor_id, "action": action}
    equals: dict[str, Any] = {k: v for k, v in filters.items() if v}
    visible = actor.visible_workspaces()
    if workspace_id is not None:
        equals["workspace_id"] = workspace_id
    rows, next_seq = await audit.entries(
        ctx.control.engine,
        equals=equals,
        workspace_in=sorted(visible) if visible is not None else None,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
        after_seq=cursor,
        limit=limit,
    )
    data = [{"object": "audit_entry", **row} for row in rows]
    return {"object": "list", "data": data, "has_more": next_seq is not None, "next_cursor": next_seq}


@router.get("/audit/verify", tags=["audit"])
async def verify_audit(ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin")
    verdict = await audit.verify(ctx.control.engine)
    return {
        "object": "audit_verification",
        "ok": verdict.ok,
        "checked": verdict.checked,
        "head": verdict.head,
        "broken_at": verdict.broken_at,
        "reason": verdict.reason,
    }


@router.get("/config/export", tags=["config"])
async def export(ctx: Ctx, actor: Who) -> dict[str, Any]:
    actor.require("admin")
    exported = await export_config(ctx.control)
    return {"object": "config_export", "yaml": yaml.safe_dump(exported, sort_keys=False), "config": exported}


@router.post("/config/apply", tags=["config"])
async def apply(
    body: ApplyRequest,
    ctx: Ctx,
    actor: Who,
    dry_run: Annotated[bool, Query(description="Show the diff without changing anything.")] = False,
    merge: Annotated[
        bool, Query(description="Create and update only, as API-managed objects; delete nothing.")
    ] = False,
) -> dict[str, Any]:
    actor.require("owner")
    try:
        config = parse_config_text(body.yaml, source="yaml")
    except ConfigError as exc:
        first = exc.errors[0]["loc"] if exc.errors else ()
        raise BadRequest(
            str(exc), param=".".join(str(p) for p in first) or "yaml", code="invalid_config"
        ) from exc
    result = await apply_config(ctx.control, ctx.secrets, config, actor.audit, dry_run=dry_run, merge=merge)
    await ctx.changed(result.version)
    return {
        "object": "config_apply",
        "dry_run": dry_run,
        "changed": bool(result.changes),
        "version": result.version,
        "changes": [c.to_dict() for c in result.changes],
        "generated_keys": result.generated_keys,
    }
