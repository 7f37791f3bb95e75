"""The route config schema: a superset of Portkey's config JSON (DESIGN §3 "Route config").

A config is a tree. A node is either a *leaf* (``provider`` [+ ``override_params``])
or a *strategy node* (``strategy`` + ``targets``). Children inherit ``retry``,
``request_timeout``, ``cache``, ``circuit_breaker``, ``stream_failover`` and
guardrails from their parent unless they set their own.

Accepted from: the ``x-lockgate-config`` header (inline JSON, or the id of a
saved config), saved configs (``lockgate.yaml`` ``configs:`` and the admin API),
and model aliases. Keys may be snake_case or camelCase, as Portkey accepts.
Validation errors name the field by its path, e.g. ``targets.1.weight``.

Units follow Portkey: ``request_timeout`` and ``cooldown_ms`` in milliseconds,
``cache.max_age`` in seconds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from lockgate.errors import BadRequest

DEFAULT_RETRY_STATUSES = (429, 500, 502, 503, 504)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class RetryConfig(_Model):
    attempts: int = Field(0, ge=0, le=10, description="Retries after the first attempt on the same target.")
    on_status_codes: tuple[int, ...] = Field(
        DEFAULT_RETRY_STATUSES, description="Upstream statuses that retry."
    )
    use_retry_after_header: bool = Field(
        True, description="Wait as the provider's Retry-After says (capped)."
    )


class CacheConfig(_Model):
    mode: Literal["simple", "semantic"] = Field("simple", description="simple: exact match on the request.")
    max_age: int | None = Field(None, ge=1, description="Seconds a cached answer stays valid.")


class CircuitBreakerConfig(_Model):
    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open the circuit.")
    failure_ratio: float | None = Field(None, gt=0, le=1, description="Or: failure ratio over the window.")
    minimum_requests: int = Field(10, ge=1, description="Requests in the window before the ratio counts.")
    window_ms: int = Field(60_000, ge=1000, description="Window for the failure ratio.")
    cooldown_ms: int = Field(30_000, ge=100, description="Time open before one half-open probe.")
    failure_status_codes: tuple[int, ...] = Field((500, 502, 503, 504), description="Statuses that count.")


class Condition(_Model):
    query: dict[str, Any] = Field(description="Mongo-style query over metadata.*, params.*, url.pathname.")
    then: str = Field(description="Name of the target to use when the query matches.")


class StrategyConfig(_Model):
    mode: Literal["single", "fallback", "loadbalance", "conditional"] = "single"
    on_status_codes: tuple[int, ...] | None = Field(
        None, description="fallback: statuses that move on to the next target (default: any error)."
    )
    conditions: tuple[Condition, ...] = ()
    default: str | None = Field(None, description="conditional: the target name when nothing matches.")


GuardrailRef = str | dict[str, Any]


class Target(_Model):
    """One node of the routing tree."""

    name: str | None = Field(None, description="Addressed by conditional strategies.")
    provider: str | None = Field(
        None, description="'@integration', or a provider id using its default credential (or api_key)."
    )
    virtual_key: str | None = Field(None, description="Portkey's name for an integration; same as '@name'.")
    api_key: SecretStr | None = Field(None, description="Inline provider key (bring-your-own-key).")
    custom_host: str | None = Field(None, description="Override the provider's base URL.")
    override_params: dict[str, Any] = Field(default_factory=dict, description="Merged into the request body.")
    weight: float = Field(1.0, ge=0, description="loadbalance: relative share of traffic.")
    strategy: StrategyConfig | None = None
    targets: tuple[Target, ...] = ()
    retry: RetryConfig | None = None
    request_timeout: int | None = Field(None, ge=1, description="Per-attempt timeout in milliseconds.")
    cache: CacheConfig | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    stream_failover: bool | None = Field(None, description="Continue a stream broken mid-answer elsewhere.")
    forward_headers: tuple[str, ...] = Field((), description="Client headers passed to the provider.")
    input_guardrails: tuple[GuardrailRef, ...] = ()
    output_guardrails: tuple[GuardrailRef, ...] = ()

    @model_validator(mode="after")
    def _leaf_or_strategy(self) -> Target:
        is_leaf = self.provider is not None or self.virtual_key is not None
        if self.targets and is_leaf:
            raise ValueError("a target has either 'provider'/'virtual_key' or 'targets', not both")
        if not self.targets and not is_leaf:
            raise ValueError("a target needs 'provider' (or 'virtual_key') or a non-empty 'targets'")
        if self.strategy is not None and self.strategy.mode == "conditional":
            names = {t.name for t in self.targets}
            for ref in [c.then for c in self.strategy.conditions] + [self.strategy.default]:
                if ref is not None and ref not in names:
                    raise ValueError(f"conditional strategy refers to unknown target name {ref!r}")
        return self


class RouteConfig(Target):
    """A whole config: the root node of the tree."""


def parse_route_config(data: Any, *, source: str = "config") -> RouteConfig:
    """Validate a config dict; a BadRequest names every bad field by its path."""
    if not isinstance(data, dict):
        raise BadRequest(f"The {source} must be a JSON object.", param=source, code="invalid_config")
    try:
        return RouteConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise BadRequest(f"Invalid {source}: {problems}", param=source, code="invalid_config") from exc


def inline_keys(node: Target, path: str = "") -> list[str]:
    """Paths of the nodes that carry a provider key of their own (``api_key``)."""
    found = [f"{path}api_key"] if node.api_key is not None else []
    for i, child in enumerate(node.targets):
        found += inline_keys(child, f"{path}targets.{i}.")
    return found


def refuse_inline_keys(config: RouteConfig, prefix: str = "") -> None:
    """Saved configs are stored, exported and audited in clear, so a provider key may not live in one:
    it belongs in an integration (sealed at rest, masked when read). Per-request inline configs may
    still bring their own key; they are never stored."""
    paths = inline_keys(config)
    if paths:
        raise BadRequest(
            f"{prefix}{paths[0]}: a saved config may not hold a provider key (it would be stored and shown "
            "in clear); create an integration, which keeps it encrypted, and target it as '@name'.",
            param=f"{prefix}{paths[0]}",
            code="inline_key_not_allowed",
        )
