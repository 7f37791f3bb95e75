"""LiteLLM proxy ``config.yaml`` -> ``lockgate.yaml``.

Mapping rules:
- Every ``model_list`` deployment becomes a target ``@integration/model``. Its
  ``litellm_params.model`` prefix names the provider (``azure/<deployment>``,
  ``openai/gpt-4o``, ``anthropic/claude-…``; a bare name is looked up in the
  catalog). Deployments sharing provider, ``api_base``, key and options share one
  integration. ``api_key: os.environ/VAR`` becomes ``${VAR}``; a missing key reads
  the variable LiteLLM would read (``OPENAI_API_KEY``, ``AZURE_API_KEY`` …).
  Azure's ``api_version`` goes to the integration's ``options``; the deployment
  name is the upstream model.
- A ``model_name`` becomes a model alias. One deployment whose fallbacks are single
  deployments too, with no retry, timeout, cache or cooldown settings, becomes an
  alias with a ``targets`` list (first primary, the rest fallbacks). Anything more
  becomes a saved config ``litellm-<model_name>`` that the alias names:
  duplicates of a ``model_name`` are a ``loadbalance`` node weighted by ``weight``,
  else ``rpm``, else ``tpm`` (LiteLLM's simple-shuffle); ``router_settings``
  fallbacks (or ``default_fallbacks``) wrap it in a ``fallback`` node;
  ``num_retries`` -> ``retry.attempts``, ``timeout`` -> ``request_timeout`` (ms),
  ``allowed_fails``/``cooldown_time`` -> ``circuit_breaker``, ``cache`` -> ``cache``.
- ``router_settings.model_group_alias`` adds aliases naming the same route.
- ``general_settings.master_key`` becomes a virtual key in the default workspace,
  so apps holding it keep working (it is not an admin key in Lockgate).
- Wildcard deployments (``openai/*``) become integrations only: Lockgate addresses
  any model of an integration as ``@integration/<model>`` already.

Everything else (callbacks, guardrails, budgets, context-window fallbacks, default
request parameters, Bedrock/Vertex credentials …) is reported, with its path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lockgate.importers.common import (
    Findings,
    ImportFailed,
    ImportResult,
    IntegrationBook,
    plain_or_env,
    provider_available,
    secret_reference,
    slug,
)

# LiteLLM provider prefix -> Lockgate provider id.
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure",
    "azure_text": "azure",
    "azure_ai": "azure-foundry",
    "anthropic": "anthropic",
    "groq": "groq",
    "together_ai": "together",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "fireworks_ai": "fireworks",
    "xai": "xai",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "hosted_vllm": "vllm",
    "lm_studio": "lmstudio",
    "openai_like": "openai-compatible",
    "custom_openai": "openai-compatible",
    "gemini": "gemini",
    "cohere": "cohere",
    "cohere_chat": "cohere",
}
# Variables LiteLLM reads when a deployment names no api_key.
DEFAULT_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "azure": "AZURE_API_KEY",
    "azure-foundry": "AZURE_AI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "groq": "GROQ_API_KEY",
    "together": "TOGETHERAI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "fireworks": "FIREWORKS_AI_API_KEY",
    "xai": "XAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "perplexity": "PERPLEXITYAI_API_KEY",
    "cerebras": "CEREBRAS_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "cohere": "COHERE_API_KEY",
}
DEFAULT_BASE_ENV = {"azure": "AZURE_API_BASE", "azure-foundry": "AZURE_AI_API_BASE"}
CLOUD_CREDENTIALS = {"bedrock", "sagemaker", "vertex_ai", "vertex_ai_beta"}
_PARAMS_HANDLED = {
    "model",
    "api_key",
    "api_base",
    "base_url",
    "api_version",
    "custom_llm_provider",
    "rpm",
    "tpm",
    "weight",
    "timeout",
    "max_retries",
    "organization",
    "extra_headers",
}
_TOP_LEVEL = {"model_list", "router_settings", "litellm_settings", "general_settings"}
_HINTS = {
    "environment_variables": "not copied (it may hold secrets); set these in the gateway's environment",
    "guardrails": "attach Lockgate guardrails to keys, workspaces or configs instead",
    "mcp_servers": "register MCP servers with Lockgate's MCP gateway instead",
    "credential_list": "create integrations for these credentials by hand",
    "include": "import each included file on its own",
    "context_window_fallbacks": "Lockgate falls back on statuses and errors, not on the error's kind",
    "content_policy_fallbacks": "Lockgate falls back on statuses and errors, not on the error's kind",
    "retry_policy": "Lockgate retries per config on status codes (retry.on_status_codes)",
    "allowed_fails_policy": "Lockgate's circuit breaker counts failures by status code",
    "redis_host": "shared state uses LOCKGATE_REDIS_URL",
    "redis_port": "shared state uses LOCKGATE_REDIS_URL",
    "redis_password": "shared state uses LOCKGATE_REDIS_URL",
    "redis_url": "shared state uses LOCKGATE_REDIS_URL",
    "success_callback": "Lockgate records every request itself; export with OTLP or Prometheus",
    "failure_callback": "Lockgate records every request itself; export with OTLP or Prometheus",
    "callbacks": "Lockgate records every request itself; export with OTLP or Prometheus",
    "drop_params": "Lockgate drops only the parameters a provider is known to refuse",
    "database_url": "Lockgate's store is LOCKGATE_DATABASE_URL",
    "max_budget": "set budgets in Lockgate's admin API",
    "budget_duration": "set budgets in Lockgate's admin API",
    "model_info": "Lockgate reads prices and capabilities from its model catalog",
    "input_cost_per_token": "Lockgate reads prices from its model catalog",
    "output_cost_per_token": "Lockgate reads prices from its model catalog",
    "stream_timeout": "Lockgate has one per-attempt timeout (request_timeout)",
    "tags": "tag-based routing has no Lockgate equivalent; use a conditional config",
}
_SETTINGS_HANDLED = {
    "routing_strategy",
    "fallbacks",
    "default_fallbacks",
    "num_retries",
    "timeout",
    "request_timeout",
    "model_group_alias",
    "allowed_fails",
    "cooldown_time",
    "cache",
    "cache_params",
}


@dataclass(slots=True)
class Deployment:
    integration: str
    model: str
    weights: dict[str, int | float] = field(default_factory=dict)  # weight / rpm / tpm as given
    extras: dict[str, Any] = field(default_factory=dict)  # leaf settings: request_timeout, retry

    @property
    def spec(self) -> str:
        return f"@{self.integration}/{self.model}"


def import_litellm(data: Any) -> ImportResult:
    if not isinstance(data, dict):
        raise ImportFailed("a LiteLLM config is a mapping with a model_list")
    findings = Findings()
    for key in data:
        if key not in _TOP_LEVEL:
            findings.unsupported(key, _HINTS.get(key, "not imported"))
    model_list = data.get("model_list")
    if not isinstance(model_list, list) or not model_list:
        raise ImportFailed("model_list: expected a non-empty list of deployments")
    settings = _settings(data, findings)
    book = IntegrationBook()
    groups: dict[str, list[Deployment]] = {}
    for i, entry in enumerate(model_list):
        found = _deployment(entry, f"model_list.{i}", book, findings)
        if found is not None:
            groups.setdefault(found[0], []).append(found[1])
    routes = _Routes(groups, settings, findings)
    models: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    for name in groups:
        alias, config = routes.build(name)
        models.append(alias)
        if config is not None:
            configs.append(config)
    alias_path = settings.where.get("model_group_alias", "")
    for extra, target in _group_aliases(settings.get("model_group_alias"), alias_path, findings):
        if target not in groups:
            findings.unsupported(f"{alias_path}.{extra}", f"{target!r} has no imported deployment")
            continue
        base = next(m for m in models if m["alias"] == target)
        models.append({**base, "alias": extra})
    document: dict[str, Any] = {"integrations": book.items, "configs": configs, "models": models}
    master = _master_key(data.get("general_settings"), findings)
    if master is not None:
        document["keys"] = [master]
    result = ImportResult("litellm", {k: v for k, v in document.items() if v}, list(findings))
    result.check()
    return result


@dataclass(slots=True)
class _Settings:
    """router_settings over litellm_settings (LiteLLM reads both for these keys)."""

    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # key -> its path in the source

    def get(self, key: str) -> Any:
        return self.values.get(key)


def _settings(data: dict[str, Any], findings: Findings) -> _Settings:
    merged = _Settings()
    for section in ("litellm_settings", "router_settings"):
        values = data.get(section) or {}
        if not isinstance(values, dict):
            findings.unsupported(section, "expected a mapping; not imported")
            continue
        for key, value in values.items():
            if key in _SETTINGS_HANDLED:
                merged.values[key] = value
                merged.where[key] = f"{section}.{key}"
            else:
                findings.unsupported(f"{section}.{key}", _HINTS.get(key, "not imported"))
    strategy = merged.get("routing_strategy")
    if strategy not in (None, "simple-shuffle"):
        findings.changed(
            merged.where["routing_strategy"],
            f"{strategy!r} becomes Lockgate's weighted, health-aware loadbalance",
        )
    cache_params = merged.get("cache_params")
    if isinstance(cache_params, dict) and set(cache_params) - {"ttl"}:
        findings.changed(
            merged.where["cache_params"],
            "only ttl is kept; Lockgate caches in memory, or in Redis with LOCKGATE_REDIS_URL",
        )
    return merged


def _deployment(
    entry: Any, where: str, book: IntegrationBook, findings: Findings
) -> tuple[str, Deployment] | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
        findings.unsupported(where, "a deployment needs a model_name; skipped")
        return None
    params = entry.get("litellm_params")
    if not isinstance(params, dict) or not isinstance(params.get("model"), str):
        findings.unsupported(where, "a deployment needs litellm_params.model; skipped")
        return None
    for key in entry:
        if key not in ("model_name", "litellm_params"):
            findings.unsupported(f"{where}.{key}", _HINTS.get(key, "not imported"))
    p = f"{where}.litellm_params"
    prefix, model = _split_model(params["model"], params.get("custom_llm_provider"))
    if prefix in CLOUD_CREDENTIALS:
        findings.unsupported(
            p + ".model", f"{prefix} needs cloud credentials; create that integration by hand; skipped"
        )
        return None
    provider = PROVIDERS.get(prefix or "")
    if provider is None:
        what = f"provider prefix {prefix + '/'!r}" if prefix else f"model {model!r} (no provider prefix)"
        findings.unsupported(p + ".model", f"{what} has no Lockgate provider; skipped")
        return None
    if not provider_available(provider):
        findings.unsupported(
            p + ".model", f"the {provider!r} provider is not in this Lockgate build; skipped"
        )
        return None
    if "*" in model or "*" in entry["model_name"]:
        _wildcard(entry, params, provider, where, book, findings)
        return None
    integration = _integration(params, provider, p, book, findings)
    if integration is None:
        return None
    deployment = Deployment(integration, model)
    for key in ("weight", "rpm", "tpm"):
        if isinstance(params.get(key), int | float) and params[key] > 0:
            deployment.weights[key] = params[key]
    if isinstance(params.get("timeout"), int | float):
        deployment.extras["request_timeout"] = max(1, int(params["timeout"] * 1000))
    if isinstance(params.get("max_retries"), int) and params["max_retries"] > 0:
        deployment.extras["retry"] = {"attempts": min(params["max_retries"], 10)}
    for key in params:
        if key not in _PARAMS_HANDLED:
            findings.unsupported(f"{p}.{key}", _HINTS.get(key, "not imported"))
    return entry["model_name"], deployment


def _split_model(model: str, custom: Any) -> tuple[str | None, str]:
    if isinstance(custom, str) and custom:
        return custom, model.removeprefix(custom + "/")
    prefix, sep, rest = model.partition("/")
    if sep and rest:
        return prefix, rest
    from lockgate.catalog import Catalog

    info = Catalog.default().lookup(model)
    return (info.provider if info is not None else None), model


def _integration(
    params: dict[str, Any], provider: str, p: str, book: IntegrationBook, findings: Findings
) -> str | None:
    base_url = plain_or_env(params.get("api_base") or params.get("base_url"), f"{p}.api_base", findings)
    if base_url is None and provider in DEFAULT_BASE_ENV:
        base_url = "${" + DEFAULT_BASE_ENV[provider] + "}"
        findings.changed(f"{p}.api_base", f"not given; reads {base_url} as LiteLLM does")
    if provider == "ollama" and base_url and not base_url.rstrip("/").endswith("/v1"):
        # LiteLLM talks Ollama's native API; Lockgate its OpenAI-compatible one, under /v1.
        base_url = base_url.rstrip("/") + "/v1"
        findings.changed(f"{p}.api_base", f"Lockgate uses Ollama's OpenAI-compatible API at {base_url}")
    if base_url is None and provider == "openai-compatible":
        findings.unsupported(f"{p}.api_base", "an OpenAI-compatible deployment needs api_base; skipped")
        return None
    secret = params.get("api_key")
    if secret is None and provider in DEFAULT_KEY_ENV:
        secret = "${" + DEFAULT_KEY_ENV[provider] + "}"
    options: dict[str, Any] = {}
    version = plain_or_env(params.get("api_version"), f"{p}.api_version", findings)
    if version is not None and provider.startswith("azure"):
        options["api_version"] = version
    elif version is not None:
        findings.unsupported(f"{p}.api_version", f"{provider} takes no api_version")
    headers: dict[str, str] = {}
    if isinstance(params.get("extra_headers"), dict):
        headers.update({str(k): str(v) for k, v in params["extra_headers"].items()})
    if params.get("organization"):
        headers["OpenAI-Organization"] = str(params["organization"])
    return book.add(
        provider,
        base_url=base_url,
        secret=secret,
        secret_path=f"{p}.api_key",
        findings=findings,
        options=options,
        headers=headers,
        headers_path=f"{p}.extra_headers",
    )


def _wildcard(
    entry: dict[str, Any],
    params: dict[str, Any],
    provider: str,
    where: str,
    book: IntegrationBook,
    findings: Findings,
) -> None:
    if entry["model_name"] == "*" and params["model"] == "*":
        findings.unsupported(where, "a catch-all '*' route has no Lockgate equivalent")
        return
    name = _integration(params, provider, f"{where}.litellm_params", book, findings)
    if name is not None:
        findings.changed(
            where, f"wildcard {entry['model_name']!r}: clients address these models as '@{name}/<model>'"
        )
    return None


class _Routes:
    def __init__(self, groups: dict[str, list[Deployment]], settings: _Settings, findings: Findings):
        self.groups = groups
        self.findings = findings
        where = settings.where
        self.fallbacks = _fallbacks(settings.get("fallbacks"), where.get("fallbacks", ""), findings)
        defaults = settings.get("default_fallbacks") or []
        self.default_fallbacks = [str(d) for d in defaults] if isinstance(defaults, list) else []
        self.policy = _policy(settings, findings)
        chains = [(where.get("fallbacks", ""), g, c) for g, c in self.fallbacks.items()]
        chains.append((where.get("default_fallbacks", ""), "every model_name", self.default_fallbacks))
        for path, group, chain in chains:
            for fb in chain:
                if fb not in groups:
                    findings.unsupported(
                        path, f"{group} falls back to {fb!r}, which has no imported deployment; left out"
                    )

    def chain(self, name: str) -> list[str]:
        chain = self.fallbacks.get(name)
        if chain is None:
            chain = [d for d in self.default_fallbacks if d != name]
        return [fb for fb in chain if fb in self.groups and fb != name]

    def build(self, name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        chain = self.chain(name)
        members = [self.groups[name], *(self.groups[fb] for fb in chain)]
        simple = all(len(m) == 1 and not m[0].extras for m in members)
        if simple and not self.policy:
            return {"alias": name, "targets": [m[0].spec for m in members]}, None
        nodes = [self._node(m) for m in members]
        root = nodes[0] if len(nodes) == 1 else {"strategy": {"mode": "fallback"}, "targets": nodes}
        root = {**self.policy, **root}
        config_id = "litellm-" + slug(name, 80)
        return (
            {"alias": name, "config": config_id},
            {"id": config_id, "description": f"LiteLLM model_name {name!r}", "config": root},
        )

    @staticmethod
    def _node(deployments: list[Deployment]) -> dict[str, Any]:
        leaves: list[dict[str, Any]] = [
            {"provider": "@" + d.integration, "override_params": {"model": d.model}, **d.extras}
            for d in deployments
        ]
        if len(leaves) == 1:
            return leaves[0]
        # simple-shuffle: weight if any deployment sets it, else rpm, else tpm, else equal.
        basis = next((k for k in ("weight", "rpm", "tpm") if any(k in d.weights for d in deployments)), None)
        if basis is not None:
            for leaf, d in zip(leaves, deployments, strict=True):
                leaf["weight"] = d.weights.get(basis, 0)
        return {"strategy": {"mode": "loadbalance"}, "targets": leaves}


def _fallbacks(value: Any, where: str, findings: Findings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in value or []:
        if not isinstance(item, dict):
            findings.unsupported(where, f"expected {{model_name: [fallbacks]}}, got {item!r}")
            continue
        for group, chain in item.items():
            out[str(group)] = [str(c) for c in (chain if isinstance(chain, list) else [chain])]
    return out


def _policy(settings: _Settings, findings: Findings) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    where = settings.where
    retries = settings.get("num_retries")
    if isinstance(retries, int) and retries > 0:
        policy["retry"] = {"attempts": min(retries, 10)}
        if retries > 10:
            findings.changed(where["num_retries"], "Lockgate retries at most 10 times")
    timeout = settings.get("timeout") or settings.get("request_timeout")
    if isinstance(timeout, int | float) and timeout > 0:
        policy["request_timeout"] = int(timeout * 1000)
    fails, cooldown = settings.get("allowed_fails"), settings.get("cooldown_time")
    if isinstance(fails, int) or isinstance(cooldown, int | float):
        breaker: dict[str, Any] = {}
        if isinstance(fails, int) and fails > 0:
            breaker["failure_threshold"] = fails
        if isinstance(cooldown, int | float) and cooldown > 0:
            breaker["cooldown_ms"] = max(100, int(cooldown * 1000))
        policy["circuit_breaker"] = breaker
        findings.changed(
            where.get("allowed_fails") or where["cooldown_time"],
            "becomes a circuit breaker per target: it opens after consecutive failures, "
            "where LiteLLM counts failures per minute",
        )
    if settings.get("cache") is True:
        cache: dict[str, Any] = {"mode": "simple"}
        params = settings.get("cache_params")
        if isinstance(params, dict) and isinstance(params.get("ttl"), int) and params["ttl"] > 0:
            cache["max_age"] = params["ttl"]
        policy["cache"] = cache
    return policy


def _group_aliases(value: Any, path: str, findings: Findings) -> list[tuple[str, str]]:
    out = []
    for extra, target in (value or {}).items() if isinstance(value, dict) else []:
        if isinstance(target, dict):
            if target.get("hidden"):
                findings.changed(f"{path}.{extra}", "hidden aliases are listed in /v1/models")
            target = target.get("model")
        if isinstance(target, str):
            out.append((str(extra), target))
    return out


def _master_key(general: Any, findings: Findings) -> dict[str, Any] | None:
    if not isinstance(general, dict):
        return None
    for key in general:
        if key != "master_key":
            findings.unsupported(f"general_settings.{key}", _HINTS.get(key, "not imported"))
    if not general.get("master_key"):
        return None
    ref = secret_reference(
        general["master_key"], "litellm-master-key", "general_settings.master_key", findings
    )
    findings.changed(
        "general_settings.master_key",
        "becomes the virtual key 'litellm-master-key' for the data plane; admin access uses "
        "LOCKGATE_ADMIN_KEY or `lockgate admin create`",
    )
    return {"name": "litellm-master-key", "workspace": "default", "key": ref}
