"""The ``guardrails`` and ``guardrail_attachments`` sections of lockgate.yaml: apply and export.

Called by the declarative applier after workspaces and keys exist (attachments
name both). Guardrails match by name, attachments by their target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lockgate.admin import guardrail_objects as rules
from lockgate.config import FileConfig
from lockgate.errors import BadRequest
from lockgate.guardrails.definition import GuardrailSpec
from lockgate.store.control import API_KEY, GUARDRAIL, GUARDRAIL_ATTACHMENT, ControlState
from lockgate.store.tables import DEFAULT_ORG_ID

if TYPE_CHECKING:
    from lockgate.admin.declarative import _Applier


async def apply_guardrails(applier: _Applier, config: FileConfig) -> None:
    for i, item in enumerate(config.guardrails):
        workspace_id = applier._workspace(item.workspace, f"guardrails.{i}.workspace")
        spec = GuardrailSpec.model_validate(item.model_dump(exclude={"name", "workspace"}, by_alias=True))
        values = {"name": item.name, "workspace_id": workspace_id, **rules.spec_values(spec)}
        await applier._upsert(GUARDRAIL, item.name, {"name": item.name}, values)
    for i, item in enumerate(config.guardrail_attachments):
        where = f"guardrail_attachments.{i}"
        workspace_id = applier._workspace(item.workspace, f"{where}.workspace")
        target_id: str | None = DEFAULT_ORG_ID if item.scope == "org" else workspace_id
        if item.scope == "key":
            key = await applier.tx.find(API_KEY, workspace_id=workspace_id, name=item.key)
            if key is None and not applier.dry_run:
                raise BadRequest(
                    f"{where}.key: no key named {item.key!r} in {item.workspace!r}", param=f"{where}.key"
                )
            target_id = key["id"] if key is not None else f"(new {item.key})"
        if not applier.dry_run:
            await rules.check_refs(
                applier.tx, item.input_guardrails, "input", workspace_id, f"{where}.input_guardrails"
            )
            await rules.check_refs(
                applier.tx, item.output_guardrails, "output", workspace_id, f"{where}.output_guardrails"
            )
        values = {
            "scope": item.scope,
            "target_id": target_id,
            "workspace_id": workspace_id,
            "input_guardrails": item.input_guardrails,
            "output_guardrails": item.output_guardrails,
        }
        name = ":".join(p for p in (item.scope, item.workspace, item.key) if p)
        await applier._upsert(
            GUARDRAIL_ATTACHMENT, name, {"scope": item.scope, "target_id": target_id}, values
        )


def export_guardrails(state: ControlState, ws_names: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    keys = {row["id"]: row for row in state.api_keys}
    guardrails = []
    for row in state.guardrails:
        item: dict[str, Any] = {"name": row["name"]}
        if row["workspace_id"]:
            item["workspace"] = ws_names[row["workspace_id"]]
        item.update({c: row[c] for c in rules.SPEC_COLUMNS if row[c] not in (None, "")})
        guardrails.append(item)
    attachments = []
    for row in state.guardrail_attachments:
        entry: dict[str, Any] = {"scope": row["scope"]}
        if row["workspace_id"]:
            entry["workspace"] = ws_names[row["workspace_id"]]
        if row["scope"] == "key":
            if row["target_id"] not in keys:
                continue
            entry["key"] = keys[row["target_id"]]["name"]
        for stage in ("input_guardrails", "output_guardrails"):
            if row[stage]:
                entry[stage] = row[stage]
        attachments.append(entry)
    return {"guardrails": guardrails, "guardrail_attachments": attachments}
