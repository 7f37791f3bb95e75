"""The ``mcp_servers``, ``mcp_access_rules``, ``mcp_tool_policies`` and ``oauth_issuers`` sections of
lockgate.yaml: apply and export.

Servers match by (name, version); rules, policies and issuers by name. Workspaces and keys are named
(``workspaces: [team-a]``, ``keys: [team-a/ci]``) and resolved to ids here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lockgate.errors import BadRequest
from lockgate.mcp.oauth_specs import OAuthIssuerSpec, issuer_spec_dict, issuer_values
from lockgate.mcp.specs import (
    POLICY_COLUMNS,
    RULE_COLUMNS,
    McpAccessRuleConfig,
    McpServerConfig,
    McpToolPolicyConfig,
    check_guardrail_refs,
    limit_of,
    policy_values,
    server_values,
)
from lockgate.store.control import (
    API_KEY,
    MCP_ACCESS_RULE,
    MCP_SERVER,
    MCP_TOOL_POLICY,
    OAUTH_ISSUER,
    ControlState,
)

if TYPE_CHECKING:
    from lockgate.admin.declarative import _Applier


async def apply_mcp(
    applier: _Applier,
    servers: list[McpServerConfig],
    rules: list[McpAccessRuleConfig],
    policies: list[McpToolPolicyConfig],
) -> None:
    for i, item in enumerate(servers):
        where = f"mcp_servers.{i}"
        values = server_values(item, applier.secrets.encrypt)
        existing = await applier.tx.find(MCP_SERVER, name=item.name, server_version=item.version)
        if existing is not None and item.secret and applier._secret_of(existing) == item.secret:
            values["secret_ciphertext"] = existing["secret_ciphertext"]  # same secret: no change
        key_ids = None
        if item.keys is not None:
            key_ids = [await _key_id(applier, ref, f"{where}.keys") for ref in item.keys]
        owner = applier._workspace(item.workspace, f"{where}.workspace")
        if not applier.dry_run:
            await check_guardrail_refs(applier.tx, item.guardrails, owner, f"{where}.guardrails")
        values.update(
            workspace_id=owner,
            workspace_ids=applier._workspaces(item.workspaces, f"{where}.workspaces"),
            key_ids=key_ids,
            latest=True,
            retired=False,
        )
        await applier._upsert(
            MCP_SERVER,
            f"{item.name}@{item.version}",
            {"name": item.name, "server_version": item.version},
            values,
        )
    for i, rule in enumerate(rules):
        where = f"mcp_access_rules.{i}"
        workspace_id = applier._workspace(rule.workspace, f"{where}.workspace") or ""
        scope_type, scope_id = "workspace", workspace_id
        if rule.key is not None:
            scope_type, scope_id = (
                "key",
                await _key_id(applier, f"{rule.workspace}/{rule.key}", f"{where}.key"),
            )
        values = {
            "name": rule.name,
            "scope_type": scope_type,
            "scope_id": scope_id,
            "workspace_id": workspace_id,
            **{c: getattr(rule, c) for c in RULE_COLUMNS},
        }
        await applier._upsert(MCP_ACCESS_RULE, rule.name, {"name": rule.name}, values)
    for i, policy in enumerate(policies):
        where = f"mcp_tool_policies.{i}"
        scope = await _scope(applier, policy.workspace, policy.key, where)
        values = {**policy_values(policy), **scope}
        await applier._upsert(MCP_TOOL_POLICY, policy.name, {"name": policy.name}, values)


async def apply_oauth(applier: _Applier, issuers: list[OAuthIssuerSpec]) -> None:
    for i, spec in enumerate(issuers):
        values = issuer_values(
            spec, lambda name, param, i=i: applier._workspace(name, f"oauth_issuers.{i}.{param}")
        )
        await applier._upsert(OAUTH_ISSUER, spec.name, {"name": spec.name}, values)


async def _scope(applier: _Applier, workspace: str, key: str | None, where: str) -> dict[str, str]:
    workspace_id = applier._workspace(workspace, f"{where}.workspace") or ""
    if key is None:
        return {"scope_type": "workspace", "scope_id": workspace_id, "workspace_id": workspace_id}
    key_id = await _key_id(applier, f"{workspace}/{key}", f"{where}.key")
    return {"scope_type": "key", "scope_id": key_id, "workspace_id": workspace_id}


async def _key_id(applier: _Applier, ref: str, param: str) -> str:
    workspace, _, name = ref.rpartition("/")
    workspace_id = applier._workspace(workspace or "default", param)
    key = await applier.tx.find(API_KEY, workspace_id=workspace_id, name=name)
    if key is None:
        if applier.dry_run:
            return f"(new {ref})"
        raise BadRequest(f"{param}: no key named {ref!r}", param=param)
    return str(key["id"])


def export_mcp(state: ControlState, ws_names: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    keys = {row["id"]: f"{ws_names.get(row['workspace_id'], '?')}/{row['name']}" for row in state.api_keys}
    servers = []
    for row in state.mcp_servers:
        if row["retired"]:
            continue
        item: dict[str, Any] = {
            "name": row["name"],
            "version": row["server_version"],
            "transport": row["transport"],
        }
        for column in ("description", "url", "command", "env", "headers", "auth_header", "auth_scheme"):
            if row[column]:
                item[column] = row[column]
        if row["secret_ciphertext"]:
            item["secret"] = "${MCP_SECRET_" + row["name"].upper().replace("-", "_") + "}"
        item.update(status=row["status"], pin_policy=row["pin_policy"], timeout_ms=row["timeout_ms"])
        if row["tool_status"]:
            item["tool_status"] = row["tool_status"]
        if row["tags"]:
            item["tags"] = row["tags"]
        if row["tool_costs"]:
            item["tool_costs"] = row["tool_costs"]
        if row.get("guardrails"):
            item["guardrails"] = row["guardrails"]
        if row["workspace_id"]:
            item["workspace"] = ws_names[row["workspace_id"]]
        if row["workspace_ids"] is not None:
            item["workspaces"] = [ws_names[w] for w in row["workspace_ids"] if w in ws_names]
        if row["key_ids"] is not None:
            item["keys"] = [keys[k] for k in row["key_ids"] if k in keys]
        servers.append(item)
    rules = []
    for row in state.mcp_access_rules:
        rule: dict[str, Any] = {
            "name": row["name"],
            "workspace": ws_names.get(row["workspace_id"], "default"),
        }
        if row["scope_type"] == "key" and row["scope_id"] in keys:
            rule["key"] = keys[row["scope_id"]].rpartition("/")[2]
        rule.update({c: row[c] for c in RULE_COLUMNS if row[c] is not None})
        rules.append(rule)
    policies = []
    for row in state.mcp_tool_policies:
        policy: dict[str, Any] = {
            "name": row["name"],
            "workspace": ws_names.get(row["workspace_id"], "default"),
        }
        if row["scope_type"] == "key" and row["scope_id"] in keys:
            policy["key"] = keys[row["scope_id"]].rpartition("/")[2]
        if row["when_expr"] is not None:
            policy["when"] = row["when_expr"]
        policy.update({c: row[c] for c in POLICY_COLUMNS})
        if limit_of(row) is not None:
            policy["limit"] = limit_of(row)
        policies.append(policy)
    return {
        "mcp_servers": servers,
        "mcp_access_rules": rules,
        "mcp_tool_policies": policies,
        "oauth_issuers": [issuer_spec_dict(row, ws_names) for row in state.oauth_issuers],
    }
