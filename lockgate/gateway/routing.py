"""Model addressing and route plans: what the client's ``model`` (and config header) names.

Accepted forms (DESIGN §3 "Model addressing"):
- an alias from the config file: ``targets`` (first primary, rest fallbacks) or a saved ``config``;
- ``@integration/model``: a named credential and the upstream model;
- ``provider/model``: that provider's default credential;
- a bare catalog model (``gpt-4o``): the catalog's provider, with its default credential.

A route config (DESIGN §3 "Route config") may instead come with the request in
``x-lockgate-config``: inline JSON, or the name of a saved config. Saved configs
compile once, here; inline configs compile once per distinct header value
(bounded memo), so a client repeating its config pays a dict hit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import orjson

from lockgate.catalog import Catalog
from lockgate.config import ConfigError, ModelAliasConfig
from lockgate.errors import BadRequest, ModelNotFound, NotFound
from lockgate.gateway.plan import (
    Leaf,
    Node,
    Plan,
    PlanError,
    compile_config,
    inline_name,
    plan_for_targets,
)
from lockgate.gateway.route_config import RouteConfig, parse_route_config
from lockgate.gateway.route_config import Target as TargetConfig
from lockgate.gateway.targets import Route, Target
from lockgate.providers.base import Credential, get_provider

__all__ = ["Route", "RouteTable", "Target"]

_MEMO_LIMIT = 4096
_INLINE_MEMO_LIMIT = 1024
CONFIG_HEADER = "x-lockgate-config"


class RouteTable:
    def __init__(
        self,
        credentials: Iterable[Credential],
        aliases: Iterable[ModelAliasConfig] = (),
        catalog: Catalog | None = None,
        *,
        configs: Mapping[str, RouteConfig] | None = None,
    ) -> None:
        self._catalog = catalog or Catalog.default()
        self._credentials: dict[str, Credential] = {}
        self._default_credential: dict[str, Credential] = {}
        for cred in credentials:
            self._credentials[cred.name] = cred
            # Env credentials are named after their provider and win; otherwise the first listed.
            if cred.name == cred.provider or cred.provider not in self._default_credential:
                self._default_credential[cred.provider] = cred
        # Saved route configs by id (lockgate.yaml ``configs:`` and the admin API), validated,
        # then compiled here once. One that cannot be routed from this table (it names an
        # integration the workspace cannot use) is kept as its error, raised when it is used.
        self.configs: Mapping[str, RouteConfig] = dict(configs or {})
        self._configs: dict[str, Plan] = {}
        self._broken: dict[str, str] = {}
        for name, config in self.configs.items():
            try:
                self._configs[name] = compile_config(config, self, name=f"config:{name}")
            except PlanError as exc:
                self._broken[name] = f"{exc.path}: {exc.message}"
        self._aliases: dict[str, Route] = {}
        self._alias_plans: dict[str, Plan] = {}
        self._broken_aliases: dict[str, str] = {}  # alias -> its unusable config's id
        for alias in aliases:
            self._add_alias(alias)
        self._memo: dict[str, Route] = {}
        self._plan_memo: dict[str, Plan] = {}
        self._inline: dict[str, Plan] = {}

    def _add_alias(self, alias: ModelAliasConfig) -> None:
        if alias.config is not None:
            saved = self._configs.get(alias.config)
            if saved is None:
                if alias.config in self._broken:
                    self._broken_aliases[alias.alias] = alias.config
                    return
                raise ConfigError(f"model alias {alias.alias!r}: no saved config named {alias.config!r}")
            self._alias_plans[alias.alias] = replace(saved, name=f"alias:{alias.alias}")
            self._aliases[alias.alias] = Route(alias.alias, tuple(_fixed_targets(saved.root)))
            return
        targets = []
        for spec in alias.targets or ():
            target = self._parse_target(spec)
            if target is None:
                raise ConfigError(f"model alias {alias.alias!r}: cannot resolve target {spec!r}")
            targets.append(target)
        self._aliases[alias.alias] = Route(alias.alias, tuple(targets))
        self._alias_plans[alias.alias] = plan_for_targets(f"alias:{alias.alias}", tuple(targets))

    @property
    def aliases(self) -> list[str]:
        return list(self._aliases)

    @property
    def credentials(self) -> list[Credential]:
        return list(self._credentials.values())

    def plan(self, model: str, config: str | None = None) -> Plan:
        """The plan for a request: its config header if any, else what its model names."""
        if config is not None:
            return self._header_plan(config)
        plan = self._alias_plans.get(model) or self._plan_memo.get(model)
        if plan is None and model in self._broken_aliases:
            raise self._unusable(self._broken_aliases[model])
        if plan is None:
            plan = plan_for_targets(f"model:{model}", self.resolve(model).targets)
            if len(self._plan_memo) < _MEMO_LIMIT:
                self._plan_memo[model] = plan
        return plan

    def _header_plan(self, header: str) -> Plan:
        plan = self._inline.get(header)
        if plan is not None:
            return plan
        text = header.strip()
        if not text.startswith("{"):
            saved = self._configs.get(text)
            if saved is None and text in self._broken:
                raise self._unusable(text)
            if saved is None:
                raise NotFound(
                    f"No saved config named {text!r}.", param=CONFIG_HEADER, code="config_not_found"
                )
            return saved
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(
                f"{CONFIG_HEADER} is not valid JSON: {exc}", param=CONFIG_HEADER, code="invalid_config"
            ) from exc
        config = parse_route_config(data, source=CONFIG_HEADER)
        _refuse_redirects(config)
        try:
            plan = compile_config(config, self, name=inline_name(text))
        except PlanError as exc:
            raise BadRequest(
                f"Invalid {CONFIG_HEADER}: {exc.path}: {exc.message}",
                param=CONFIG_HEADER,
                code="invalid_config",
            ) from exc
        if len(self._inline) >= _INLINE_MEMO_LIMIT:
            del self._inline[next(iter(self._inline))]
        self._inline[header] = plan
        return plan

    def _unusable(self, config_id: str) -> BadRequest:
        return BadRequest(
            f"The saved config {config_id!r} cannot be used here: {self._broken[config_id]}",
            param=CONFIG_HEADER,
            code="invalid_config",
        )

    def resolve(self, model: str) -> Route:
        route = self._aliases.get(model) or self._memo.get(model)
        if route is not None:
            return route
        target = self._parse_target(model)
        if target is None:
            raise ModelNotFound(
                f"The model {model!r} does not exist or no provider credential serves it. "
                "Use a configured alias, '@integration/model' or 'provider/model'.",
                param="model",
            )
        route = Route(model, (target,))
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[model] = route
        return route

    # --- what plan compilation asks of the table (plan.CredentialResolver) -----------

    def leaf_target(self, node: TargetConfig, path: str) -> Target:
        """A config leaf's credential: ``@integration``, or a provider id (+ BYOK ``api_key``)."""
        where = f"{path}.provider" if path else "provider"
        spec = node.provider if node.provider is not None else f"@{node.virtual_key}"
        if spec.startswith("@"):
            cred = self._credentials.get(spec[1:])
            if cred is None:
                raise PlanError(where, f"unknown integration {spec!r}")
            if node.api_key is not None:
                cred = replace(cred, api_key=node.api_key.get_secret_value())
        else:
            provider = get_provider(spec)
            if provider is None:
                raise PlanError(where, f"unknown provider {spec!r}; use '@integration' or a provider id")
            default = self._default_credential.get(spec)
            if node.api_key is not None:
                cred = Credential(
                    name=spec,
                    provider=spec,
                    base_url=default.base_url if default else provider.default_base_url,
                    api_key=node.api_key.get_secret_value(),
                )
            elif default is None:
                raise PlanError(where, f"no credential for provider {spec!r}; configure one or give api_key")
            else:
                cred = default
        if node.custom_host:
            cred = replace(cred, base_url=node.custom_host.rstrip("/"))
        if not cred.base_url:
            raise PlanError(where, f"provider {cred.provider!r} needs custom_host (it has no default URL)")
        provider = get_provider(cred.provider)
        assert provider is not None  # credentials are validated against the registry
        return Target(cred, provider, "")

    def upstream_model(self, client_model: str, provider: str) -> str:
        """The model a leaf without ``override_params.model`` asks for: the client's, resolved."""
        route = self._aliases.get(client_model)
        target = None
        if route is not None and route.targets:
            target = next((t for t in route.targets if t.credential.provider == provider), route.targets[0])
        elif route is None:
            target = self._parse_target(client_model)
        return target.model if target is not None else client_model

    def _parse_target(self, spec: str) -> Target | None:
        if spec.startswith("@"):
            name, sep, upstream_model = spec[1:].partition("/")
            cred = self._credentials.get(name)
            if cred is None or not sep or not upstream_model:
                return None
            return self._target(cred, upstream_model)
        prefix, sep, rest = spec.partition("/")
        if sep and rest and prefix in self._default_credential:
            return self._target(self._default_credential[prefix], rest)
        info = self._catalog.lookup(spec)
        if info is not None and info.provider in self._default_credential:
            return self._target(self._default_credential[info.provider], spec)
        return None

    @staticmethod
    def _target(cred: Credential, model: str) -> Target:
        provider = get_provider(cred.provider)
        assert provider is not None  # credentials are validated against the registry
        return Target(cred, provider, model)

    def listed_models(self) -> list[tuple[str, str]]:
        """(model id, owner) pairs for GET /v1/models: aliases, then catalog models we can serve."""
        listed = [
            (alias, route.targets[0].credential.name if route.targets else "lockgate")
            for alias, route in self._aliases.items()
        ]
        seen = {m for m, _ in listed}
        for info in self._catalog.models_for_listing():
            if info.provider in self._default_credential and info.id not in seen:
                listed.append((info.id, info.provider))
                seen.add(info.id)
        return listed


def _fixed_targets(node: Node) -> list[Target]:
    if isinstance(node, Leaf):
        return [node.credential_target] if node.fixed else []
    return [t for child in node.children for t in _fixed_targets(child)]


def _refuse_redirects(node: RouteConfig | TargetConfig, path: str = "") -> None:
    """Inline configs come from any caller with a key: they may bring their own provider key, but
    must not point the gateway at another host (a server-side request forgery). Saved configs,
    written by admins, may set custom_host."""
    if node.custom_host is not None:
        raise BadRequest(
            f"{CONFIG_HEADER}: {path + '.' if path else ''}custom_host is only accepted in saved configs; "
            "ask an admin to save this config and send its name instead.",
            param=CONFIG_HEADER,
            code="custom_host_not_allowed",
        )
    for i, child in enumerate(node.targets):
        _refuse_redirects(child, f"{path + '.' if path else ''}targets.{i}")
