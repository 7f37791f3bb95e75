"""Rules for stored guardrails and attachments, shared by the admin API and the declarative apply.

A guardrail is org-wide (``workspace_id`` null) or one workspace's; an
attachment may name org-wide guardrails anywhere and a workspace's guardrails
only inside that workspace. Every name must exist and every check must be able
to run at the stage it is attached to (no ``json_schema`` on input, no
``model_allowlist`` on output).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockgate.errors import BadRequest, Conflict
from lockgate.guardrails.definition import GuardrailSpec, check_stage, compile_guardrail
from lockgate.store.control import (
    API_KEY,
    GUARDRAIL,
    GUARDRAIL_ATTACHMENT,
    MCP_SERVER,
    WORKSPACE,
    Change,
    Row,
)
from lockgate.store.tables import DEFAULT_ORG_ID

SPEC_COLUMNS = ("description", "action", "mode", "on_error", "timeout_ms", "roles", "checks")


def spec_values(spec: GuardrailSpec) -> dict[str, Any]:
    """The stored columns of a validated spec."""
    dumped = spec.model_dump(mode="json", by_alias=True)
    return {column: dumped[column] for column in SPEC_COLUMNS}


def spec_of(row: Mapping[str, Any]) -> GuardrailSpec:
    return GuardrailSpec.model_validate({c: row[c] for c in SPEC_COLUMNS if row.get(c) is not None})


async def check_refs(tx: Change, names: list[str], stage: str, workspace_id: str | None, where: str) -> None:
    """Every name is a guardrail visible from ``workspace_id`` whose checks run at ``stage``."""
    for i, name in enumerate(names):
        param = f"{where}.{i}"
        row = await tx.find(GUARDRAIL, name=name)
        if row is None:
            raise BadRequest(f"{param}: no guardrail named {name!r}", param=param)
        if row["workspace_id"] is not None and row["workspace_id"] != workspace_id:
            raise BadRequest(f"{param}: the guardrail {name!r} belongs to another workspace", param=param)
        try:
            check_stage(compile_guardrail(name, spec_of(row)), stage, param)
        except ValueError as exc:
            raise BadRequest(str(exc), param=param) from None
    if len(set(names)) != len(names):
        raise BadRequest(f"{where}: a guardrail is named twice", param=where)


async def resolve_target(tx: Change, scope: str, target_id: str | None) -> tuple[str, str | None]:
    """(target id, workspace id) of an attachment, checking the target exists."""
    if scope == "org":
        return DEFAULT_ORG_ID, None
    if target_id is None:
        raise BadRequest(f"scope {scope!r} needs target_id.", param="target_id")
    if scope == "workspace":
        if await tx.get(WORKSPACE, target_id) is None:
            raise BadRequest(f"No workspace with id {target_id!r}.", param="target_id")
        return target_id, target_id
    key = await tx.get(API_KEY, target_id)
    if key is None:
        raise BadRequest(f"No key with id {target_id!r}.", param="target_id")
    return target_id, key["workspace_id"]


async def check_still_attachable(tx: Change, name: str, spec: GuardrailSpec) -> None:
    """After a change to a guardrail: every attachment naming it must still be valid."""
    guardrail = compile_guardrail(name, spec)
    for row in await tx.all(GUARDRAIL_ATTACHMENT):
        for stage in ("input", "output"):
            if name in row[f"{stage}_guardrails"]:
                try:
                    check_stage(guardrail, stage, f"attachment {row['id']}")
                except ValueError as exc:
                    raise BadRequest(str(exc), param="checks") from None
    for row in await tx.all(MCP_SERVER):
        for stage in ("input", "output"):
            if name in (row["guardrails"] or {}).get(stage, ()):
                try:
                    check_stage(guardrail, stage, f"MCP server {row['name']}@{row['server_version']}")
                except ValueError as exc:
                    raise BadRequest(str(exc), param="checks") from None


async def check_unused(tx: Change, row: Row) -> None:
    for attachment in await tx.all(GUARDRAIL_ATTACHMENT):
        if row["name"] in attachment["input_guardrails"] + attachment["output_guardrails"]:
            raise Conflict(
                f"The guardrail {row['name']!r} is attached ({attachment['scope']} "
                f"{attachment['target_id']}); detach it first.",
                code="in_use",
            )
    for server in await tx.all(MCP_SERVER, retired=False):
        guardrails = server["guardrails"] or {}
        if row["name"] in [*guardrails.get("input", ()), *guardrails.get("output", ())]:
            raise Conflict(
                f"The guardrail {row['name']!r} guards the MCP server "
                f"{server['name']}@{server['server_version']}; detach it first.",
                code="in_use",
            )
