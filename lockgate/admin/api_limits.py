"""/budgets, /rate-limits, /policies and /usage.

Each budget, limit and policy belongs to its scope's workspace (a key's scope: the
key's workspace); admins of that workspace manage it. Org, integration and
metadata scopes are organization-level: org admins manage them, every admin
identity reads them. ``/usage`` shows a scope's live spend (the counters), its
budgets and windows, and its daily history from the ledger.

Annotations are evaluated here (no ``from __future__ import annotations``): the
three object kinds share one route factory, and FastAPI reads the body types
from the generated functions.
"""

import time
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from lockgate.admin import limits_objects as objects
from lockgate.admin.app import AdminContext, Ctx, Cursor, Limit, Version, Who, one, page
from lockgate.admin.rbac import Actor
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.governance.periods import PERIODS, day_number, field_name
from lockgate.governance.rules import budget_from_row, limit_from_row, scope_string
from lockgate.governance.specs import (
    NAME,
    BudgetFields,
    BudgetSpec,
    LimitFields,
    PolicyFields,
    PolicySpec,
    RateLimitSpec,
    parse_scope,
)
from lockgate.state.counters import CountersUnavailable
from lockgate.store import ledger
from lockgate.store.control import API_KEY, BUDGET, RATE_LIMIT, USAGE_POLICY, Kind, Row

router = APIRouter()


def _optional(fields: type[BaseModel], name: str) -> type[BaseModel]:
    """A partial update body: every field of ``fields`` optional, plus ``name``."""
    annotations: dict[str, Any] = {"name": str | None}
    namespace: dict[str, Any] = {
        "model_config": ConfigDict(extra="forbid"),
        "name": Field(None, pattern=NAME),
        "given": lambda self: {k: getattr(self, k) for k in self.model_fields_set},
    }
    for field_name_, info in fields.model_fields.items():
        annotations[field_name_] = info.annotation | None
        namespace[field_name_] = Field(None, description=info.description)
    namespace["__annotations__"] = annotations
    return type(name, (BaseModel,), namespace)


BudgetUpdate = _optional(BudgetFields, "BudgetUpdate")
RateLimitUpdate = _optional(LimitFields, "RateLimitUpdate")
PolicyUpdate = _optional(PolicyFields, "PolicyUpdate")


def _public(kind: Kind, row: Row) -> dict[str, Any]:
    return {**one(kind, row), "scope": objects.scope_of(row)}


async def _in_reach(ctx: AdminContext, kind: Kind, object_id: str, actor: Actor, role: str) -> Row:
    row = await ctx.control.get(kind, object_id)
    if row is None or (row["workspace_id"] is not None and not actor.can_see(row["workspace_id"])):
        raise NotFound(f"No {kind.name} with id {object_id!r}.", param="id")
    if role != "viewer" or row["workspace_id"] is not None:
        actor.require(role, row["workspace_id"])
    return row


def _values(kind: Kind, body: Any) -> dict[str, Any]:
    if kind is BUDGET:
        return objects.budget_values(body)
    if kind is RATE_LIMIT:
        return objects.limit_values(body)
    return objects.policy_values(body)


def _crud(kind: Kind, path: str, create_body: type[BaseModel], update_body: type[BaseModel]) -> None:
    tag = [path.strip("/")]

    @router.get(path, tags=tag, name=f"list_{kind.name}s")
    async def list_objects(
        ctx: Ctx, actor: Who, limit: Limit = 50, cursor: Cursor = None, scope_type: str | None = None
    ) -> dict[str, Any]:
        result = await ctx.control.list(
            kind,
            equals={"scope_type": scope_type} if scope_type else {},
            workspace_in=actor.visible_workspaces(),
            include_global=True,
            cursor=cursor,
            limit=limit,
        )
        return {**page(kind, result), "data": [_public(kind, r) for r in result.data]}

    async def create(body: Any, ctx: Ctx, actor: Who) -> dict[str, Any]:
        async with ctx.control.change(actor.audit) as tx:
            scope = await objects.resolve_scope(tx, body.scope, param="scope")
            actor.require("admin", scope["workspace_id"])
            if kind is USAGE_POLICY:
                objects.check_policy_scope(scope, "scope")
            if await tx.find(kind, name=body.name) is not None:
                raise Conflict(f"A {kind.name} named {body.name!r} exists.", param="name")
            row = await tx.create(kind, {"name": body.name, **scope, **_values(kind, body)})
        await ctx.changed(tx.version)
        return _public(kind, row)

    create.__annotations__["body"] = create_body
    router.post(path, status_code=201, tags=tag, name=f"create_{kind.name}")(create)

    @router.get(path + "/{object_id}", tags=tag, name=f"get_{kind.name}")
    async def get_object(object_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
        return _public(kind, await _in_reach(ctx, kind, object_id, actor, "viewer"))

    async def update(object_id: str, body: Any, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
        await _in_reach(ctx, kind, object_id, actor, "admin")
        values = body.given()
        for column, value in values.items():
            if value is None and column in ("name", "amount_usd", "period", "mode", "auto_revoke"):
                raise BadRequest(f"{column} cannot be null.", param=column)
        if values.get("alert_thresholds") is not None:
            values["alert_thresholds"] = BudgetFields(
                amount_usd=1, alert_thresholds=values["alert_thresholds"]
            ).alert_thresholds
        async with ctx.control.change(actor.audit) as tx:
            current = await tx.require(kind, object_id)
            if (
                "name" in values
                and values["name"] != current["name"]
                and await tx.find(kind, name=values["name"])
            ):
                raise Conflict(f"A {kind.name} named {values['name']!r} exists.", param="name")
            merged = {**current, **values}
            if kind is RATE_LIMIT:
                objects.check_limits_row(merged)
            if kind is BUDGET and merged["auto_revoke"] and merged["scope_type"] != "key":
                raise BadRequest("auto_revoke applies to key budgets only.", param="auto_revoke")
            row = await tx.update(kind, object_id, values, expected_version=version)
        await ctx.changed(tx.version if tx.changed else None)
        return _public(kind, row)

    update.__annotations__["body"] = update_body
    router.patch(path + "/{object_id}", tags=tag, name=f"update_{kind.name}")(update)

    @router.delete(path + "/{object_id}", tags=tag, name=f"delete_{kind.name}")
    async def delete_object(object_id: str, ctx: Ctx, actor: Who, version: Version) -> dict[str, Any]:
        await _in_reach(ctx, kind, object_id, actor, "admin")
        async with ctx.control.change(actor.audit) as tx:
            await tx.delete(kind, object_id, expected_version=version)
        await ctx.changed(tx.version)
        return {"object": kind.name, "id": object_id, "deleted": True}


_crud(BUDGET, "/budgets", BudgetSpec, BudgetUpdate)
_crud(RATE_LIMIT, "/rate-limits", RateLimitSpec, RateLimitUpdate)
_crud(USAGE_POLICY, "/policies", PolicySpec, PolicyUpdate)


@router.get("/usage", tags=["usage"])
async def usage(
    ctx: Ctx,
    actor: Who,
    scope: str = Query(
        description="org, workspace:<id>, key:<id>, integration:<name>, metadata:<key>=<value>"
    ),
    days: int = Query(30, ge=1, le=400, description="Days of daily history from the ledger."),
) -> dict[str, Any]:
    try:
        kind, ident, value = parse_scope(scope)
    except ValueError as exc:
        raise BadRequest(f"scope: {exc}", param="scope") from None
    if kind == "metadata" and value is None:
        raise BadRequest("scope: usage is per metadata value (metadata:<key>=<value>)", param="scope")
    workspace_id = ident if kind == "workspace" else None
    if kind == "key":
        row = await ctx.control.get(API_KEY, ident or "")
        if row is None or not actor.can_see(row["workspace_id"]):
            raise NotFound(f"No api_key with id {ident!r}.", param="scope")
        workspace_id = row["workspace_id"]
    actor.require("viewer", workspace_id)
    snapshot = ctx.snapshots.current
    counter_scope = (
        f"meta:{ident}={value}"
        if kind == "metadata"
        else scope_string(kind, ident, snapshot.governance.org_scope[4:])
    )
    now = time.time()
    live: dict[str, float] = {}
    live_error = None
    governor = ctx.governor
    if governor is not None:
        try:
            live = (await governor.counters.read((counter_scope,)))[counter_scope]
        except CountersUnavailable as exc:
            live_error = str(exc)
    periods = {p: live.get(field_name(p, now), 0.0) for p in PERIODS}
    budgets, limits = [], []
    state = await ctx.control.load_state()
    matching = [r for r in state.budgets if _applies(r, kind, ident, value)]
    for row in matching:
        budget = budget_from_row(row)
        spent = periods[budget.period]
        budgets.append(
            {
                "id": budget.id,
                "name": budget.name,
                "period": budget.period,
                "mode": "hard" if budget.hard else "soft",
                "amount_usd": budget.amount,
                "spent_usd": spent,
                "remaining_usd": max(budget.amount - spent, 0.0),
                "percent": round(spent / budget.amount * 100, 4) if budget.amount else None,
            }
        )
    for row in (r for r in state.rate_limits if _applies(r, kind, ident, value)):
        rule = limit_from_row(row)
        for window in rule.windows:
            used = None
            if governor is not None and live_error is None:
                key = f"{rule.id}:{counter_scope}:{window.name}"
                used = await governor.counters.window_count(key, window.seconds, now)
            limits.append(
                {"id": rule.id, "name": rule.name, "window": window.name, "limit": window.limit, "used": used}
            )
    return {
        "object": "usage",
        "scope": scope,
        "spend_usd": periods,
        "reserved_usd": live.get("r", 0.0),
        "counters": governor.counters.name if governor is not None else None,
        "counters_error": live_error,
        "budgets": budgets,
        "rate_limits": limits,
        "daily": await ledger.daily(ctx.control.engine, counter_scope, day_number(now) - days + 1),
    }


def _applies(row: Row, kind: str, ident: str | None, value: str | None) -> bool:
    if row["scope_type"] != kind:
        return False
    if kind == "org":
        return True
    if kind == "metadata":
        return row["scope_id"] == ident and row["scope_value"] in (None, value)
    return row["scope_id"] == ident
