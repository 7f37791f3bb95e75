"""Tool prices (``tool_costs`` on an MCP server) charged to the caller's USD budgets: reserved before
the call on the same counters as LLM spend, settled after, refused with a JSON-RPC error when the
price does not fit; the official mcp client against the mock MCP server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest
from mcp.shared.exceptions import MCPError

from lockgate.mcp import jsonrpc
from tests.gateway_harness import GatewayThread
from tests.integration.mcp_kit import MockMcpThread, mcp_config
from tests.integration.test_mcp_gateway import ADMIN, admin, client

AGENT = "lg-mcp-costly-agent-0123456789"
SWARM = "lg-mcp-costly-swarm-0123456789"
REFUND = {"order_id": "A-1001", "amount": 20}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with MockMcpThread() as mock:
        config = mcp_config(mock.url, tool_costs={"issue_refund": 0.25, "lookup_*": 0.01})
        config["keys"] += [
            {"name": "agent", "workspace": "default", "key": AGENT},
            {"name": "swarm", "workspace": "default", "key": SWARM},
        ]
        config["budgets"] = [
            {"name": "agent-day", "scope": "key:default/agent", "amount_usd": 1.0, "period": "day"},
            {"name": "swarm-day", "scope": "key:default/swarm", "amount_usd": 1.0, "period": "day"},
        ]
        with GatewayThread(
            tmp_path_factory.mktemp("mcp-costs"), config, admin_key=ADMIN, mcp_stdio_commands=sys.executable
        ) as gateway:
            yield gateway


def _key_id(gw: GatewayThread, name: str) -> str:
    with admin(gw) as api:
        return next(k["id"] for k in api.get("/keys").json()["data"] if k["name"] == name)


async def test_priced_calls_spend_the_budget_then_are_refused(gw: GatewayThread) -> None:
    outcomes = []
    async with client(gw, "/mcp/orders", "legacy", key=AGENT) as mcp:
        for _ in range(6):
            try:
                await mcp.call_tool("issue_refund", REFUND)
            except MCPError as exc:
                outcomes.append(exc)
            else:
                outcomes.append("ok")
        # A tool without a price is not held back by a spent budget.
        assert not (await mcp.call_tool("send_email", {"to": "a@example.com", "subject": "hi"})).is_error
    assert outcomes[:4] == ["ok"] * 4
    for refused in outcomes[4:]:
        assert isinstance(refused, MCPError) and refused.error.code == jsonrpc.BUDGET_EXCEEDED
        assert "agent-day" in refused.error.message
    gw.run(gw.app.writer.flush())
    agent = _key_id(gw, "agent")
    records = gw.run(gw.app.store.tool_call_records(limit=100, server="orders"))
    mine = sorted((r for r in records if r["key_id"] == agent), key=lambda r: r["created_at"])
    assert [(r["tool"], r["status"], r["cost_usd"]) for r in mine] == [
        *[("issue_refund", "ok", 0.25)] * 4,
        *[("issue_refund", "denied", None)] * 2,
        ("send_email", "ok", None),
    ]
    gw.run(gw.app.spend.flush())
    with admin(gw) as api:
        usage = api.get("/usage", params={"scope": f"key:{agent}"}).json()
    assert usage["spend_usd"]["day"] == pytest.approx(1.0)
    budget = next(b for b in usage["budgets"] if b["name"] == "agent-day")
    assert budget["remaining_usd"] == pytest.approx(0.0, abs=1e-9)


async def test_parallel_calls_never_pass_the_budget(gw: GatewayThread) -> None:
    async def one() -> bool:
        async with client(gw, "/mcp/orders", "auto", key=SWARM) as mcp:
            try:
                await mcp.call_tool("issue_refund", REFUND)
            except MCPError as exc:
                assert exc.error.code == jsonrpc.BUDGET_EXCEEDED
                return False
            return True

    results = await asyncio.gather(*(one() for _ in range(12)))
    assert sum(results) == 4  # 1.00 USD at 0.25 a call, however the calls interleave


def test_prices_through_the_admin_api(gw: GatewayThread) -> None:
    with admin(gw) as api:
        orders = api.get("/mcp/servers", params={"name": "orders"}).json()["data"][0]
        assert orders["tool_costs"] == {"issue_refund": 0.25, "lookup_*": 0.01}
        bad = api.patch(f"/mcp/servers/{orders['id']}", json={"tool_costs": {"issue_refund": -1}})
        assert bad.status_code == 400, bad.text
        assert "between 0 and 1,000,000" in bad.json()["error"]["message"]
        exported = api.get("/config/export").json()["config"]
    server = next(s for s in exported["mcp_servers"] if s["name"] == "orders")
    assert server["tool_costs"] == {"issue_refund": 0.25, "lookup_*": 0.01}
