"""Action policies: CEL conditions, first match decides, conditions that cannot run fail closed."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.mcp.action_policy import ConditionError, build_policy, compile_condition, decide
from lockgate.mcp.registry import build_registry
from lockgate.mcp.specs import McpToolPolicySpec


def _row(name: str, when: str | None, action: str, tool: str = "*", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "scope_type": "workspace",
        "scope_id": "ws",
        "server": "*",
        "tool": tool,
        "when_expr": when,
        "action": action,
        "approval_timeout_s": 30,
        "created_at": 1.0,
        "id": name,
        **extra,
    }


WHO = {"key": "k1", "key_name": "ci", "workspace": "ws", "metadata": {"team": "support"}}


def _decide(rows: list[dict[str, Any]], tool: str, args: dict[str, Any]) -> tuple[str, str | None]:
    decision, _ = decide(
        tuple(build_policy(r) for r in rows), server="orders", tool=tool, args=args, principal=WHO
    )
    return decision.action, decision.policy.name if decision.policy else None


def test_first_match_decides_and_no_match_allows() -> None:
    rows = [
        _row("trusted", 'principal.metadata.team == "finance"', "allow"),
        _row("cap", "args.amount > 100", "deny", tool="issue_refund"),
        _row("review", "args.amount > 50", "require_approval", tool="issue_*"),
    ]
    assert _decide(rows, "issue_refund", {"amount": 150}) == ("deny", "cap")
    assert _decide(rows, "issue_refund", {"amount": 150.5}) == ("deny", "cap")
    assert _decide(rows, "issue_refund", {"amount": 80}) == ("require_approval", "review")
    assert _decide(rows, "issue_refund", {"amount": 10}) == ("allow", None)
    assert _decide(rows, "lookup_order", {"amount": 500}) == ("allow", None)
    finance = [_row("trusted", 'principal.metadata.team == "support"', "allow"), *rows[1:]]
    assert _decide(finance, "issue_refund", {"amount": 150}) == ("allow", "trusted")


def test_a_condition_that_cannot_run_matches() -> None:
    rows = [_row("mail", '!args.to.endsWith("@example.com")', "deny", tool="send_email")]
    assert _decide(rows, "send_email", {"to": "a@example.com"}) == ("allow", None)
    assert _decide(rows, "send_email", {"to": "a@evil.test"}) == ("deny", "mail")
    decision, _ = decide(
        tuple(build_policy(r) for r in rows), server="orders", tool="send_email", args={}, principal=WHO
    )
    assert decision.action == "deny" and decision.error and "to" in decision.error
    typed = [_row("cap", "args.amount > 100", "deny")]
    assert _decide(typed, "issue_refund", {"amount": "lots"}) == ("deny", "cap")
    not_bool = [_row("odd", "args.amount", "deny")]
    assert _decide(not_bool, "issue_refund", {"amount": 3}) == ("deny", "odd")


def test_conditions_compile_on_write_and_never_run_python() -> None:
    with pytest.raises(ConditionError):
        compile_condition("args.amount >")
    with pytest.raises(ValueError, match="when"):
        McpToolPolicySpec(name="x", when="tool == ")
    rows = [_row("py", '__import__("os").system("true") == 0', "deny")]
    assert _decide(rows, "t", {}) == ("deny", "py")  # an unknown function: an error, so it fails closed


def test_a_broken_stored_condition_denies_what_it_names() -> None:
    registry = build_registry([], [], None, [_row("hand-edited", "args.x >", "deny", tool="t")])  # type: ignore[arg-type]
    (policy,) = registry.policies_for("ws", "k1")
    assert policy.action == "deny" and policy.program is None
    allow = build_registry([], [], None, [_row("lax", "args.x >", "allow")])  # type: ignore[arg-type]
    assert allow.policies_for("ws", "k1") == ()


def test_every_matching_limit_counts_whatever_decides() -> None:
    rows = [
        _row("trusted", None, "allow", tool="issue_refund"),
        _row("hourly", None, "limit", tool="issue_*", limit_calls=50, limit_window="hour", limit_by="key"),
        _row("big-daily", "args.amount > 10", "limit", limit_calls=5, limit_window="day", limit_by="key"),
    ]
    policies = tuple(build_policy(r) for r in rows)
    decision, limits = decide(policies, server="o", tool="issue_refund", args={"amount": 20}, principal=WHO)
    assert decision.action == "allow" and [p.name for p in limits] == ["hourly", "big-daily"]
    _, limits = decide(policies, server="o", tool="issue_refund", args={"amount": 2}, principal=WHO)
    assert [p.name for p in limits] == ["hourly"]
    _, limits = decide(policies, server="o", tool="lookup_order", args={"amount": 2}, principal=WHO)
    assert limits == ()
    with pytest.raises(ValueError, match="limit"):
        McpToolPolicySpec(name="x", action="limit")
    with pytest.raises(ValueError, match="limit"):
        McpToolPolicySpec(name="x", action="deny", limit={"calls": 1, "per": "hour"})
