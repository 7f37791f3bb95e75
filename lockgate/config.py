"""The declarative file (``lockgate.yaml``) and provider credentials from the environment.

The file is validated with pydantic so a mistake names its field; ``${VAR}``
and ``${VAR:-default}`` in string values are read from the environment, so
secrets never need to live in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from lockgate.errors import LockgateError
from lockgate.governance.specs import BudgetSpec, PolicySpec, RateLimitSpec
from lockgate.guardrails.definition import AttachmentConfig, GuardrailConfig
from lockgate.mcp.oauth_specs import OAuthIssuerSpec
from lockgate.mcp.specs import McpAccessRuleConfig, McpServerConfig, McpToolPolicyConfig
from lockgate.providers.base import Credential, get_provider, provider_names

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The config file is unreadable or invalid; the message names the field."""

    def __init__(self, message: str, *, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        # pydantic's error list, when validation failed: the admin API turns it into ``param``.
        self.errors = errors or []


class IntegrationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Unique name; models address it as '@name/model'.", pattern=r"^[A-Za-z0-9_.-]+$"
    )
    provider: str = Field(description="Provider id from the registry, e.g. openai, anthropic, groq.")
    base_url: str | None = Field(None, description="Override the provider's default base URL.")
    api_key: str | None = Field(None, description="Provider secret; use ${ENV_VAR} rather than a literal.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent upstream.")
    options: dict[str, Any] = Field(default_factory=dict, description="Provider-specific options.")
    workspaces: list[str] | None = Field(
        None, description="Names of the workspaces that may use it; unset: every workspace."
    )
    allowed_models: list[str] | None = Field(
        None, description="Upstream models it may serve (exact or fnmatch patterns); unset: any."
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if get_provider(value) is None:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(provider_names())}")
        return value


class ModelAliasConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(description="The model name clients send.")
    workspace: str | None = Field(None, description="Only this workspace (by name) sees the alias.")
    config: str | None = Field(None, description="The id of a saved route config, instead of targets.")
    targets: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="'@integration/model' or 'provider/model' strings; the first is primary, "
        "the rest are fallbacks tried in order.",
    )

    @field_validator("targets")
    @classmethod
    def _targets_or_config(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if bool(value) == bool(info.data.get("config")):
            raise ValueError("give either a non-empty 'targets' list or a 'config' id")
        return value


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="Unique workspace name.")
    description: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)


class KeyConfig(BaseModel):
    """A virtual key. Give ``key`` (e.g. ``${CI_KEY}``, hashed on apply), ``key_hash`` (SHA-256 hex),
    or neither: then apply generates one and shows it once."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    workspace: str = Field("default", description="Workspace name.")
    key: str | None = Field(None, min_length=16, description="The key itself; use ${ENV_VAR}.")
    key_hash: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of the key.")
    expires_at: datetime | None = None
    allowed_models: list[str] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("key_hash")
    @classmethod
    def _one_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("key") is not None:
            raise ValueError("give 'key' or 'key_hash', not both")
        return value


class SavedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="Referenced by aliases and headers.")
    workspace: str | None = None
    description: str = ""
    config: dict[str, Any] = Field(description="A route config (DESIGN §3).")

    @field_validator("config")
    @classmethod
    def _valid_route_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        from lockgate.gateway.route_config import parse_route_config, refuse_inline_keys

        try:
            refuse_inline_keys(parse_route_config(value))
        except LockgateError as exc:
            raise ValueError(exc.message) from exc
        return value


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspaces: list[WorkspaceConfig] = Field(default_factory=list)
    keys: list[KeyConfig] = Field(default_factory=list)
    integrations: list[IntegrationConfig] = Field(default_factory=list)
    models: list[ModelAliasConfig] = Field(default_factory=list)
    configs: list[SavedConfig] = Field(default_factory=list)
    guardrails: list[GuardrailConfig] = Field(default_factory=list)
    guardrail_attachments: list[AttachmentConfig] = Field(default_factory=list)
    # Scopes name workspaces and keys: "workspace:team-a", "key:team-a/ci" (governance/specs.py).
    budgets: list[BudgetSpec] = Field(default_factory=list)
    rate_limits: list[RateLimitSpec] = Field(default_factory=list)
    policies: list[PolicySpec] = Field(default_factory=list)
    # MCP servers and who may use their tools (mcp/specs.py).
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    mcp_access_rules: list[McpAccessRuleConfig] = Field(default_factory=list)
    # Action policies on tools/call: CEL conditions -> allow | deny | require_approval.
    mcp_tool_policies: list[McpToolPolicyConfig] = Field(default_factory=list)
    # Trusted OAuth issuers for bearer JWTs on /mcp, with claim -> workspace rules (mcp/oauth.py).
    oauth_issuers: list[OAuthIssuerSpec] = Field(default_factory=list)


def _interpolate(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    return value


def load_file(path: str | Path) -> FileConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return parse_config_text(text, source=f"config file {path}")


def parse_config_text(text: str, *, source: str = "config") -> FileConfig:
    """YAML (or JSON) text -> a validated FileConfig, ``${VAR}`` read from the environment."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a mapping at the top level")
    try:
        config = FileConfig.model_validate(_interpolate(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"{source} is invalid: {problems}", errors=exc.errors(include_url=False)) from exc
    for section, names in (
        ("integration names", [i.name for i in config.integrations]),
        ("workspace names", [w.name for w in config.workspaces]),
        ("config ids", [c.id for c in config.configs]),
        ("key names per workspace", [(k.workspace, k.name) for k in config.keys]),
        ("aliases per workspace", [(m.workspace, m.alias) for m in config.models]),
        ("guardrail names", [g.name for g in config.guardrails]),
        ("guardrail attachment targets", [a.target for a in config.guardrail_attachments]),
        ("budget names", [b.name for b in config.budgets]),
        ("rate limit names", [r.name for r in config.rate_limits]),
        ("policy names", [p.name for p in config.policies]),
    ):
        if len(names) != len(set(names)):
            raise ConfigError(f"{source}: {section} must be unique")
    return config


def credentials_from_env(environ: Mapping[str, str] | None = None) -> list[Credential]:
    """One default credential per provider whose credentials are in the environment.

    API-key providers: ``<PROVIDER>_API_KEY`` (``OPENAI_API_KEY``, ``GROQ_API_KEY`` ...), with
    ``<PROVIDER>_BASE_URL`` overriding the base URL (e.g. OPENAI_BASE_URL). Besides those:
    ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` -> gemini; ``COHERE_API_KEY`` (or ``CO_API_KEY``)
    -> cohere; ``AZURE_OPENAI_API_KEY`` + ``AZURE_OPENAI_ENDPOINT`` (+ ``AZURE_OPENAI_API_VERSION``)
    -> azure; ``AZURE_AI_API_KEY`` + ``AZURE_AI_ENDPOINT`` -> azure-foundry;
    ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``, ``AWS_REGION`` or
    ``AWS_DEFAULT_REGION``), or ``AWS_BEARER_TOKEN_BEDROCK``, -> bedrock;
    ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account file) + ``GOOGLE_CLOUD_PROJECT``
    (+ ``GOOGLE_CLOUD_LOCATION``) -> vertex.
    """
    from lockgate.providers.openai_compat import FAMILY

    env = os.environ if environ is None else environ
    found: list[Credential] = []
    candidates: list[tuple[str, str | None]] = [(p.name, p.env_key) for p in FAMILY]
    candidates.append(("anthropic", "ANTHROPIC_API_KEY"))
    for name, env_key in candidates:
        if env_key and env.get(env_key):
            provider = get_provider(name)
            assert provider is not None
            base = env.get(f"{name.upper()}_BASE_URL") or provider.default_base_url
            found.append(Credential(name=name, provider=name, base_url=base, api_key=env[env_key]))
    found.extend(_cloud_credentials_from_env(env))
    return found


def _cloud_credentials_from_env(env: Mapping[str, str]) -> list[Credential]:
    found: list[Credential] = []

    def add(name: str, api_key: str | None, base: str | None = None, **options: Any) -> None:
        provider = get_provider(name)
        assert provider is not None
        base_url = base or env.get(f"{name.upper().replace('-', '_')}_BASE_URL") or provider.default_base_url
        options = {k: v for k, v in options.items() if v}
        found.append(
            Credential(name=name, provider=name, base_url=base_url, api_key=api_key, options=options)
        )

    if gemini_key := env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY"):
        add("gemini", gemini_key)
    if cohere_key := env.get("COHERE_API_KEY") or env.get("CO_API_KEY"):
        add("cohere", cohere_key)
    if env.get("AZURE_OPENAI_API_KEY") and env.get("AZURE_OPENAI_ENDPOINT"):
        add("azure", env["AZURE_OPENAI_API_KEY"], env["AZURE_OPENAI_ENDPOINT"],
            api_version=env.get("AZURE_OPENAI_API_VERSION"))  # fmt: skip
    if env.get("AZURE_AI_API_KEY") and env.get("AZURE_AI_ENDPOINT"):
        add("azure-foundry", env["AZURE_AI_API_KEY"], env["AZURE_AI_ENDPOINT"])
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        add(
            "bedrock",
            None,
            region=region,
            access_key_id=env["AWS_ACCESS_KEY_ID"],
            secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            session_token=env.get("AWS_SESSION_TOKEN"),
        )
    elif env.get("AWS_BEARER_TOKEN_BEDROCK"):
        add("bedrock", env["AWS_BEARER_TOKEN_BEDROCK"], region=region)
    if env.get("GOOGLE_APPLICATION_CREDENTIALS") and env.get("GOOGLE_CLOUD_PROJECT"):
        add("vertex", None, service_account=env["GOOGLE_APPLICATION_CREDENTIALS"],
            project=env["GOOGLE_CLOUD_PROJECT"], region=env.get("GOOGLE_CLOUD_LOCATION"))  # fmt: skip
    return found


def credentials_from_file(config: FileConfig) -> list[Credential]:
    creds = []
    for item in config.integrations:
        provider = get_provider(item.provider)
        assert provider is not None  # checked by the validator
        base = item.base_url or provider.default_base_url
        if not base:
            raise ConfigError(f"integration {item.name!r}: provider {item.provider!r} needs a base_url")
        cred = Credential(
            name=item.name,
            provider=item.provider,
            base_url=base,
            api_key=item.api_key or None,
            headers=item.headers,
            options=item.options,
        )
        check = getattr(provider, "check_credential", None)
        problem = check(cred) if check is not None else None
        if problem:
            raise ConfigError(f"integration {item.name!r}: {problem}")
        creds.append(cred)
    return creds
