"""Tool guardrails without a network: what the checks see, rewrites in place, fail-closed names,
and placeholders that go upstream in the arguments and come back restored in the result."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.guardrails import GuardrailSet, GuardrailSpec, compile_guardrail
from lockgate.mcp import tool_guard
from lockgate.mcp.jsonrpc import GUARDRAIL_ERROR, McpError
from lockgate.mcp.registry import build_registry
from lockgate.mcp.tool_guard import ToolGuard
from tests.unit.mcp.test_session_and_policy import _server_row


def guardrails(**specs: dict[str, Any]) -> GuardrailSet:
    return GuardrailSet(
        by_name={name: compile_guardrail(name, GuardrailSpec.model_validate(s)) for name, s in specs.items()}
    )


def guard(
    inputs: list[str], outputs: list[str], available: GuardrailSet
) -> tuple[ToolGuard, list[dict[str, Any]]]:
    row = _server_row(guardrails={"input": inputs, "output": outputs})
    server = build_registry([row], [], None).latest["orders"]  # type: ignore[arg-type]
    attached = tool_guard.attached(server, available)
    assert attached is not None
    verdicts: list[dict[str, Any]] = []
    return ToolGuard(attached, server, "send", {}, verdicts), verdicts


PII_LABEL = {"action": "redact", "checks": [{"type": "pii"}]}
PII_PLACEHOLDER = {"action": "redact", "checks": [{"type": "pii", "params": {"redaction": "placeholder"}}]}


async def test_every_string_in_nested_arguments_is_checked_and_rewritten_in_place() -> None:
    tool, verdicts = guard(["pii"], [], guardrails(pii=PII_LABEL))
    args: dict[str, Any] = {"to": ["ana@example.com", {"cc": "bo@example.com"}], "n": 3, "ok": "fine"}
    await tool.arguments(args)
    assert args == {"to": ["[EMAIL]", {"cc": "[EMAIL]"}], "n": 3, "ok": "fine"}
    assert [(v["check"], v["stage"], v["name"], v["verdict"], v["redactions"]) for v in verdicts] == [
        ("guardrail", "input", "pii", "redacted", 2)
    ]


async def test_a_guardrail_the_snapshot_no_longer_has_refuses_the_call() -> None:
    tool, verdicts = guard(["gone"], [], guardrails())
    with pytest.raises(McpError) as caught:
        await tool.arguments({"text": "anything"})
    assert caught.value.code == GUARDRAIL_ERROR
    assert verdicts[0]["verdict"] == "error"


async def test_placeholders_sent_upstream_come_back_restored() -> None:
    tool, _ = guard(["vault"], [], guardrails(vault=PII_PLACEHOLDER))
    args: dict[str, Any] = {"to": "ana@example.com"}
    await tool.arguments(args)
    placeholder = args["to"]
    assert placeholder != "ana@example.com" and "@" not in placeholder
    result = {
        "content": [{"type": "text", "text": f"sent to {placeholder}"}],
        "structuredContent": {"to": placeholder},
    }
    await tool.result(result)
    assert result["content"][0]["text"] == "sent to ana@example.com"
    assert result["structuredContent"] == {"to": "ana@example.com"}


def test_a_server_without_guardrails_costs_nothing() -> None:
    server = build_registry([_server_row()], [], None).latest["orders"]  # type: ignore[arg-type]
    assert tool_guard.attached(server, guardrails(pii=PII_LABEL)) is None
