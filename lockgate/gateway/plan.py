"""Compiled route plans: a validated route config turned into the tree the engine walks.

Compilation happens once per saved config (at load) and once per distinct inline
header config (memoised by ``RouteTable``): inheritance is resolved here, so each
node carries its effective ``Policy``; credentials are looked up; conditional
queries are compiled; target names become indices. Nothing here runs per request
except ``Leaf.target`` for leaves that take the client's model, which is memoised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lockgate.gateway.conditions import ConditionError, Predicate, compile_query
from lockgate.gateway.route_config import (
    CacheConfig,
    CircuitBreakerConfig,
    RetryConfig,
    RouteConfig,
)
from lockgate.gateway.route_config import Target as TargetConfig
from lockgate.gateway.targets import Target

# Statuses after which the next target is tried when a plan does not say: the provider
# is overloaded or broken, not the request.
FALLBACK_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_NO_RETRY = RetryConfig()
_MODEL_MEMO_LIMIT = 256


class PlanError(ValueError):
    """A config that validates but cannot be routed; ``path`` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Policy:
    """The effective, inherited settings of a node."""

    retry: RetryConfig = _NO_RETRY
    timeout: float | None = None  # seconds per attempt; None: the request deadline
    cache: CacheConfig | None = None
    breaker: CircuitBreakerConfig | None = None
    stream_failover: bool = False
    forward_headers: tuple[str, ...] = ()

    def child(self, node: TargetConfig) -> Policy:
        return Policy(
            retry=node.retry if node.retry is not None else self.retry,
            timeout=node.request_timeout / 1000 if node.request_timeout is not None else self.timeout,
            cache=node.cache if node.cache is not None else self.cache,
            breaker=node.circuit_breaker if node.circuit_breaker is not None else self.breaker,
            stream_failover=(
                node.stream_failover if node.stream_failover is not None else self.stream_failover
            ),
            forward_headers=tuple(h.lower() for h in node.forward_headers) or self.forward_headers,
        )


# (client model, provider id) -> the upstream model a leaf without override asks for.
ModelResolver = Callable[[str, str], str]


@dataclass(slots=True)
class Leaf:
    policy: Policy
    credential_target: Target  # credential + provider; ``model`` is the fixed model or ""
    fixed: bool  # True: the model is set by the config (override_params.model or the alias)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    name: str | None = None
    resolve_model: ModelResolver | None = None
    _by_model: dict[str, Target] = field(default_factory=dict)

    def target(self, client_model: str) -> Target:
        if self.fixed:
            return self.credential_target
        found = self._by_model.get(client_model)
        if found is None:
            base = self.credential_target
            assert self.resolve_model is not None
            model = self.resolve_model(client_model, base.credential.provider)
            found = Target(base.credential, base.provider, model)
            if len(self._by_model) < _MODEL_MEMO_LIMIT:
                self._by_model[client_model] = found
        return found


@dataclass(slots=True)
class Branch:
    mode: str  # single | fallback | loadbalance | conditional
    policy: Policy
    children: tuple[Node, ...]
    # fallback/loadbalance: statuses that move on; None = any error.
    move_on: frozenset[int] | None = None
    conditions: tuple[tuple[Predicate, int], ...] = ()
    default: int | None = None
    weight: float = 1.0
    name: str | None = None


Node = Leaf | Branch


@dataclass(frozen=True, slots=True)
class Plan:
    name: str  # route identity for records and cache keys: alias:x, config:x, inline:<hash>, model:x
    root: Node
    caches: bool  # some node has a cache policy: look the answer up before routing
    conditional: bool  # some branch is conditional: metadata/path can change the answer
    config: RouteConfig | None = None  # the root config (its guardrails apply to the request)

    def targets_for(self, client_model: str) -> tuple[Target, ...]:
        """Every target the plan may reach for this model (admission reserves for the dearest)."""
        return tuple({t.key: t for t in (leaf.target(client_model) for leaf in _leaves(self.root))}.values())


def _leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    return [leaf for child in node.children for leaf in _leaves(child)]


class CredentialResolver(Protocol):
    """What compilation needs from the route table."""

    def leaf_target(self, node: TargetConfig, path: str) -> Target:
        """The leaf's credential and provider (model ""), or PlanError naming ``path``."""
        ...

    def upstream_model(self, client_model: str, provider: str) -> str: ...


def compile_config(config: RouteConfig, resolver: CredentialResolver, *, name: str) -> Plan:
    flags = {"caches": False, "conditional": False}
    root = _compile(config, Policy(), resolver, "", flags)
    return Plan(name, root, flags["caches"], flags["conditional"], config)


def plan_for_targets(name: str, targets: tuple[Target, ...]) -> Plan:
    """An alias's ``targets`` list: the first primary, the rest fallbacks on provider failures."""
    leaves = tuple(Leaf(Policy(), t, fixed=True) for t in targets)
    root: Node = leaves[0] if len(leaves) == 1 else Branch("fallback", Policy(), leaves, FALLBACK_STATUSES)
    return Plan(name, root, caches=False, conditional=False)


def inline_name(header: str) -> str:
    return "inline:" + hashlib.sha256(header.encode()).hexdigest()[:16]


def _compile(
    node: TargetConfig, parent: Policy, resolver: CredentialResolver, path: str, flags: dict[str, bool]
) -> Node:
    policy = parent.child(node)
    flags["caches"] = flags["caches"] or policy.cache is not None
    if not node.targets:
        overrides = dict(node.override_params)
        model = overrides.pop("model", None)
        if model is not None and not isinstance(model, str):
            raise PlanError(_join(path, "override_params.model"), "must be a string")
        base = resolver.leaf_target(node, path)
        fixed = model is not None
        target = Target(base.credential, base.provider, model) if fixed else base
        return Leaf(
            policy,
            target,
            fixed,
            overrides,
            node.weight,
            node.name,
            None if fixed else resolver.upstream_model,
        )
    children = tuple(
        _compile(child, policy, resolver, _join(path, f"targets.{i}"), flags)
        for i, child in enumerate(node.targets)
    )
    strategy = node.strategy
    mode = strategy.mode if strategy is not None else "single"
    codes = strategy.on_status_codes if strategy is not None else None
    branch = Branch(mode, policy, children, weight=node.weight, name=node.name)
    if mode == "fallback":
        branch.move_on = frozenset(codes) if codes is not None else None
    elif mode == "loadbalance":
        branch.move_on = frozenset(codes) if codes is not None else FALLBACK_STATUSES
        if not any(c.weight > 0 for c in children):
            raise PlanError(_join(path, "targets"), "loadbalance needs a target with weight > 0")
    elif mode == "conditional":
        assert strategy is not None
        flags["conditional"] = True
        index = {c.name: i for i, c in enumerate(node.targets) if c.name is not None}
        compiled = []
        for i, condition in enumerate(strategy.conditions):
            where = _join(path, f"strategy.conditions.{i}")
            try:
                predicate = compile_query(condition.query, f"{where}.query")
            except ConditionError as exc:
                raise PlanError(exc.path, exc.message) from exc
            compiled.append((predicate, index[condition.then]))
        branch.conditions = tuple(compiled)
        branch.default = index[strategy.default] if strategy.default is not None else None
    return branch


def _join(path: str, field_name: str) -> str:
    return f"{path}.{field_name}" if path else field_name
