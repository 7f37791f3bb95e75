"""Usage policy checks that run on the request path, against the snapshot only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from lockgate.errors import BadRequest, PermissionDenied, PolicyDenied
from lockgate.governance.auth import Principal
from lockgate.governance.rules import UsagePolicy
from lockgate.providers.base import Body


def matches(model: str, patterns: Iterable[str]) -> bool:
    """Allow-list entries are exact names or fnmatch patterns (``gpt-4o*``, ``@openai-prod/*``)."""
    return any(model == p or fnmatchcase(model, p) for p in patterns)


def check_model_allowed(principal: Principal, model: str) -> None:
    if principal.allowed_models is not None and not matches(model, principal.allowed_models):
        raise PermissionDenied(
            f"The API key {principal.key_name!r} may not use the model {model!r}.",
            param="model",
            code="model_not_allowed",
        )


# Usage policies (governance/rules.py): every policy of the key and its workspace must pass.

_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def _where(policy: UsagePolicy) -> str:
    return f"The usage policy {policy.name!r} ({policy.scope_type} {policy.scope_id})"


def check_usage_policies(
    policies: Iterable[UsagePolicy],
    model: str,
    target_models: Iterable[str],
    body: Body,
    metadata: Mapping[str, str] | None,
    *,
    endpoint: str,
) -> None:
    """Raise 403 (models) or 400 (parameters, metadata) naming the rule; may set the output cap.

    A ``max_tokens`` cap also applies to requests that do not ask for a limit: they are sent
    with the cap, so the policy holds whatever the provider's default is.
    """
    targets = tuple(target_models)
    data = body.data
    for policy in policies:
        if policy.allowed_models is not None and not matches(model, policy.allowed_models):
            raise PolicyDenied(
                f"{_where(policy)} allows only the models {', '.join(policy.allowed_models)}; "
                f"{model!r} is not one of them.",
                param="model",
                code="model_not_allowed",
            )
        for name in (model, *targets):
            if policy.denied_models and matches(name, policy.denied_models):
                raise PolicyDenied(
                    f"{_where(policy)} denies the model {name!r}.", param="model", code="model_denied"
                )
        if policy.max_tokens is not None and endpoint != "embeddings":
            _cap_output(policy, body)
        n = data.get("n")
        if policy.max_n is not None and isinstance(n, int) and n > policy.max_n:
            raise BadRequest(
                f"{_where(policy)} allows n up to {policy.max_n}; the request asks for {n}.",
                param="n",
                code="policy_max_n",
            )
        temperature = data.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            low, high = policy.temperature_min, policy.temperature_max
            if (low is not None and temperature < low) or (high is not None and temperature > high):
                raise BadRequest(
                    f"{_where(policy)} allows temperature in [{low if low is not None else '-'}, "
                    f"{high if high is not None else '-'}]; the request asks for {temperature}.",
                    param="temperature",
                    code="policy_temperature",
                )
        missing = [k for k in policy.required_metadata if not metadata or k not in metadata]
        if missing:
            raise BadRequest(
                f"{_where(policy)} requires the metadata keys {', '.join(missing)} "
                "(send them in the x-lockgate-metadata header).",
                param="x-lockgate-metadata",
                code="policy_metadata_required",
            )


def _cap_output(policy: UsagePolicy, body: Body) -> None:
    assert policy.max_tokens is not None
    asked = [body.data[f] for f in _OUTPUT_FIELDS if isinstance(body.data.get(f), int)]
    for value in asked:
        if value > policy.max_tokens:
            raise BadRequest(
                f"{_where(policy)} allows at most {policy.max_tokens} output tokens; the request asks "
                f"for {value}.",
                param="max_tokens",
                code="policy_max_tokens",
            )
    if not asked:
        body.set("max_completion_tokens" if "messages" in body.data else "max_tokens", policy.max_tokens)


def check_target_allowed(principal: Principal, model: str, label: str) -> None:
    """A client-chosen route config (``x-lockgate-config``) reaches only models its key may use:
    the upstream ``model`` or its ``@integration/model`` label must be on the key's list."""
    allowed = principal.allowed_models
    if allowed is not None and not (matches(model, allowed) or matches(label, allowed)):
        raise PermissionDenied(
            f"The API key {principal.key_name!r} may not use the model {label!r} its config routes to.",
            param="x-lockgate-config",
            code="model_not_allowed",
        )
