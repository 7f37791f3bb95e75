"""The config snapshot: everything the data plane reads, immutable, built off the request path.

A snapshot is built from one consistent read of the store (``ControlState``)
and swapped in whole; a request takes ``loader.current`` once and sees one
version throughout. Per workspace it holds a ``RouteTable`` over only the
integrations shared with that workspace and the aliases it can see, so an
integration that is not shared cannot be reached from there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lockgate.catalog import Catalog
from lockgate.config import ModelAliasConfig
from lockgate.errors import ModelNotFound, PermissionDenied
from lockgate.gateway.plan import Plan
from lockgate.gateway.route_config import RouteConfig, parse_route_config
from lockgate.gateway.routing import Route, RouteTable
from lockgate.gateway.targets import Target
from lockgate.governance import secret_fields
from lockgate.governance.auth import KeyEntry
from lockgate.governance.policy import matches
from lockgate.governance.rules import NO_GOVERNANCE, Governance, build_governance
from lockgate.governance.secrets import SecretBox, SecretKeyError
from lockgate.guardrails import GuardrailSet, build_guardrail_set
from lockgate.mcp.oauth import OAuthConfig, build_oauth
from lockgate.mcp.registry import McpRegistry, build_registry
from lockgate.providers.base import Credential, get_provider
from lockgate.store.control import ControlState, Row
from lockgate.store.tables import DEFAULT_WORKSPACE_ID

log = logging.getLogger("lockgate.snapshot")


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    org_id: str
    keys: Mapping[str, KeyEntry]  # by SHA-256 of the key
    workspaces: Mapping[str, str]  # id -> name
    tables: Mapping[str, RouteTable]  # workspace id -> its route table
    # Integrations limited to some workspaces or models (absent: unrestricted).
    integration_workspaces: Mapping[str, frozenset[str]]
    integration_models: Mapping[str, tuple[str, ...]]
    configs: Mapping[str, RouteConfig]
    default_workspace_id: str = DEFAULT_WORKSPACE_ID
    # Guardrail definitions (compiled) and what they are attached to.
    guardrails: GuardrailSet = field(default_factory=GuardrailSet)
    # Budgets, rate limits and usage policies, precomputed per key (governance/rules.py).
    governance: Governance = NO_GOVERNANCE
    # MCP servers and access rules (mcp/registry.py).
    mcp: McpRegistry = field(default_factory=McpRegistry)
    # Trusted OAuth issuers for bearer JWTs on /mcp, and their claim rules (mcp/oauth.py).
    oauth: OAuthConfig = field(default_factory=OAuthConfig)
    # Workspaces whose request records keep (redacted, capped) bodies.
    body_logging: frozenset[str] = frozenset()

    def routes(self, workspace_id: str) -> RouteTable:
        return self.tables.get(workspace_id) or self.tables[self.default_workspace_id]

    def resolve(self, workspace_id: str, model: str) -> Route:
        """The route for ``model`` as this workspace sees it, or 403/404 saying why not."""
        try:
            route = self.routes(workspace_id).resolve(model)
        except ModelNotFound:
            name = model[1:].partition("/")[0] if model.startswith("@") else None
            allowed = self.integration_workspaces.get(name) if name else None
            if allowed is not None and workspace_id not in allowed:
                raise PermissionDenied(
                    f"The integration {name!r} is not shared with this workspace.",
                    param="model",
                    code="integration_not_allowed",
                ) from None
            raise
        for target in route.targets:
            self.check_target(target)
        return route

    def plan(self, workspace_id: str, model: str, config: str | None = None) -> Plan:
        """The route plan: from the ``x-lockgate-config`` header when given, else from ``model``."""
        if config is None:
            self.resolve(workspace_id, model)  # the 403s above, before routing
        return self.routes(workspace_id).plan(model, config)

    def check_target(self, target: Target) -> None:
        """Every attempt's target passes here: an integration may be limited to some models."""
        patterns = self.integration_models.get(target.credential.name)
        if patterns is not None and not matches(target.model, patterns):
            raise PermissionDenied(
                f"The integration {target.credential.name!r} may not serve the model {target.model!r}.",
                param="model",
                code="model_not_allowed",
            )


def build_snapshot(
    state: ControlState,
    secrets: SecretBox,
    catalog: Catalog,
    env_credentials: Iterable[Credential] = (),
    *,
    limit_divisor: int = 1,
) -> Snapshot:
    credentials = {c.name: c for c in env_credentials}
    shared_with: dict[str, frozenset[str]] = {}
    allowed_models: dict[str, tuple[str, ...]] = {}
    for row in state.integrations:
        credential = _credential(row, secrets)
        if credential is None:
            continue
        credentials[row["name"]] = credential  # stored integrations win over env defaults
        if row["workspace_ids"] is not None:
            shared_with[row["name"]] = frozenset(row["workspace_ids"])
        if row["allowed_models"] is not None:
            allowed_models[row["name"]] = tuple(row["allowed_models"])
    configs = {row["id"]: parse_route_config(row["config"]) for row in state.route_configs}
    tables: dict[str, RouteTable] = {}
    by_signature: dict[tuple[Any, ...], RouteTable] = {}  # workspaces that see the same things share one
    for workspace in state.workspaces:
        usable = [
            c
            for name, c in credentials.items()
            if name not in shared_with or workspace["id"] in shared_with[name]
        ]
        aliases = _visible_aliases(state.model_aliases, workspace["id"])
        signature = (tuple(sorted(c.name for c in usable)), tuple(a["id"] for a in aliases))
        if signature not in by_signature:
            by_signature[signature] = _route_table(usable, aliases, allowed_models, catalog, configs)
        tables[workspace["id"]] = by_signature[signature]
    keys = {row["key_hash"]: _key_entry(row) for row in state.api_keys}
    return Snapshot(
        version=state.version,
        org_id=state.org["id"],
        keys=MappingProxyType(keys),
        workspaces=MappingProxyType({w["id"]: w["name"] for w in state.workspaces}),
        tables=MappingProxyType(tables),
        integration_workspaces=MappingProxyType(shared_with),
        integration_models=MappingProxyType(allowed_models),
        configs=MappingProxyType(configs),
        guardrails=build_guardrail_set(state.guardrails, state.guardrail_attachments),
        governance=build_governance(
            state.org["id"],
            state.workspaces,
            state.api_keys,
            state.budgets,
            state.rate_limits,
            state.usage_policies,
            workers=limit_divisor,
        ),
        mcp=build_registry(
            state.mcp_servers,
            state.mcp_access_rules,
            secrets,
            state.mcp_tool_policies,
            state.mcp_tool_pins,
        ),
        oauth=build_oauth(state.oauth_issuers),
        body_logging=frozenset(w["id"] for w in state.workspaces if w.get("log_bodies")),
    )


def _credential(row: Row, secrets: SecretBox) -> Credential | None:
    provider = get_provider(row["provider"])
    if provider is None:
        log.error("integration %r names an unknown provider %r; skipped", row["name"], row["provider"])
        return None
    try:
        api_key = secrets.decrypt(row["secret_ciphertext"]) if row["secret_ciphertext"] else None
        options, headers = secret_fields.open_fields(secrets, row)
    except SecretKeyError as exc:
        log.error("integration %r skipped: %s", row["name"], exc)
        return None
    base_url = row["base_url"] or provider.default_base_url
    if not base_url:
        log.error("integration %r has no base_url and %s has no default; skipped", row["name"], provider.name)
        return None
    return Credential(
        name=row["name"],
        provider=row["provider"],
        base_url=base_url,
        api_key=api_key,
        headers=headers,
        options=options,
    )


def _visible_aliases(rows: list[Row], workspace_id: str) -> list[Row]:
    """Org-wide aliases, overridden by the workspace's own of the same name."""
    chosen = {r["alias"]: r for r in rows if r["workspace_id"] is None}
    chosen.update({r["alias"]: r for r in rows if r["workspace_id"] == workspace_id})
    return sorted(chosen.values(), key=lambda r: r["id"])


def _route_table(
    credentials: list[Credential],
    aliases: list[Row],
    allowed_models: Mapping[str, tuple[str, ...]],
    catalog: Catalog,
    configs: Mapping[str, RouteConfig],
) -> RouteTable:
    # Alias targets this workspace cannot reach (integration not shared, model not allowed) are
    # dropped; an alias left with none is not listed. Config aliases are compiled by routing.
    probe = RouteTable(credentials, (), catalog)
    usable: list[ModelAliasConfig] = []
    for row in aliases:
        if row["config_id"] is not None:
            if row["config_id"] in configs:
                usable.append(ModelAliasConfig(alias=row["alias"], config=row["config_id"]))
            continue
        targets = [spec for spec in row["targets"] or [] if _reachable(probe, spec, allowed_models)]
        if targets:
            usable.append(ModelAliasConfig(alias=row["alias"], targets=targets))
    return RouteTable(credentials, usable, catalog, configs=configs)


def _reachable(probe: RouteTable, spec: str, allowed_models: Mapping[str, tuple[str, ...]]) -> bool:
    try:
        target = probe.resolve(spec).targets[0]
    except ModelNotFound:
        return False
    patterns = allowed_models.get(target.credential.name)
    return patterns is None or matches(target.model, patterns)


def _key_entry(row: Row) -> KeyEntry:
    models = row["allowed_models"]
    return KeyEntry(
        id=row["id"],
        name=row["name"],
        workspace_id=row["workspace_id"],
        status=row["status"],
        expires_at=row["expires_at"],
        allowed_models=tuple(models) if models is not None else None,
        metadata=MappingProxyType(dict(row["metadata"] or {})),
    )
