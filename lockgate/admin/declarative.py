"""``lockgate.yaml`` as desired state: plan a diff, apply it in one transaction, export the store.

Objects are matched by name (workspaces, integrations), by (workspace, name) for
keys and (workspace, alias) for aliases, and by id for saved configs. Applying
creates and updates them and marks them ``source = "file"``; a file-managed
object that disappears from the file is deleted, while objects made through the
admin API are never pruned. Applying the same file twice changes nothing
(no version bump, no audit rows), which is what makes start-up apply safe on
every worker.

A *merge* (``merge=True``, what ``lockgate import --apply`` uses) creates and
updates the document's objects as API-managed ones and deletes nothing: an
imported fragment must neither prune the start-up file's objects nor be pruned
by the next start-up apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.admin import limits_objects, objects
from lockgate.config import FileConfig
from lockgate.errors import BadRequest
from lockgate.governance import secret_fields
from lockgate.governance.auth import generate_key, hash_key, key_hint
from lockgate.governance.secrets import SecretBox, SecretKeyError
from lockgate.governance.specs import parse_scope
from lockgate.store.control import (
    API_KEY,
    BUDGET,
    GUARDRAIL,
    GUARDRAIL_ATTACHMENT,
    INTEGRATION,
    MCP_ACCESS_RULE,
    MCP_SERVER,
    MCP_TOOL_POLICY,
    MODEL_ALIAS,
    OAUTH_ISSUER,
    RATE_LIMIT,
    ROUTE_CONFIG,
    USAGE_POLICY,
    WORKSPACE,
    AuditActor,
    Change,
    ControlStore,
    Kind,
    Row,
)
from lockgate.store.tables import DEFAULT_ORG_ID

FILE_ACTOR = AuditActor("lockgate.yaml", "lockgate.yaml")


@dataclass(slots=True)
class PlannedChange:
    action: str  # create | update | delete
    kind: str
    name: str
    # field -> [before, after]; secrets appear masked.
    fields: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "kind": self.kind, "name": self.name, "fields": self.fields}


@dataclass(slots=True)
class ApplyResult:
    changes: list[PlannedChange]
    dry_run: bool
    version: int | None = None
    generated_keys: dict[str, str] = field(default_factory=dict)  # "workspace/name" -> the key, once


async def apply_config(
    control: ControlStore,
    secrets: SecretBox,
    config: FileConfig,
    actor: AuditActor = FILE_ACTOR,
    *,
    dry_run: bool = False,
    merge: bool = False,
) -> ApplyResult:
    async with control.change(actor) as tx:
        applier = _Applier(tx, secrets, dry_run, merge)
        await applier.run(config)
        result = ApplyResult(applier.changes, dry_run, None, applier.generated)
        version = tx.version if tx.changed else None
    result.version = version
    return result


class _Applier:
    def __init__(self, tx: Change, secrets: SecretBox, dry_run: bool, merge: bool = False) -> None:
        self.tx = tx
        self.secrets = secrets
        self.dry_run = dry_run
        self.source = "api" if merge else "file"
        self.changes: list[PlannedChange] = []
        self.generated: dict[str, str] = {}
        self.workspace_ids: dict[str, str] = {}
        self.kept: dict[str, set[str]] = {}

    async def run(self, config: FileConfig) -> None:
        self.workspace_ids = {w["name"]: w["id"] for w in await self.tx.all(WORKSPACE)}
        for ws in config.workspaces:
            values = {"name": ws.name, "description": ws.description, "metadata": ws.metadata}
            row = await self._upsert(
                WORKSPACE, ws.name, {"name": ws.name}, values, create_extra={"org_id": DEFAULT_ORG_ID}
            )
            # A dry run creates nothing; later references still need a stand-in id.
            self.workspace_ids[ws.name] = row["id"] if row else f"(new {ws.name})"
        integration_names = {r["name"] for r in await self.tx.all(INTEGRATION)}
        integration_names |= {i.name for i in config.integrations}
        for i, item in enumerate(config.integrations):
            existing = await self.tx.find(INTEGRATION, name=item.name)
            # Sealed against the stored row: unchanged secrets keep their ciphertext, so a
            # second apply of the same file changes nothing.
            values = objects.integration_values(
                self.secrets,
                name=item.name,
                provider=item.provider,
                base_url=item.base_url,
                api_key=item.api_key or None,
                headers=item.headers,
                options=item.options,
                workspace_ids=self._workspaces(item.workspaces, f"integrations.{i}.workspaces"),
                allowed_models=item.allowed_models,
                previous=existing,
                where=f"integrations.{i}",
            )
            if item.api_key and (existing is None or self._secret_of(existing) != item.api_key):
                values.update(objects.secret_values(self.secrets, item.api_key))
            elif not item.api_key:
                values.update(secret_ciphertext=None, secret_hint=None)
            await self._upsert(INTEGRATION, item.name, {"name": item.name}, {**values, "name": item.name})
        config_ids = {r["id"] for r in await self.tx.all(ROUTE_CONFIG)} | {c.id for c in config.configs}
        for i, saved in enumerate(config.configs):
            values = {
                "workspace_id": self._workspace(saved.workspace, f"configs.{i}.workspace"),
                "description": saved.description,
                "config": saved.config,
            }
            await self._upsert(ROUTE_CONFIG, saved.id, {"id": saved.id}, {**values, "id": saved.id})
        for i, alias in enumerate(config.models):
            where = f"models.{i}"
            objects.check_alias_refs(alias.targets, alias.config, integration_names, config_ids, where)
            workspace_id = self._workspace(alias.workspace, f"{where}.workspace")
            values = {
                "alias": alias.alias,
                "workspace_id": workspace_id,
                "targets": alias.targets or None,
                "config_id": alias.config,
            }
            await self._upsert(
                MODEL_ALIAS, alias.alias, {"alias": alias.alias, "workspace_id": workspace_id}, values
            )
        for i, key in enumerate(config.keys):
            await self._key(key, f"keys.{i}")
        from lockgate.admin.declarative_guardrails import apply_guardrails

        await apply_guardrails(self, config)
        await self._limits(config)
        from lockgate.admin.declarative_mcp import apply_mcp

        await apply_mcp(self, config.mcp_servers, config.mcp_access_rules, config.mcp_tool_policies)
        from lockgate.admin.declarative_mcp import apply_oauth

        await apply_oauth(self, config.oauth_issuers)
        if self.source == "file":
            await self._prune()

    async def _limits(self, config: FileConfig) -> None:
        """Budgets, rate limits and policies, matched by name; scopes resolve by name."""
        sections = (
            (BUDGET, "budgets", config.budgets, limits_objects.budget_values),
            (RATE_LIMIT, "rate_limits", config.rate_limits, limits_objects.limit_values),
            (USAGE_POLICY, "policies", config.policies, limits_objects.policy_values),
        )
        for kind, section, specs, values_of in sections:
            for i, spec in enumerate(specs):
                param = f"{section}.{i}.scope"
                try:
                    scope = await limits_objects.resolve_scope(
                        self.tx, spec.scope, param=param, workspace_by_name=self.workspace_ids.get
                    )
                except BadRequest:
                    if not (self.dry_run and _declared(config, spec.scope)):
                        raise
                    # A dry run creates nothing: a workspace or key this file adds gets a stand-in.
                    kind_, ident, value = parse_scope(spec.scope)
                    scope = {"scope_type": kind_, "scope_id": f"(new {ident})", "scope_value": value}
                    scope["workspace_id"] = None
                values = {"name": spec.name, **scope, **values_of(spec)}
                await self._upsert(kind, spec.name, {"name": spec.name}, values)

    async def _key(self, key: Any, where: str) -> None:
        workspace_id = self._workspace(key.workspace, f"{where}.workspace")
        assert workspace_id is not None
        values: dict[str, Any] = {
            "workspace_id": workspace_id,
            "name": key.name,
            "expires_at": key.expires_at.timestamp() if key.expires_at else None,
            "allowed_models": key.allowed_models,
            "metadata": key.metadata,
        }
        existing = await self.tx.find(API_KEY, workspace_id=workspace_id, name=key.name)
        if key.key is not None:
            values.update(key_hash=hash_key(key.key), key_hint=key_hint(key.key))
        elif key.key_hash is not None:
            values.update(key_hash=key.key_hash, key_hint="lg-...(hash)")
        elif existing is None:
            plaintext = generate_key()
            values.update(key_hash=hash_key(plaintext), key_hint=key_hint(plaintext))
            if not self.dry_run:
                self.generated[f"{key.workspace}/{key.name}"] = plaintext
        if existing is None:
            values["status"] = "active"
        await self._upsert(API_KEY, f"{key.workspace}/{key.name}", None, values, existing=existing)

    def _workspace(self, name: str | None, param: str) -> str | None:
        if name is None:
            return None
        if name not in self.workspace_ids:
            raise BadRequest(f"{param}: no workspace named {name!r}", param=param)
        return self.workspace_ids[name]

    def _workspaces(self, names: list[str] | None, param: str) -> list[str] | None:
        if names is None:
            return None
        return sorted(self._workspace(n, param) or "" for n in names)

    def _secret_of(self, row: Row) -> str | None:
        try:
            return self.secrets.decrypt(row["secret_ciphertext"]) if row["secret_ciphertext"] else None
        except SecretKeyError:
            return None  # unreadable under the current key: the file's secret replaces it

    async def _upsert(
        self,
        kind: Kind,
        name: str,
        match: Mapping[str, Any] | None,
        values: dict[str, Any],
        *,
        existing: Row | None = None,
        create_extra: Mapping[str, Any] | None = None,
    ) -> Row | None:
        if match is not None:
            existing = await self.tx.find(kind, **match)
        if existing is None:
            self.changes.append(PlannedChange("create", kind.name, name, _shown(kind, {}, values)))
            if self.dry_run:
                return None
            row = await self.tx.create(kind, {**values, **(create_extra or {}), "source": self.source})
        else:
            diff = {k: v for k, v in values.items() if existing.get(k) != v}
            if self.source == "file" and existing["source"] != "file":
                diff["source"] = "file"
            if diff:
                self.changes.append(PlannedChange("update", kind.name, name, _shown(kind, existing, diff)))
                if not self.dry_run:
                    existing = await self.tx.update(kind, existing["id"], diff)
            row = existing
        self.kept.setdefault(kind.name, set()).add(row["id"])
        return row

    async def _prune(self) -> None:
        for kind in (
            OAUTH_ISSUER,
            MCP_TOOL_POLICY,
            MCP_ACCESS_RULE,
            MCP_SERVER,
            GUARDRAIL_ATTACHMENT,
            GUARDRAIL,
            BUDGET,
            RATE_LIMIT,
            USAGE_POLICY,
            API_KEY,
            MODEL_ALIAS,
            ROUTE_CONFIG,
            INTEGRATION,
            WORKSPACE,
        ):
            for row in await self.tx.all(kind, source="file"):
                if row["id"] in self.kept.get(kind.name, set()):
                    continue
                name = row.get("name") or row.get("alias") or row.get("target_id") or row["id"]
                self.changes.append(PlannedChange("delete", kind.name, name))
                if not self.dry_run:
                    if kind is WORKSPACE:
                        await objects.check_workspace_empty(self.tx, row["id"])
                    elif kind is INTEGRATION:
                        await objects.check_integration_unused(self.tx, row["name"])
                    await self.tx.delete(kind, row["id"])


def _shown(kind: Kind, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    shown: dict[str, list[Any]] = {}
    for key, value in after.items():
        if key == "source":
            continue
        if key in kind.hidden:  # a secret or a hash changed: say so, never what it holds
            shown[key] = ["(hidden)" if before.get(key) else None, "(hidden)" if value else None]
            continue
        shown[key] = [before.get(key), value]
    return shown


async def export_config(control: ControlStore) -> dict[str, Any]:
    """The store as a lockgate.yaml mapping. Secrets are not exported: an integration's
    ``api_key`` and its secret options and headers are ``${VAR}`` references to fill in
    (``secret_fields.env_var_name``), and keys are exported by hash."""
    state = await control.load_state()
    ws_names = {w["id"]: w["name"] for w in state.workspaces}
    out: dict[str, Any] = {
        "workspaces": [
            {"name": w["name"], "description": w["description"], "metadata": w["metadata"]}
            for w in state.workspaces
            if w["org_id"] == DEFAULT_ORG_ID
        ],
        "integrations": [],
        "configs": [],
        "models": [],
        "keys": [],
    }
    for row in state.integrations:
        item: dict[str, Any] = {"name": row["name"], "provider": row["provider"]}
        if row["base_url"]:
            item["base_url"] = row["base_url"]
        if row["secret_ciphertext"]:
            item["api_key"] = "${" + secret_fields.env_var_name(row["name"]) + "}"
        for column in ("headers", "options"):
            if row[column]:
                item[column] = secret_fields.with_references(
                    row["provider"], column, row[column], row["name"]
                )
        if row["workspace_ids"] is not None:
            item["workspaces"] = [ws_names[w] for w in row["workspace_ids"] if w in ws_names]
        if row["allowed_models"] is not None:
            item["allowed_models"] = row["allowed_models"]
        out["integrations"].append(item)
    for row in state.route_configs:
        saved = {"id": row["id"], "description": row["description"], "config": row["config"]}
        if row["workspace_id"]:
            saved["workspace"] = ws_names[row["workspace_id"]]
        out["configs"].append(saved)
    for row in state.model_aliases:
        alias: dict[str, Any] = {"alias": row["alias"]}
        if row["workspace_id"]:
            alias["workspace"] = ws_names[row["workspace_id"]]
        if row["config_id"]:
            alias["config"] = row["config_id"]
        else:
            alias["targets"] = row["targets"]
        out["models"].append(alias)
    key_names = {k["id"]: f"{ws_names[k['workspace_id']]}/{k['name']}" for k in state.api_keys}
    for section, rows, values_of in (
        ("budgets", state.budgets, _budget_export),
        ("rate_limits", state.rate_limits, _limit_export),
        ("policies", state.usage_policies, _policy_export),
    ):
        out[section] = [
            {
                "name": r["name"],
                "scope": limits_objects.scope_of(r, names=ws_names, keys=key_names),
                **values_of(r),
            }
            for r in rows
        ]
    for row in state.api_keys:
        if row["status"] != "active":
            continue
        key: dict[str, Any] = {"name": row["name"], "workspace": ws_names[row["workspace_id"]]}
        key["key_hash"] = row["key_hash"]
        if row["expires_at"] is not None:
            key["expires_at"] = row["expires_at"]
        if row["allowed_models"] is not None:
            key["allowed_models"] = row["allowed_models"]
        if row["metadata"]:
            key["metadata"] = row["metadata"]
        out["keys"].append(key)
    from lockgate.admin.declarative_guardrails import export_guardrails

    out.update(export_guardrails(state, ws_names))
    from lockgate.admin.declarative_mcp import export_mcp

    out.update(export_mcp(state, ws_names))
    return {k: v for k, v in out.items() if v}


def _declared(config: FileConfig, scope: str) -> bool:
    kind, ident, _ = parse_scope(scope)
    if kind == "workspace":
        return any(w.name == ident for w in config.workspaces)
    if kind == "key":
        return any(f"{k.workspace}/{k.name}" == ident for k in config.keys)
    return False


def _budget_export(row: Row) -> dict[str, Any]:
    out = {k: row[k] for k in ("amount_usd", "period", "mode", "auto_revoke", "alert_thresholds")}
    if row["alert_webhook"]:
        out["alert_webhook"] = row["alert_webhook"]
    return out


def _limit_export(row: Row) -> dict[str, Any]:
    from lockgate.governance.specs import LIMIT_FIELDS

    return {k: row[k] for k in LIMIT_FIELDS if row[k] is not None}


def _policy_export(row: Row) -> dict[str, Any]:
    columns = (
        "allowed_models",
        "denied_models",
        "max_tokens",
        "max_n",
        "temperature_min",
        "temperature_max",
        "required_metadata",
    )
    return {k: row[k] for k in columns if row[k] is not None}
