"""Rules shared by the admin API and the declarative apply for budgets, rate limits and usage policies:
how a scope is resolved to stored columns, and the row values of each spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lockgate.errors import BadRequest
from lockgate.governance.specs import (
    LIMIT_FIELDS,
    BudgetFields,
    LimitFields,
    PolicyFields,
    format_scope,
    parse_scope,
)
from lockgate.store.control import API_KEY, INTEGRATION, WORKSPACE, Change, Row

WorkspaceByName = Callable[[str], str | None]


async def resolve_scope(
    tx: Change, scope: str, *, param: str, workspace_by_name: WorkspaceByName | None = None
) -> dict[str, Any]:
    """Scope text -> the stored scope columns plus ``workspace_id`` (the owner, for RBAC).

    With ``workspace_by_name`` (the declarative file) workspaces are named and keys are
    ``<workspace>/<key>``; otherwise both are ids.
    """
    try:
        kind, ident, value = parse_scope(scope)
    except ValueError as exc:
        raise BadRequest(f"{param}: {exc}", param=param) from None
    workspace_id: str | None = None
    if kind == "workspace":
        assert ident is not None
        if workspace_by_name is not None:
            found = workspace_by_name(ident)
            if found is None:
                raise BadRequest(f"{param}: no workspace named {ident!r}", param=param)
            ident = found
        elif await tx.get(WORKSPACE, ident) is None:
            raise BadRequest(f"{param}: no workspace with id {ident!r}", param=param)
        workspace_id = ident
    elif kind == "key":
        assert ident is not None
        if workspace_by_name is not None:
            ws_name, slash, key_name = ident.partition("/")
            ws = workspace_by_name(ws_name) if slash else None
            row = await tx.find(API_KEY, workspace_id=ws, name=key_name) if ws else None
            if row is None:
                raise BadRequest(
                    f"{param}: no key {ident!r} (write it as <workspace>/<key name>)", param=param
                )
        else:
            row = await tx.get(API_KEY, ident)
            if row is None:
                raise BadRequest(f"{param}: no key with id {ident!r}", param=param)
        ident, workspace_id = row["id"], row["workspace_id"]
    elif kind == "integration":
        from lockgate.config import credentials_from_env

        known = {r["name"] for r in await tx.all(INTEGRATION)} | {c.name for c in credentials_from_env()}
        if ident not in known:
            raise BadRequest(f"{param}: no integration named {ident!r}", param=param)
    return {"scope_type": kind, "scope_id": ident, "scope_value": value, "workspace_id": workspace_id}


def budget_values(spec: BudgetFields) -> dict[str, Any]:
    return {
        "amount_usd": spec.amount_usd,
        "period": spec.period,
        "mode": spec.mode,
        "auto_revoke": spec.auto_revoke,
        "alert_thresholds": list(spec.alert_thresholds),
        "alert_webhook": spec.alert_webhook,
    }


def limit_values(spec: LimitFields) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in LIMIT_FIELDS}


def policy_values(spec: PolicyFields) -> dict[str, Any]:
    return {
        "allowed_models": spec.allowed_models,
        "denied_models": spec.denied_models,
        "max_tokens": spec.max_tokens,
        "max_n": spec.max_n,
        "temperature_min": spec.temperature_min,
        "temperature_max": spec.temperature_max,
        "required_metadata": spec.required_metadata,
    }


def check_policy_scope(scope: Mapping[str, Any], param: str) -> None:
    if scope["scope_type"] not in ("workspace", "key"):
        raise BadRequest(f"{param}: usage policies attach to a workspace or a key", param=param)


def check_limits_row(row: Mapping[str, Any]) -> None:
    if all(row.get(name) is None for name in LIMIT_FIELDS):
        raise BadRequest(
            f"A rate limit needs at least one of {', '.join(LIMIT_FIELDS)}.", param="requests_per_minute"
        )


def scope_of(
    row: Row, *, names: Mapping[str, str] | None = None, keys: Mapping[str, str] | None = None
) -> str:
    """The scope text of a stored row: by id, or by name when ``names`` (workspace id -> name) and
    ``keys`` (key id -> "<workspace>/<key>") are given (the export)."""
    kind, ident = row["scope_type"], row["scope_id"]
    if names is not None and kind == "workspace":
        ident = names.get(ident, ident)
    if keys is not None and kind == "key":
        ident = keys.get(ident, ident)
    return format_scope(kind, ident, row["scope_value"])
