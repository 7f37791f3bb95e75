"""Model addressing: what the client's ``model`` names, as an ordered list of targets.

Accepted forms (DESIGN §3 "Model addressing"):
- an alias from the config file (``gpt-4o-mini`` -> its targets, first primary, rest fallbacks);
- ``@integration/model``: a named credential and the upstream model;
- ``provider/model``: that provider's default credential;
- a bare catalog model (``gpt-4o``): the catalog's provider, with its default credential.

Resolution is a dict hit after the first time a name is seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lockgate.catalog import Catalog
from lockgate.config import ConfigError, ModelAliasConfig
from lockgate.errors import ModelNotFound
from lockgate.gateway.route_config import RouteConfig
from lockgate.providers.base import Credential, Provider, get_provider

_MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Target:
    credential: Credential
    provider: Provider
    model: str

    @property
    def label(self) -> str:
        return f"@{self.credential.name}/{self.model}"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]


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
        # Saved route configs by id (lockgate.yaml ``configs:`` and the admin API), validated.
        self.configs: Mapping[str, RouteConfig] = dict(configs or {})
        self._credentials: dict[str, Credential] = {}
        self._default_credential: dict[str, Credential] = {}
        for cred in credentials:
            self._credentials[cred.name] = cred
            # Env credentials are named after their provider and win; otherwise the first listed.
            if cred.name == cred.provider or cred.provider not in self._default_credential:
                self._default_credential[cred.provider] = cred
        self._aliases: dict[str, Route] = {}
        for alias in aliases:
            targets = []
            for spec in alias.targets:
                target = self._parse_target(spec)
                if target is None:
                    raise ConfigError(f"model alias {alias.alias!r}: cannot resolve target {spec!r}")
                targets.append(target)
            self._aliases[alias.alias] = Route(alias.alias, tuple(targets))
        self._memo: dict[str, Route] = {}

    @property
    def aliases(self) -> list[str]:
        return list(self._aliases)

    @property
    def credentials(self) -> list[Credential]:
        return list(self._credentials.values())

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
        listed = [(alias, route.targets[0].credential.name) for alias, route in self._aliases.items()]
        seen = {m for m, _ in listed}
        for info in self._catalog.models_for_listing():
            if info.provider in self._default_credential and info.id not in seen:
                listed.append((info.id, info.provider))
                seen.add(info.id)
        return listed
