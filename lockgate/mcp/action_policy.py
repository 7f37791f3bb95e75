"""Action policies on ``tools/call``: CEL conditions over who calls which tool with what arguments.

A policy matches a call when its server and tool patterns (fnmatch) match and its
``when`` condition (CEL, compiled once per snapshot) is true. The variables are::

    tool       the server's own tool name ("issue_refund")
    server     the server's name ("orders")
    args       the call's arguments (a map)
    principal  {"key": key id, "key_name": ..., "workspace": workspace id, "metadata": {...}}

Policies of the caller's workspace, then of its key, are tried in creation order; the first
that matches decides: ``allow`` (later policies are not tried), ``deny`` (a JSON-RPC error
naming the policy) or ``require_approval``. No match allows. ``limit`` policies decide nothing:
every one that matches counts the call against its window (``limit_calls`` per ``limit_window``
per key or workspace) on the shared counters, and a call past it is refused naming the policy.
A condition that fails to evaluate (a missing argument, a type mismatch) counts as a match:
a guard that cannot be checked fails closed, and the verdict says why.

CEL comes from ``cel-python`` (pure Python, no ``eval``): conditions can read the variables
above and call CEL's standard functions, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

import celpy

Action = Literal["allow", "deny", "require_approval", "limit"]
WINDOWS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}

_ENV = celpy.Environment()


class ConditionError(ValueError):
    """A condition that does not compile; the message says where."""


def compile_condition(text: str) -> Any:
    """A CEL program for ``text``; raises ``ConditionError`` naming the syntax error."""
    try:
        return _ENV.program(_ENV.compile(text))
    except celpy.CELParseError as exc:
        raise ConditionError(f"not a valid CEL expression: {str(exc).strip()}") from None


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    name: str
    scope_type: str  # workspace | key
    scope_id: str
    server: str  # fnmatch over the server name
    tool: str  # fnmatch over the server's tool name
    when: str | None
    action: Action
    approval_timeout_s: float
    limit_calls: int | None = None
    limit_window: str | None = None  # minute | hour | day
    limit_by: str | None = None  # key | workspace
    program: Any = field(default=None, repr=False, compare=False)  # the compiled ``when``; None: always

    def applies_to(self, server: str, tool: str) -> bool:
        return fnmatchcase(server, self.server) and fnmatchcase(tool, self.tool)


@dataclass(frozen=True, slots=True)
class Decision:
    policy: ToolPolicy | None
    action: Action
    error: str | None = None  # the condition failed to evaluate (and so matched)

    @property
    def verdict(self) -> dict[str, Any]:
        verdict: dict[str, Any] = {"check": "action_policy", "verdict": self.action}
        if self.policy is not None:
            verdict["policy"] = self.policy.name
        if self.error is not None:
            verdict["error"] = self.error
        return verdict


ALLOW = Decision(None, "allow")


def build_policy(row: Mapping[str, Any]) -> ToolPolicy:
    when = row["when_expr"]
    return ToolPolicy(
        name=row["name"],
        scope_type=row["scope_type"],
        scope_id=row["scope_id"],
        server=row["server"],
        tool=row["tool"],
        when=when,
        action=row["action"],
        approval_timeout_s=float(row["approval_timeout_s"]),
        limit_calls=row.get("limit_calls"),
        limit_window=row.get("limit_window"),
        limit_by=row.get("limit_by"),
        program=compile_condition(when) if when else None,
    )


class _Activation:
    """The CEL variables of one call, converted once and only if a condition needs them."""

    def __init__(self, server: str, tool: str, args: Mapping[str, Any], principal: Mapping[str, Any]):
        self.plain = {"tool": tool, "server": server, "args": dict(args), "principal": dict(principal)}
        self._cel: Any = None

    def matches(self, policy: ToolPolicy) -> tuple[bool, str | None]:
        """(matches, why the condition could not run): a condition that fails matches."""
        if policy.program is None:
            return True, None
        if self._cel is None:
            self._cel = celpy.json_to_cel(self.plain)
        try:
            result = policy.program.evaluate(self._cel)
        except celpy.CELEvalError as exc:
            return True, _eval_message(exc)
        if isinstance(result, celpy.CELEvalError):
            return True, _eval_message(result)
        if not isinstance(result, bool | celpy.celtypes.BoolType):
            return True, f"the condition gave {type(result).__name__}"
        return bool(result), None


def decide(
    policies: tuple[ToolPolicy, ...],
    *,
    server: str,
    tool: str,
    args: Mapping[str, Any],
    principal: Mapping[str, Any],
) -> tuple[Decision, tuple[ToolPolicy, ...]]:
    """The first deciding policy that matches (``ALLOW`` when none does), and every ``limit``
    policy that matches wherever it stands (an ``allow`` does not lift a limit)."""
    activation = _Activation(server, tool, args, principal)
    decision: Decision | None = None
    limits: list[ToolPolicy] = []
    for policy in policies:
        if not policy.applies_to(server, tool) or (decision is not None and policy.action != "limit"):
            continue
        matched, error = activation.matches(policy)
        if not matched:
            continue
        if policy.action == "limit":
            limits.append(policy)
        else:
            decision = Decision(policy, policy.action, error)
    return decision or ALLOW, tuple(limits)


def _eval_message(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__
