"""Rules shared by the admin API and the declarative apply: how stored values are made and checked."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from lockgate.errors import BadRequest, Conflict
from lockgate.gateway.credentials import CredentialConfigError, source_for
from lockgate.governance import secret_fields
from lockgate.governance.secrets import SecretBox, SecretKeyError, mask
from lockgate.providers.base import Credential, CredentialProblem, check_credential, get_provider
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
    Row,
)


def secret_values(secrets: SecretBox, secret: str) -> dict[str, Any]:
    return {"secret_ciphertext": secrets.encrypt(secret), "secret_hint": mask(secret)}


def integration_values(
    secrets: SecretBox,
    *,
    name: str,
    provider: str,
    base_url: str | None,
    api_key: str | None,
    headers: Mapping[str, str],
    options: Mapping[str, Any],
    workspace_ids: list[str] | None,
    allowed_models: list[str] | None,
    previous: Row | None = None,
    where: str = "",
) -> dict[str, Any]:
    """An integration's stored columns, its secret options and headers sealed, once it is usable.

    ``api_key`` is the key it will have (checked here, stored by the caller with
    ``secret_values``); ``previous`` is the stored row, whose secrets a mask keeps; ``where``
    prefixes the ``param`` of a 400 (``integrations.2``).
    """
    at = f"{where}." if where else ""
    found = get_provider(provider)
    if found is None:
        raise BadRequest(f"Unknown provider {provider!r}.", param=f"{at}provider")
    if not (base_url or found.default_base_url):
        raise BadRequest(f"The provider {provider!r} needs a base_url.", param=f"{at}base_url")
    sealed = secret_fields.seal(secrets, provider, options, headers, previous)
    clear_options, clear_headers = secret_fields.open_fields(secrets, sealed)
    cred = Credential(
        name, provider, base_url or found.default_base_url, api_key, clear_headers, clear_options
    )
    problem = check_credential(found, cred)
    if problem is None:
        try:
            source_for(cred)  # token-minting options (service account, Entra ID) must be usable too
        except CredentialConfigError as exc:
            problem = CredentialProblem(exc.param, str(exc))
    if problem is not None:
        raise BadRequest(
            f"{at}{problem.param}: {problem.message}", param=f"{at}{problem.param}", code="invalid_credential"
        )
    return {
        "provider": provider,
        "base_url": base_url,
        **sealed,
        "workspace_ids": workspace_ids,
        "allowed_models": allowed_models,
    }


def stored_fields(secrets: SecretBox, row: Row) -> tuple[str | None, dict[str, Any], dict[str, str]]:
    """A stored integration's clear api_key, options and headers (for a partial update)."""
    try:
        api_key = secrets.decrypt(row["secret_ciphertext"]) if row["secret_ciphertext"] else None
        options, headers = secret_fields.open_fields(secrets, row)
    except SecretKeyError as exc:
        raise Conflict(
            f"The stored secrets of {row['name']!r} cannot be decrypted with LOCKGATE_SECRET_KEY; "
            "send api_key, options and headers again.",
            code="secret_unreadable",
        ) from exc
    return api_key, options, headers


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


def config_uses_integration(config: Any, name: str) -> bool:
    """Whether a saved route config reaches the integration: a node of its tree (the root and
    ``targets``, recursively) with ``provider: "@name"`` or ``virtual_key: name``."""
    if not isinstance(config, Mapping):
        return False
    provider = config.get("provider")
    if isinstance(provider, str) and provider.startswith("@") and provider[1:].partition("/")[0] == name:
        return True
    if name in (config.get("virtual_key"), config.get("virtualKey")):
        return True
    targets = config.get("targets")
    return isinstance(targets, list) and any(config_uses_integration(t, name) for t in targets)


async def check_integration_unused(tx: Change, name: str) -> None:
    """409 naming every alias and saved config that still routes to the integration."""
    users = [
        f"alias {a['alias']!r}"
        for a in await tx.all(MODEL_ALIAS)
        if any(t.startswith(f"@{name}/") for t in a["targets"] or [])
    ]
    users += [
        f"config {c['id']!r}"
        for c in await tx.all(ROUTE_CONFIG)
        if config_uses_integration(c["config"], name)
    ]
    if users:
        raise Conflict(
            f"The integration {name!r} is still used by {', '.join(users)}; change or delete them first.",
            code="in_use",
        )


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
