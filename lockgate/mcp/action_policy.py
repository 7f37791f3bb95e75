"""Action policies on ``tools/call``: CEL conditions over who calls which tool with what arguments.

A policy matches a call when its server and tool patterns (fnmatch) match and its
``when`` condition (CEL, compiled once per snapshot) is true. The variables are::

    tool       the server's own tool name ("issue_refund")
    server     the server's name ("orders")
    args       the call's arguments (a map)
    principal  {"key": key id, "key_name": ..., "workspace": workspace id, "metadata": {...}}

Policies of the caller's workspace, then of its key, are tried in creation order; the first
that matches decides: ``allow`` (later policies are not tried), ``deny`` (a JSON-RPC error
naming the policy) or ``require_approval``. No match allows. A condition that fails to
evaluate (a missing argument, a type mismatch) counts as a match: a guard that cannot be
checked fails closed, and the verdict says why.

CEL comes from ``cel-python`` (pure Python, no ``eval``): conditions can read the variables
above and call CEL's standard functions, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

import celpy

Action = Literal["allow", "deny", "require_approval"]

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
        program=compile_condition(when) if when else None,
    )


def decide(
    policies: tuple[ToolPolicy, ...],
    *,
    server: str,
    tool: str,
    args: Mapping[str, Any],
    principal: Mapping[str, Any],
) -> Decision:
    """The first policy that matches this call, as a decision; ``ALLOW`` when none does."""
    activation: dict[str, Any] | None = None
    for policy in policies:
        if not policy.applies_to(server, tool):
            continue
        if policy.program is None:
            return Decision(policy, policy.action)
        if activation is None:
            activation = celpy.json_to_cel(
                {"tool": tool, "server": server, "args": dict(args), "principal": dict(principal)}
            )
        try:
            result = policy.program.evaluate(activation)
        except celpy.CELEvalError as exc:
            return Decision(policy, policy.action, error=_eval_message(exc))
        if isinstance(result, celpy.CELEvalError):
            return Decision(policy, policy.action, error=_eval_message(result))
        if not isinstance(result, bool | celpy.celtypes.BoolType):
            return Decision(policy, policy.action, error=f"the condition gave {type(result).__name__}")
        if result:
            return Decision(policy, policy.action)
    return ALLOW


def _eval_message(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__
