"""Guardrails on MCP tool calls, with the official mcp client: arguments checked before they go
upstream (the mock's ``echo`` shows what arrived), results before they come back; deny, redact and
flag as for LLM traffic; every verdict on the tool-call record; attached through lockgate.yaml and
the admin API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from lockgate.mcp import jsonrpc
from tests.gateway_harness import GatewayThread
from tests.integration.mcp_kit import ALICE, UPSTREAM_TOKEN, MockMcpThread, mcp_config

ADMIN = "lga-mcp-guard-admin"
MODES = ["legacy", "auto"]
SECRET = "sk-proj-Ab3dE5fG7hI9jK1lM3nO5pQ7rS9tU1"
GUARDRAILS: list[dict[str, Any]] = [
    {
        "name": "no-secrets",
        "action": "deny",
        "checks": [{"type": "pii", "params": {"entities": ["api_key", "aws_key"]}}],
    },
    {"name": "pii-label", "action": "redact", "checks": [{"type": "pii"}]},
    {"name": "pii-flag", "action": "flag", "checks": [{"type": "pii"}]},
    {
        "name": "no-refunds-word",
        "action": "deny",
        "checks": [{"type": "denied_keywords", "params": {"keywords": ["refunded"]}}],
    },
]


def guarded(name: str, mock_url: str, **guardrails: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"{mock_url}/mcp",
        "secret": UPSTREAM_TOKEN,
        "workspaces": ["default"],
        "guardrails": guardrails,
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockMcpThread]:
    with MockMcpThread() as mock:
        yield mock


@pytest.fixture(scope="module")
def gw(upstream: MockMcpThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    config = mcp_config(upstream.url)
    config["guardrails"] = GUARDRAILS
    config["mcp_servers"] += [
        guarded("guarded-in", upstream.url, input=["no-secrets", "pii-label"]),
        guarded("guarded-out", upstream.url, output=["pii-label", "no-refunds-word"]),
        guarded("flagged", upstream.url, input=["pii-flag"], output=["pii-flag"]),
    ]
    with GatewayThread(tmp_path_factory.mktemp("mcp-guard"), config, admin_key=ADMIN) as gateway:
        yield gateway


def client(gw: GatewayThread, path: str, mode: str) -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {ALICE}"}, timeout=20)
    return Client(streamable_http_client(gw.url + path, http_client=http), mode=mode)


def admin(gw: GatewayThread) -> httpx.Client:
    return httpx.Client(
        base_url=gw.url + "/admin/v1", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
    )


def records(gw: GatewayThread, server: str, tool: str) -> list[dict[str, Any]]:
    gw.run(gw.app.writer.flush())
    with admin(gw) as api:
        rows = api.get("/mcp/tool-calls", params={"tool": tool, "limit": 200}).json()["data"]
    return [r for r in rows if r["server"] == server]


def guardrail_verdicts(row: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(v["stage"], v["name"]): v["verdict"] for v in row["verdicts"] or () if v["check"] == "guardrail"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("path", "prefix"), [("/mcp/guarded-in", ""), ("/mcp", "guarded-in__")])
async def test_pii_in_arguments_is_redacted_before_it_reaches_the_server(
    gw: GatewayThread, mode: str, path: str, prefix: str
) -> None:
    async with client(gw, path, mode) as mcp:
        result = await mcp.call_tool(f"{prefix}echo", {"text": f"write to ana@example.com ({mode})"})
    assert result.content[0].text == f"write to [EMAIL] ({mode})"  # what the mock server was given
    row = next(r for r in records(gw, "guarded-in", "echo") if mode in r["arguments"]["text"])
    assert row["status"] == "ok"
    assert guardrail_verdicts(row) == {("input", "no-secrets"): "passed", ("input", "pii-label"): "redacted"}


@pytest.mark.parametrize("mode", MODES)
async def test_denied_arguments_never_leave_and_the_error_names_the_guardrail(
    gw: GatewayThread, mode: str
) -> None:
    async with client(gw, "/mcp/guarded-in", mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("echo", {"text": f"use {SECRET} please", "mode": mode})
        assert caught.value.code == jsonrpc.GUARDRAIL_DENIED
        assert "'no-secrets'" in caught.value.error.message and "arguments" in caught.value.error.message
        assert SECRET not in caught.value.error.message
        assert caught.value.error.data == {"guardrail": "no-secrets", "check": "pii", "stage": "input"}
        still = await mcp.call_tool("echo", {"text": "fine"})  # the session goes on
        assert still.content[0].text == "fine"
    row = next(r for r in records(gw, "guarded-in", "echo") if r["status"] == "denied")
    assert SECRET not in str(row)
    assert guardrail_verdicts(row) == {("input", "no-secrets"): "denied"}


@pytest.mark.parametrize("mode", MODES)
async def test_results_are_redacted_or_withheld_before_they_reach_the_agent(
    gw: GatewayThread, mode: str
) -> None:
    async with client(gw, "/mcp/guarded-out", mode) as mcp:
        order = await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
        assert order.structured_content["email"] == "[EMAIL]"
        assert "ana@example.com" not in str(order.content)
        assert order.structured_content["status"] == "shipped"
        with pytest.raises(MCPError) as caught:  # the answer says "refunded": the result is withheld
            await mcp.call_tool("issue_refund", {"order_id": "A-1001", "amount": 1})
        assert caught.value.code == jsonrpc.GUARDRAIL_DENIED
        assert "'no-refunds-word'" in caught.value.error.message and "result" in caught.value.error.message
    ok = records(gw, "guarded-out", "lookup_order")[0]
    assert guardrail_verdicts(ok) == {
        ("output", "pii-label"): "redacted",
        ("output", "no-refunds-word"): "passed",
    }
    denied = records(gw, "guarded-out", "issue_refund")[0]
    assert (
        denied["status"] == "denied" and guardrail_verdicts(denied)[("output", "no-refunds-word")] == "denied"
    )


async def test_flag_leaves_the_call_alone_and_the_verdict_on_the_record(gw: GatewayThread) -> None:
    async with client(gw, "/mcp/flagged", "auto") as mcp:
        result = await mcp.call_tool("echo", {"text": "bo@example.com"})
    assert result.content[0].text == "bo@example.com"
    row = records(gw, "flagged", "echo")[0]
    assert guardrail_verdicts(row) == {("input", "pii-flag"): "flagged", ("output", "pii-flag"): "flagged"}


async def test_guardrails_attach_through_the_admin_api(gw: GatewayThread, upstream: MockMcpThread) -> None:
    with admin(gw) as api:
        body = {"name": "late", "url": f"{upstream.url}/mcp", "secret": UPSTREAM_TOKEN}
        bad = api.post("/mcp/servers", json={**body, "guardrails": {"input": ["nope"]}})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "guardrails.input.0"
        created = api.post("/mcp/servers", json=body)
        assert created.status_code == 201, created.text
        server = created.json()
        async with client(gw, "/mcp/late", "auto") as mcp:
            assert (await mcp.call_tool("echo", {"text": "cy@example.com"})).content[
                0
            ].text == "cy@example.com"
        patched = api.patch(
            f"/mcp/servers/{server['id']}",
            json={"guardrails": {"input": ["pii-label"]}},
            headers={"if-match": str(server["version"])},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["guardrails"] == {"input": ["pii-label"], "output": []}
        in_use = api.get("/guardrails", params={"name": "pii-label"}).json()["data"][0]
        refused = api.delete(f"/guardrails/{in_use['id']}", headers={"if-match": str(in_use["version"])})
        assert refused.status_code == 409 and "MCP server" in refused.json()["error"]["message"]
    async with client(gw, "/mcp/late", "auto") as mcp:
        assert (await mcp.call_tool("echo", {"text": "cy@example.com"})).content[0].text == "[EMAIL]"
