"""Rules shared by the admin API and the declarative apply: how stored values are made and checked."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from lockgate.errors import BadRequest, Conflict
from lockgate.governance.secrets import SecretBox, mask
from lockgate.providers.base import get_provider
from lockgate.store.control import (
    API_KEY,
    BUDGET,
    GUARDRAIL,
    GUARDRAIL_ATTACHMENT,
    MODEL_ALIAS,
    RATE_LIMIT,
    ROUTE_CONFIG,
    USAGE_POLICY,
    Change,
)


def secret_values(secrets: SecretBox, secret: str) -> dict[str, Any]:
    return {"secret_ciphertext": secrets.encrypt(secret), "secret_hint": mask(secret)}


def integration_values(
    *,
    provider: str,
    base_url: str | None,
    headers: Mapping[str, str],
    options: Mapping[str, Any],
    workspace_ids: list[str] | None,
    allowed_models: list[str] | None,
) -> dict[str, Any]:
    found = get_provider(provider)
    if found is None:
        raise BadRequest(f"Unknown provider {provider!r}.", param="provider")
    if not (base_url or found.default_base_url):
        raise BadRequest(f"The provider {provider!r} needs a base_url.", param="base_url")
    return {
        "provider": provider,
        "base_url": base_url,
        "headers": dict(headers),
        "options": dict(options),
        "workspace_ids": workspace_ids,
        "allowed_models": allowed_models,
    }


def check_alias_refs(
    targets: list[str],
    config_id: str | None,
    integration_names: Collection[str],
    config_ids: Collection[str],
    where: str,
) -> None:
    """An alias may only name integrations and configs that exist (env credentials count)."""
    from lockgate.config import credentials_from_env

    known = set(integration_names) | {c.name for c in credentials_from_env()}
    for i, spec in enumerate(targets):
        if spec.startswith("@"):
            name, sep, model = spec[1:].partition("/")
            if not sep or not model:
                raise BadRequest(
                    f"{where}.targets.{i}: expected '@integration/model'", param=f"{where}.targets.{i}"
                )
            if name not in known:
                raise BadRequest(
                    f"{where}.targets.{i}: no integration named {name!r}", param=f"{where}.targets.{i}"
                )
    if config_id is not None and config_id not in config_ids:
        raise BadRequest(f"{where}.config: no saved config {config_id!r}", param=f"{where}.config")


async def check_workspace_empty(tx: Change, workspace_id: str) -> None:
    for kind in (
        API_KEY,
        MODEL_ALIAS,
        ROUTE_CONFIG,
        GUARDRAIL,
        GUARDRAIL_ATTACHMENT,
        BUDGET,
        RATE_LIMIT,
        USAGE_POLICY,
    ):
        if await tx.find(kind, workspace_id=workspace_id) is not None:
            raise Conflict(
                f"The workspace {workspace_id!r} still holds {kind.name} objects; delete or move them first.",
                code="workspace_not_empty",
            )


def env_var_name(integration: str) -> str:
    return "LOCKGATE_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", integration).upper()
