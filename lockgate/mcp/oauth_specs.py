"""Trusted OAuth issuers for ``/mcp`` as the admin API and lockgate.yaml accept them.

One pydantic model validates both doors. Workspaces are named (``workspace: support``) in
both and stored by id, so a rule cannot point at a workspace that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from lockgate.mcp.registry import NAME_PATTERN

# Asymmetric algorithms only: an HS* token would be "signed" with a public key anyone can fetch.
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
ALGORITHMS: tuple[str, ...] = Algorithm.__args__  # type: ignore[attr-defined]
_CLAIM = r"^[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*$"
# RFC 6749 scope-token: printable ASCII without space, quote or backslash (it goes into a challenge).
Scope = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,200}$")]


class ClaimRuleSpec(BaseModel):
    """Tokens whose ``claim`` matches land in ``workspace``; the first matching rule wins."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    claim: str = Field(
        max_length=200, pattern=_CLAIM, description='A claim; dots reach inside, e.g. "realm_access.roles".'
    )
    equals: str | None = Field(None, max_length=500, description="The claim is exactly this.")
    contains: str | None = Field(
        None, max_length=500, description="A list claim holds this (a string claim: one of its words)."
    )
    workspace: str = Field(min_length=1, max_length=200, description="The workspace (by name).")
    scopes: list[Scope] = Field(
        default_factory=list, description="Scopes the token must also carry (else 403 insufficient_scope)."
    )
    allow_servers: list[str] | None = Field(None, description="fnmatch patterns; unset: any.")
    deny_servers: list[str] | None = None
    allow_tools: list[str] | None = Field(None, description="Patterns over server__tool; unset: any.")
    deny_tools: list[str] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> ClaimRuleSpec:
        if self.equals is not None and self.contains is not None:
            raise ValueError("equals, contains: give one of them (neither: the claim is present)")
        return self


class OAuthIssuerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Lower-case; names the issuer in records.")
    issuer: str = Field(
        max_length=500, pattern=r"^https?://\S+$", description="The ``iss`` its tokens carry, exactly."
    )
    jwks_uri: str | None = Field(
        None, max_length=1000, pattern=r"^https?://\S+$", description="Unset: OIDC discovery from issuer."
    )
    audiences: list[str] = Field(
        default_factory=list,
        description="Accepted ``aud`` values besides the gateway's own resource URL (LOCKGATE_PUBLIC_URL).",
    )
    required_scopes: list[Scope] = Field(
        default_factory=list, description='Scopes every token must carry, e.g. ["mcp:tools"].'
    )
    algorithms: list[Algorithm] = Field(default_factory=lambda: list(ALGORITHMS), min_length=1)
    leeway_s: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat.")
    subject_claim: str = Field("sub", max_length=200, pattern=_CLAIM, description="Who the caller is.")
    default_workspace: str | None = Field(
        None, description="Where a token no rule matches lands (by name); unset: it is refused (403)."
    )
    rules: list[ClaimRuleSpec] = Field(default_factory=list)
    status: Literal["enabled", "disabled"] = "enabled"

    @model_validator(mode="after")
    def _unique_rules(self) -> OAuthIssuerSpec:
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rules: rule names must be unique within an issuer")
        return self


def issuer_values(spec: OAuthIssuerSpec, workspace_id: Any) -> dict[str, Any]:
    """Column values for a stored row; ``workspace_id(name, param)`` resolves a workspace name."""
    rules = []
    for i, rule in enumerate(spec.rules):
        stored = rule.model_dump(exclude={"workspace"})
        stored["workspace_id"] = workspace_id(rule.workspace, f"rules.{i}.workspace")
        rules.append(stored)
    default = spec.default_workspace
    return {
        "name": spec.name,
        "issuer": spec.issuer,
        "jwks_uri": spec.jwks_uri,
        "audiences": spec.audiences,
        "required_scopes": spec.required_scopes,
        "algorithms": list(spec.algorithms),
        "leeway_s": spec.leeway_s,
        "subject_claim": spec.subject_claim,
        "default_workspace_id": workspace_id(default, "default_workspace") if default else None,
        "rules": rules,
        "status": spec.status,
    }


def issuer_spec_dict(row: dict[str, Any], ws_names: dict[str, str]) -> dict[str, Any]:
    """A stored row as the spec says it (workspaces by name): for export and the API."""
    out = {
        k: row[k]
        for k in ("name", "issuer", "audiences", "required_scopes", "algorithms", "leeway_s", "status")
    }
    if row["jwks_uri"]:
        out["jwks_uri"] = row["jwks_uri"]
    if row["subject_claim"] != "sub":
        out["subject_claim"] = row["subject_claim"]
    if row["default_workspace_id"]:
        out["default_workspace"] = ws_names.get(row["default_workspace_id"], row["default_workspace_id"])
    out["rules"] = [
        {
            **{k: v for k, v in rule.items() if k != "workspace_id" and v is not None},
            "workspace": ws_names.get(rule["workspace_id"], rule["workspace_id"]),
        }
        for rule in row["rules"]
    ]
    return out
