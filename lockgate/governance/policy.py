"""Usage policy checks that run on the request path, against the snapshot only."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from lockgate.errors import PermissionDenied
from lockgate.governance.auth import Principal


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
