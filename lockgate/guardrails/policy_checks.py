"""Request-policy checks: which models may be asked, which metadata must come along."""

from __future__ import annotations

from pydantic import Field

from lockgate.governance.policy import matches
from lockgate.guardrails.base import CheckInput, Params, Verdict, check


class ModelAllowListParams(Params):
    models: tuple[str, ...] = Field(min_length=1, description="Exact names or fnmatch patterns.")


@check(
    "model_allowlist",
    ModelAllowListParams,
    description="The requested model is one of the allowed names or patterns.",
    stages=("input",),
)
def model_allowlist(data: CheckInput, params: ModelAllowListParams) -> Verdict:
    model = data.model or ""
    if matches(model, params.models):
        return Verdict(True)
    return Verdict(False, f"the model {model!r} is not in the allow-list")


class RequiredMetadataParams(Params):
    keys: tuple[str, ...] = Field((), description="Keys x-lockgate-metadata must carry.")
    values: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Keys whose value must be one of these."
    )


@check(
    "required_metadata",
    RequiredMetadataParams,
    description="x-lockgate-metadata carries the required keys (and allowed values).",
    stages=("input",),
)
def required_metadata(data: CheckInput, params: RequiredMetadataParams) -> Verdict:
    missing = [k for k in (*params.keys, *params.values) if k not in data.metadata]
    if missing:
        return Verdict(False, f"missing metadata: {', '.join(dict.fromkeys(missing))}")
    for key, allowed in params.values.items():
        if data.metadata[key] not in allowed:
            return Verdict(False, f"metadata {key}={data.metadata[key]!r} is not one of {list(allowed)}")
    return Verdict(True)
