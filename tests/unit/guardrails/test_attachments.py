"""Which guardrails a request meets: org, workspace, key, route config; compiled once per snapshot."""

from __future__ import annotations

import pytest

from lockgate.gateway.route_config import parse_route_config
from lockgate.guardrails import NONE, build_guardrail_set
from lockgate.guardrails.attachments import GuardrailRefError

PII = [{"type": "pii"}]


def row(name: str, **spec: object) -> dict[str, object]:
    base = {"name": name, "action": "deny", "mode": "sequential", "on_error": "closed", "timeout_ms": 1000}
    return {**base, "checks": PII, "description": "", "roles": None, **spec}


def attach(scope: str, target: str, ins: list[str], outs: list[str] = []) -> dict[str, object]:  # noqa: B006
    return {"scope": scope, "target_id": target, "input_guardrails": ins, "output_guardrails": outs}


def test_order_is_org_workspace_key_and_duplicates_run_once() -> None:
    rows = [row("org-g"), row("ws-g"), row("key-g")]
    attachments = [
        attach("org", "org_default", ["org-g"]),
        attach("workspace", "ws_a", ["ws-g", "org-g"], ["ws-g"]),
        attach("key", "key_1", ["key-g"]),
    ]
    guardrails = build_guardrail_set(rows, attachments)
    got = guardrails.for_principal("ws_a", "key_1")
    assert [g.name for g in got.input] == ["org-g", "ws-g", "key-g"]
    assert [g.name for g in got.output] == ["ws-g"]
    assert [g.name for g in guardrails.for_principal("ws_b", "key_2").input] == ["org-g"]
    assert guardrails.for_principal("ws_a", "key_1") is got  # memoised per (workspace, key)


def test_nothing_attached_costs_nothing() -> None:
    guardrails = build_guardrail_set([row("unused")], [])
    assert guardrails.empty and guardrails.for_request("ws_a", "key_1") is NONE


def test_route_config_guardrails_by_name_and_inline() -> None:
    guardrails = build_guardrail_set([row("named")], [attach("org", "org_default", ["named"])])
    config = parse_route_config(
        {
            "provider": "@mock-openai",
            "input_guardrails": ["named", {"checks": [{"type": "contains", "params": {"words": ["x"]}}]}],
            "output_guardrails": [
                {"name": "json-out", "checks": [{"type": "json_keys", "params": {"keys": ["a"]}}]}
            ],
        }
    )
    got = guardrails.for_request("ws_a", "key_1", config)
    assert [g.name for g in got.input] == ["named", "inline-input-1"]
    assert [g.name for g in got.output] == ["json-out"]
    assert guardrails.for_request("ws_a", "key_1", config).input[1] is got.input[1]  # compiled once
    with pytest.raises(GuardrailRefError, match=r"input_guardrails\.0: no guardrail named 'ghost'"):
        guardrails.resolve_refs(["ghost"], [])
    with pytest.raises(GuardrailRefError, match="runs only on output"):
        guardrails.resolve_refs([{"checks": [{"type": "json_schema", "params": {"schema": {}}}]}], [])


def test_definitions_this_node_cannot_compile_fail_closed() -> None:
    broken = row("broken", checks=[{"type": "not-a-check"}])
    guardrails = build_guardrail_set([broken], [attach("org", "org_default", ["broken", "undefined"])])
    names = [(g.name, g.broken is not None, g.on_error) for g in guardrails.for_principal("w", "k").input]
    assert names == [("broken", True, "closed"), ("undefined", True, "closed")]
