"""The declarative file (``lockgate.yaml``) and provider credentials from the environment.

The file is validated with pydantic so a mistake names its field; ``${VAR}``
and ``${VAR:-default}`` in string values are read from the environment, so
secrets never need to live in the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lockgate.providers.base import Credential, get_provider, provider_names

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The config file is unreadable or invalid; the message names the field."""


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

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if get_provider(value) is None:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(provider_names())}")
        return value


class ModelAliasConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(description="The model name clients send.")
    targets: list[str] = Field(
        min_length=1,
        description="'@integration/model' or 'provider/model' strings; the first is primary, "
        "the rest are fallbacks tried in order.",
    )


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    integrations: list[IntegrationConfig] = Field(default_factory=list)
    models: list[ModelAliasConfig] = Field(default_factory=list)


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
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    try:
        config = FileConfig.model_validate(_interpolate(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"config file {path} is invalid: {problems}") from exc
    names = [i.name for i in config.integrations]
    if len(names) != len(set(names)):
        raise ConfigError(f"config file {path}: integration names must be unique")
    return config


def credentials_from_env(environ: dict[str, str] | None = None) -> list[Credential]:
    """One default credential per provider whose API key variable is set.

    ``<PROVIDER>_BASE_URL`` overrides the base URL (e.g. OPENAI_BASE_URL).
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
    return found


def credentials_from_file(config: FileConfig) -> list[Credential]:
    creds = []
    for item in config.integrations:
        provider = get_provider(item.provider)
        assert provider is not None  # checked by the validator
        base = item.base_url or provider.default_base_url
        if not base:
            raise ConfigError(f"integration {item.name!r}: provider {item.provider!r} needs a base_url")
        creds.append(
            Credential(
                name=item.name,
                provider=item.provider,
                base_url=base,
                api_key=item.api_key or None,
                headers=item.headers,
                options=item.options,
            )
        )
    return creds
