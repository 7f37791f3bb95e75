"""Portkey config JSON -> a saved Lockgate route config plus the integrations it names.

Lockgate's route config is a superset of Portkey's, so the tree is kept as it is:
``strategy`` (``single``/``fallback``/``loadbalance``/``conditional``), ``targets``,
``weight``, ``retry``, ``request_timeout``, ``cache``, ``override_params``,
``forward_headers``, ``custom_host`` and ``name``. Keys may be camelCase; they are
written in snake_case. What changes is how a leaf names its credential:

- ``virtual_key: vk`` and ``provider: "@slug"`` name a credential Portkey holds.
  Each becomes an integration of that name, ``provider: "@name"`` in the leaf, and
  a secret reference ``${LOCKGATE_SECRET_<NAME>}`` to fill in. Its provider comes
  from ``virtual_keys`` (the CLI's ``--virtual-key NAME=PROVIDER``), else from a
  provider id inside the name (``openai-prod-7f3a``, ``team-anthropic``), else from the catalog entry
  of ``override_params.model``.
- ``provider: <id>`` with an ``api_key`` (and maybe ``custom_host``, Azure or
  OpenAI organisation fields) becomes an integration too; a literal key is not
  copied. Without ``api_key`` the leaf keeps using the gateway's default
  credential for that provider.

Reported, with their path: guardrails and hooks (Portkey-hosted ids mean nothing
here), cloud credentials (AWS, Vertex), unknown keys, and leaves whose provider has
no Lockgate equivalent (left out of the tree).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lockgate.catalog import Catalog
from lockgate.importers.common import (
    Findings,
    ImportFailed,
    ImportResult,
    IntegrationBook,
    plain_or_env,
    provider_available,
    slug,
)

# Portkey provider id -> Lockgate provider id (the rest are spelled the same).
PROVIDERS = {
    "azure-openai": "azure",
    "azure-ai": "azure-foundry",
    "together-ai": "together",
    "mistral-ai": "mistral",
    "fireworks-ai": "fireworks",
    "x-ai": "xai",
    "perplexity-ai": "perplexity",
    "google": "gemini",
    "lm-studio": "lmstudio",
}
CLOUD = {"bedrock", "vertex-ai", "sagemaker"}
_NODE_KEYS = {"name", "strategy", "targets", "retry", "request_timeout", "cache", "weight"}
_NODE_KEYS |= {"circuit_breaker", "stream_failover", "forward_headers"}
_LEAF_KEYS = {"provider", "virtual_key", "api_key", "custom_host", "override_params"}
_AZURE_KEYS = {"azure_resource_name", "azure_deployment_id", "azure_api_version", "azure_model_name"}
_HEADER_KEYS = {"openai_organization": "OpenAI-Organization", "openai_project": "OpenAI-Project"}
_GUARDRAIL_KEYS = {
    "input_guardrails",
    "output_guardrails",
    "before_request_hooks",
    "after_request_hooks",
    "default_input_guardrails",
    "default_output_guardrails",
}
_SUB_KEYS = {
    "strategy": {"mode", "on_status_codes", "conditions", "default"},
    "retry": {"attempts", "on_status_codes", "use_retry_after_header"},
    "cache": {"mode", "max_age"},
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def import_portkey(
    data: Any,
    *,
    config_id: str,
    alias: str | None = None,
    virtual_keys: Mapping[str, str] | None = None,
) -> ImportResult:
    if not isinstance(data, dict):
        raise ImportFailed("a Portkey config is a JSON object")
    if not re.match(r"^[A-Za-z0-9_.-]{1,100}$", config_id):
        raise ImportFailed(f"config id {config_id!r}: use letters, digits, '.', '_' and '-'")
    walker = _Walker(dict(virtual_keys or {}))
    root = walker.node(data, "")
    if walker.unknown_vks:
        names = ", ".join(sorted(walker.unknown_vks))
        raise ImportFailed(f"cannot tell the provider of: {names}; pass --virtual-key NAME=PROVIDER for each")
    if root is None:
        raise ImportFailed("no target of this config can be served by Lockgate (see the findings)")
    document: dict[str, Any] = {
        "integrations": walker.book.items,
        "configs": [{"id": config_id, "description": "Imported from a Portkey config", "config": root}],
    }
    if alias:
        document["models"] = [{"alias": alias, "config": config_id}]
    result = ImportResult("portkey", {k: v for k, v in document.items() if v}, list(walker.findings))
    result.check()
    return result


class _Walker:
    def __init__(self, virtual_keys: dict[str, str]) -> None:
        self.virtual_keys = virtual_keys
        self.book = IntegrationBook()
        self.findings = Findings()
        self.unknown_vks: set[str] = set()
        self._named: dict[str, str] = {}  # Portkey credential name -> integration name

    def node(self, raw: dict[str, Any], path: str) -> dict[str, Any] | None:
        """One node, cleaned; None when nothing under it can be served."""
        node: dict[str, Any] = {}
        leaf: dict[str, Any] = {}
        for key, value in raw.items():
            name, where = _snake(key), _join(path, key)
            if name in _NODE_KEYS:
                node[name] = self._sub(name, value, where) if name in _SUB_KEYS else value
            elif name in _LEAF_KEYS or name in _AZURE_KEYS or name in _HEADER_KEYS:
                leaf[name] = value
            elif name in _GUARDRAIL_KEYS:
                self.findings.unsupported(
                    where, "Portkey guardrails and hooks are not imported; attach Lockgate guardrails"
                )
            elif name.startswith(("aws_", "vertex_")):
                self.findings.unsupported(where, "cloud credentials are not imported")
            else:
                self.findings.unsupported(where, "not a route config field; not imported")
        if "targets" in node:
            return self._branch(node, path)
        if not leaf.get("provider") and not leaf.get("virtual_key"):
            if path == "" and not raw.get("targets"):
                raise ImportFailed("the config names neither targets nor a provider/virtual_key")
            self.findings.unsupported(path or "(root)", "a target without provider or targets; left out")
            return None
        credential = self._credential(leaf, path)
        if credential is None:
            return None
        if leaf.get("override_params") and "override_params" not in credential:
            credential["override_params"] = leaf["override_params"]
        return {**credential, **node}

    def _sub(self, name: str, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            return value  # the schema check names the problem
        out = {}
        for key, item in value.items():
            if _snake(key) in _SUB_KEYS[name]:
                out[_snake(key)] = item
            else:
                self.findings.unsupported(f"{where}.{key}", "not a route config field; not imported")
        return out

    def _branch(self, node: dict[str, Any], path: str) -> dict[str, Any] | None:
        kept: list[dict[str, Any]] = []
        for i, child in enumerate(node["targets"] if isinstance(node["targets"], list) else []):
            cleaned = self.node(child, _join(path, f"targets.{i}")) if isinstance(child, dict) else None
            if cleaned is not None:
                kept.append(cleaned)
        if not kept:
            return None
        node["targets"] = kept
        strategy = node.get("strategy")
        if isinstance(strategy, dict) and strategy.get("mode") == "conditional":
            names = {t.get("name") for t in kept}
            where = _join(path, "strategy")
            conditions = [c for c in strategy.get("conditions") or [] if c.get("then") in names]
            if len(conditions) != len(strategy.get("conditions") or []):
                self.findings.unsupported(where, "conditions whose target was left out are dropped")
            strategy["conditions"] = conditions
            if strategy.get("default") is not None and strategy["default"] not in names:
                self.findings.unsupported(where + ".default", "its target was left out; no default")
                strategy.pop("default")
        return node

    def _credential(self, leaf: dict[str, Any], path: str) -> dict[str, Any] | None:
        where = _join(path, "provider")
        provider_field = leaf.get("provider")
        held = leaf.get("virtual_key")
        if isinstance(provider_field, str) and provider_field.startswith("@"):
            held = provider_field[1:]
        if isinstance(held, str) and held:
            return self._held(held, leaf, path)
        portkey_id = str(provider_field)
        if portkey_id in CLOUD:
            self.findings.unsupported(where, f"{portkey_id} needs cloud credentials; left out")
            return None
        provider = PROVIDERS.get(portkey_id, portkey_id)
        if not provider_available(provider):
            self.findings.unsupported(where, f"no {portkey_id!r} provider in this Lockgate build; left out")
            return None
        options, headers, base_url = self._details(leaf, provider, path)
        if provider == "azure" and not base_url:
            self.findings.unsupported(where, "an Azure target needs azure_resource_name; left out")
            return None
        if leaf.get("api_key") is None and not options and not headers and provider != "azure":
            self.findings.changed(where, f"uses the gateway's default {provider} credential")
            out: dict[str, Any] = {"provider": provider}
            if base_url:
                out["custom_host"] = base_url
            return out
        name = self.book.add(
            provider,
            base_url=base_url,
            secret=leaf.get("api_key"),
            secret_path=_join(path, "api_key"),
            findings=self.findings,
            options=options,
            headers=headers,
        )
        return {"provider": "@" + name, **self._azure_model(leaf)}

    def _held(self, held: str, leaf: dict[str, Any], path: str) -> dict[str, Any] | None:
        """A credential Portkey keeps (virtual key, @integration): an integration to fill in."""
        if held in self._named:
            return {"provider": "@" + self._named[held]}
        provider = self._provider_of(held, leaf)
        if provider is None:
            self.unknown_vks.add(held)
            return None
        if not provider_available(provider):
            self.findings.unsupported(
                _join(path, "virtual_key"), f"{held}: no {provider!r} provider in this Lockgate build"
            )
            return None
        name = slug(held, 100)
        if not self.book.reserve(name):
            name = slug(f"{held}-{len(self._named) + 1}", 100)
            self.book.reserve(name)
        self._named[held] = name
        options, headers, base_url = self._details(leaf, provider, path)
        env = "LOCKGATE_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        if base_url is None and provider in ("azure", "azure-foundry", "openai-compatible"):
            base_url = "${" + env.replace("_SECRET_", "_BASE_URL_") + "}"
        self.book.add(
            provider,
            name=name,
            base_url=base_url,
            secret="${" + env + "}",
            options=options,
            headers=headers,
        )
        self.findings.changed(
            _join(path, "virtual_key"),
            f"Portkey holds the secret of {held!r}; set {env} (integration {name})",
        )
        return {"provider": "@" + name, **self._azure_model(leaf)}

    def _provider_of(self, held: str, leaf: dict[str, Any]) -> str | None:
        given = self.virtual_keys.get(held)
        if given is not None:
            return PROVIDERS.get(given, given)
        tokens = held.lower().replace("_", "-").split("-")
        # A provider id in the name, longest first (azure-openai before azure), from any position.
        for size in range(len(tokens), 0, -1):
            for start in range(len(tokens) - size + 1):
                candidate = "-".join(tokens[start : start + size])
                if candidate in PROVIDERS or provider_available(candidate):
                    return PROVIDERS.get(candidate, candidate)
        model = (leaf.get("override_params") or {}).get("model")
        info = Catalog.default().lookup(model) if isinstance(model, str) else None
        return info.provider if info is not None else None

    def _details(
        self, leaf: dict[str, Any], provider: str, path: str
    ) -> tuple[dict[str, Any], dict[str, str], str | None]:
        base_url = plain_or_env(leaf.get("custom_host"), _join(path, "custom_host"), self.findings)
        options: dict[str, Any] = {}
        headers = {h: str(leaf[k]) for k, h in _HEADER_KEYS.items() if leaf.get(k)}
        resource = leaf.get("azure_resource_name")
        if provider == "azure" and resource and not base_url:
            base_url = f"https://{resource}.openai.azure.com"
        if provider == "azure" and leaf.get("azure_api_version"):
            options["api_version"] = str(leaf["azure_api_version"])
        return options, headers, base_url

    @staticmethod
    def _azure_model(leaf: dict[str, Any]) -> dict[str, Any]:
        # Azure names the deployment, and Lockgate's azure provider sends the model as the deployment.
        deployment = leaf.get("azure_deployment_id")
        if not deployment or "model" in (leaf.get("override_params") or {}):
            return {}
        return {"override_params": {**(leaf.get("override_params") or {}), "model": deployment}}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
