"""Budgets, rate limits and usage policies as users write them: in ``lockgate.yaml`` and the admin API.

A scope is one string: ``org``, ``workspace:<w>``, ``key:<k>``, ``integration:<name>``,
``metadata:<key>`` (each value on its own, e.g. a per-user budget) or
``metadata:<key>=<value>`` (one value). The admin API names workspaces and keys by
id; the file by name, with keys as ``<workspace name>/<key name>``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = r"^[A-Za-z0-9_.-]{1,100}$"
Period = Literal["none", "day", "week", "month"]
LIMIT_FIELDS = (
    "requests_per_minute",
    "requests_per_hour",
    "requests_per_day",
    "tokens_per_minute",
    "tokens_per_day",
    "concurrent",
)
POLICY_SCOPES = ("workspace", "key")


def parse_scope(text: str) -> tuple[str, str | None, str | None]:
    """``"metadata:user=alice"`` -> ("metadata", "user", "alice"); ValueError naming the problem."""
    kind, sep, rest = text.partition(":")
    if kind == "org":
        if sep:
            raise ValueError("'org' takes no value")
        return "org", None, None
    if kind not in ("workspace", "key", "integration", "metadata") or not rest:
        raise ValueError(
            "expected org, workspace:<w>, key:<k>, integration:<name>, "
            "metadata:<key> or metadata:<key>=<value>"
        )
    if kind == "metadata":
        key, eq, value = rest.partition("=")
        if not key or (eq and not value):
            raise ValueError("expected metadata:<key> or metadata:<key>=<value>")
        return "metadata", key, value if eq else None
    return kind, rest, None


def format_scope(scope_type: str, scope_id: str | None, scope_value: str | None) -> str:
    if scope_type == "org":
        return "org"
    if scope_type == "metadata" and scope_value is not None:
        return f"metadata:{scope_id}={scope_value}"
    return f"{scope_type}:{scope_id}"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="Unique name of the object (per kind).")
    scope: str = Field(description="Where it applies, e.g. 'workspace:team-a' or 'metadata:user'.")

    @field_validator("scope")
    @classmethod
    def _valid_scope(cls, value: str) -> str:
        parse_scope(value)
        return value


class BudgetFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_usd: float = Field(gt=0, description="The budget in US dollars.")
    period: Period = Field("month", description="none (lifetime), day, week (from Monday) or month; UTC.")
    mode: Literal["hard", "soft"] = Field(
        "hard", description="hard refuses past the budget; soft alerts only."
    )
    auto_revoke: bool = Field(False, description="Revoke the key when its budget is reached (key scope).")
    alert_thresholds: list[int] = Field(
        default_factory=lambda: [50, 80, 100], description="Percentages that fire an alert, once per period."
    )
    alert_webhook: str | None = Field(None, pattern=r"^https?://", description="POSTed each alert as JSON.")

    @field_validator("alert_thresholds")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        if any(t < 1 or t > 1000 for t in value):
            raise ValueError("thresholds are percentages between 1 and 1000")
        return sorted(set(value))


class BudgetSpec(_Spec, BudgetFields):
    @model_validator(mode="after")
    def _revoke_needs_key(self) -> BudgetSpec:
        if self.auto_revoke and not self.scope.startswith("key:"):
            raise ValueError("auto_revoke applies to key budgets only (scope key:...)")
        return self


class LimitFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=1)
    requests_per_hour: int | None = Field(None, ge=1)
    requests_per_day: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)
    concurrent: int | None = Field(None, ge=1, description="Requests in flight at once.")


class RateLimitSpec(_Spec, LimitFields):
    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitSpec:
        if all(getattr(self, f) is None for f in LIMIT_FIELDS):
            raise ValueError(f"give at least one of {', '.join(LIMIT_FIELDS)}")
        return self


class PolicyFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_models: list[str] | None = Field(None, description="Exact names or fnmatch patterns; unset: any.")
    denied_models: list[str] | None = Field(
        None, description="Refused even when allowed; checks route targets too."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Cap on output tokens; requests without one get it."
    )
    max_n: int | None = Field(None, ge=1, description="Cap on choices per request.")
    temperature_min: float | None = None
    temperature_max: float | None = None
    required_metadata: list[str] | None = Field(None, description="Metadata keys every request must send.")


class PolicySpec(_Spec, PolicyFields):
    @model_validator(mode="after")
    def _policy_scope(self) -> PolicySpec:
        if parse_scope(self.scope)[0] not in POLICY_SCOPES:
            raise ValueError("usage policies attach to a workspace or a key (scope workspace:... or key:...)")
        low, high = self.temperature_min, self.temperature_max
        if low is not None and high is not None and low > high:
            raise ValueError("temperature_min is above temperature_max")
        return self
