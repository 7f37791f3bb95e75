"""Budgets, rate limits and usage policies as the data plane holds them: precomputed per key.

Built once per config snapshot from the store's rows. A request looks up its
key's ``Rules`` (org + workspace + key, one dict hit), then the rules of the
integrations its route may reach and of its metadata values. Each rule carries
the *scope* string its counters live under:

    org:<org id>   ws:<workspace id>   key:<key id>   int:<integration name>   meta:<key>=<value>

With ``--approximate-limits`` every limit and budget is divided by the number of
workers here, once, so the hot path never thinks about it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SCOPE_TYPES = ("org", "workspace", "key", "integration", "metadata")
WINDOWS = (
    ("requests_per_minute", "requests", 60.0),
    ("requests_per_hour", "requests", 3600.0),
    ("requests_per_day", "requests", 86400.0),
    ("tokens_per_minute", "tokens", 60.0),
    ("tokens_per_day", "tokens", 86400.0),
)
DEFAULT_THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    name: str
    scope_type: str
    scope_id: str | None
    scope_value: str | None
    amount: float
    period: str
    hard: bool
    auto_revoke: bool
    thresholds: tuple[int, ...]
    webhook: str | None


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # requests_per_minute ...
    tokens: bool
    seconds: float
    limit: int


@dataclass(frozen=True, slots=True)
class RateLimit:
    id: str
    name: str
    scope_type: str
    scope_id: str | None
    scope_value: str | None
    windows: tuple[Window, ...]
    concurrent: int | None


@dataclass(frozen=True, slots=True)
class UsagePolicy:
    id: str
    name: str
    scope_type: str
    scope_id: str | None
    allowed_models: tuple[str, ...] | None
    denied_models: tuple[str, ...]
    max_tokens: int | None
    max_n: int | None
    temperature_min: float | None
    temperature_max: float | None
    required_metadata: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rules:
    """What applies at one scope level, each budget and limit paired with its scope string."""

    budgets: tuple[tuple[Budget, str], ...] = ()
    limits: tuple[tuple[RateLimit, str], ...] = ()
    policies: tuple[UsagePolicy, ...] = ()

    def __add__(self, other: Rules) -> Rules:
        return Rules(self.budgets + other.budgets, self.limits + other.limits, self.policies + other.policies)

    @property
    def empty(self) -> bool:
        return not (self.budgets or self.limits or self.policies)


NO_RULES = Rules()


@dataclass(frozen=True, slots=True)
class Governance:
    org_scope: str
    by_key: Mapping[str, Rules] = field(default_factory=dict)  # key id -> org + workspace + key
    by_workspace: Mapping[str, Rules] = field(default_factory=dict)  # for the master/demo identity
    integrations: Mapping[str, Rules] = field(default_factory=dict)
    # metadata key -> [(value or None for "each value", budget or limit)]
    metadata: Mapping[str, tuple[tuple[str | None, Budget | RateLimit], ...]] = field(default_factory=dict)
    workers: int = 1  # > 1: approximate mode, everything above is already divided

    @property
    def metadata_keys(self) -> frozenset[str]:
        """Metadata keys whose values are tracked in the ledger (the ones budgets or limits name)."""
        return frozenset(self.metadata)

    def rules(self, key_id: str, workspace_id: str) -> Rules:
        found = self.by_key.get(key_id)
        if found is not None:
            return found
        return self.by_workspace.get(workspace_id, NO_RULES)

    def for_integrations(self, names: Iterable[str]) -> Rules:
        total = NO_RULES
        for name in names:
            total = total + self.integrations.get(name, NO_RULES)
        return total

    def for_metadata(self, metadata: Mapping[str, str] | None) -> Rules:
        if not metadata or not self.metadata:
            return NO_RULES
        budgets: list[tuple[Budget, str]] = []
        limits: list[tuple[RateLimit, str]] = []
        for key, value in metadata.items():
            for wanted, rule in self.metadata.get(key, ()):
                if wanted is not None and wanted != value:
                    continue
                scope = metadata_scope(key, value)
                if isinstance(rule, Budget):
                    budgets.append((rule, scope))
                else:
                    limits.append((rule, scope))
        return Rules(tuple(budgets), tuple(limits))


NO_GOVERNANCE = Governance("org:org_default")


def metadata_scope(key: str, value: str) -> str:
    return f"meta:{key}={value}"


def scope_string(scope_type: str, scope_id: str | None, org_id: str) -> str:
    prefix = {"org": "org", "workspace": "ws", "key": "key", "integration": "int"}[scope_type]
    return f"org:{org_id}" if scope_type == "org" else f"{prefix}:{scope_id}"


def _divide(value: int, workers: int) -> int:
    return max(1, value // workers) if workers > 1 else value


def budget_from_row(row: Mapping[str, Any], workers: int = 1) -> Budget:
    return Budget(
        id=row["id"],
        name=row["name"],
        scope_type=row["scope_type"],
        scope_id=row["scope_id"],
        scope_value=row["scope_value"],
        amount=float(row["amount_usd"]) / workers,
        period=row["period"],
        hard=row["mode"] == "hard",
        auto_revoke=bool(row["auto_revoke"]),
        thresholds=tuple(sorted(int(t) for t in row["alert_thresholds"] or ())),
        webhook=row["alert_webhook"],
    )


def limit_from_row(row: Mapping[str, Any], workers: int = 1) -> RateLimit:
    windows = tuple(
        Window(name, kind == "tokens", seconds, _divide(int(row[name]), workers))
        for name, kind, seconds in WINDOWS
        if row[name] is not None
    )
    concurrent = row["concurrent"]
    return RateLimit(
        id=row["id"],
        name=row["name"],
        scope_type=row["scope_type"],
        scope_id=row["scope_id"],
        scope_value=row["scope_value"],
        windows=windows,
        concurrent=_divide(int(concurrent), workers) if concurrent is not None else None,
    )


def policy_from_row(row: Mapping[str, Any]) -> UsagePolicy:
    allowed = row["allowed_models"]
    return UsagePolicy(
        id=row["id"],
        name=row["name"],
        scope_type=row["scope_type"],
        scope_id=row["scope_id"],
        allowed_models=tuple(allowed) if allowed is not None else None,
        denied_models=tuple(row["denied_models"] or ()),
        max_tokens=row["max_tokens"],
        max_n=row["max_n"],
        temperature_min=row["temperature_min"],
        temperature_max=row["temperature_max"],
        required_metadata=tuple(row["required_metadata"] or ()),
    )


def build_governance(
    org_id: str,
    workspaces: Iterable[Mapping[str, Any]],
    keys: Iterable[Mapping[str, Any]],
    budget_rows: Iterable[Mapping[str, Any]],
    limit_rows: Iterable[Mapping[str, Any]],
    policy_rows: Iterable[Mapping[str, Any]],
    *,
    workers: int = 1,
) -> Governance:
    """Index every rule by where it attaches, then fold them into one ``Rules`` per key."""
    at: dict[tuple[str, str | None], list[Budget | RateLimit | UsagePolicy]] = {}
    metadata: dict[str, list[tuple[str | None, Budget | RateLimit]]] = {}
    rules: list[Budget | RateLimit | UsagePolicy] = [budget_from_row(r, workers) for r in budget_rows]
    rules += [limit_from_row(r, workers) for r in limit_rows]
    rules += [policy_from_row(r) for r in policy_rows]
    for rule in rules:
        if rule.scope_type == "metadata":
            if isinstance(rule, Budget | RateLimit) and rule.scope_id:
                metadata.setdefault(rule.scope_id, []).append((rule.scope_value, rule))
            continue
        at.setdefault((rule.scope_type, rule.scope_id if rule.scope_type != "org" else None), []).append(rule)

    def level(scope_type: str, scope_id: str | None) -> Rules:
        found = at.get((scope_type, scope_id if scope_type != "org" else None), [])
        scope = scope_string(scope_type, scope_id, org_id)
        return Rules(
            tuple((r, scope) for r in found if isinstance(r, Budget)),
            tuple((r, scope) for r in found if isinstance(r, RateLimit)),
            tuple(r for r in found if isinstance(r, UsagePolicy)),
        )

    org = level("org", None)
    by_workspace = {w["id"]: org + level("workspace", w["id"]) for w in workspaces}
    # Keys without rules of their own fall back to their workspace's entry at lookup.
    by_key = {
        k["id"]: by_workspace.get(k["workspace_id"], org) + own
        for k in keys
        if not (own := level("key", k["id"])).empty
    }
    integrations = {
        scope_id: level("integration", scope_id)
        for scope_type, scope_id in at
        if scope_type == "integration" and scope_id is not None
    }
    return Governance(
        org_scope=f"org:{org_id}",
        by_key=MappingProxyType(by_key),
        by_workspace=MappingProxyType(by_workspace),
        integrations=MappingProxyType(integrations),
        metadata=MappingProxyType({k: tuple(v) for k, v in metadata.items()}),
        workers=workers,
    )


def reservation_lease(request_timeout: float) -> float:
    """How long a reservation or concurrency slot outlives a silent process: the longest a
    request may run, plus a minute."""
    return math.ceil(request_timeout) + 60.0
