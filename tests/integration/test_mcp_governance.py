"""Agent governance on tools/call, end to end with the official mcp client: action policies in CEL
(allow, deny naming the policy, hold for approval through the admin API) and per-tool rate limits,
against the mock server; the overnight refund agent is stopped by both."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from lockgate.mcp import jsonrpc
from tests.gateway_harness import GatewayThread
from tests.integration.mcp_kit import BOB, MockMcpThread, mcp_config
from tests.integration.test_mcp_gateway import ADMIN, MODES, admin, client

AGENT = "lg-mcp-agent-0123456789abcdef"  # the overnight refund agent, with an hourly refund limit

POLICIES = [
    {
        "name": "agent-refunds-hourly",
        "workspace": "default",
        "key": "agent",
        "tool": "issue_refund",
        "action": "limit",
        "limit": {"calls": 50, "per": "hour"},
    },
    {
        "name": "refund-cap",
        "workspace": "default",
        "tool": "issue_refund",
        "when": "args.amount > 100",
        "action": "deny",
    },
    {
        "name": "refund-review",
        "workspace": "default",
        "tool": "issue_refund",
        "when": "args.amount > 50",
        "action": "require_approval",
        "approval_timeout_s": 60,
    },
    {
        "name": "mail-inside",
        "workspace": "default",
        "server": "orders",
        "tool": "send_email",
        "when": '!args.to.endsWith("@example.com")',
        "action": "deny",
    },
    {
        "name": "lookup-review",
        "workspace": "default",
        "tool": "lookup_order",
        "when": 'args.order_id == "A-1002" && principal.key_name == "alice"',
        "action": "require_approval",
        "approval_timeout_s": 1,
    },
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with MockMcpThread() as mock:
        config = {**mcp_config(mock.url), "mcp_tool_policies": POLICIES}
        config["keys"].append({"name": "agent", "workspace": "default", "key": AGENT})
        with GatewayThread(
            tmp_path_factory.mktemp("mcp-gov"), config, admin_key=ADMIN, mcp_stdio_commands=sys.executable
        ) as gateway:
            yield gateway


async def _refused(gw: GatewayThread, mode: str, tool: str, args: dict[str, Any]) -> MCPError:
    async with client(gw, "/mcp/orders", mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool(tool, args)
    return caught.value


@pytest.mark.parametrize("mode", MODES)
async def test_refunds_above_the_cap_are_denied_naming_the_policy(gw: GatewayThread, mode: str) -> None:
    error = await _refused(gw, mode, "issue_refund", {"order_id": "A-1001", "amount": 150})
    assert error.code == jsonrpc.FORBIDDEN
    assert "refund-cap" in error.error.message
    async with client(gw, "/mcp/orders", mode) as mcp:
        small = await mcp.call_tool("issue_refund", {"order_id": "A-1001", "amount": 20})
    assert small.structured_content == {"order_id": "A-1001", "refunded": 20.0, "status": "refunded"}


@pytest.mark.parametrize("mode", MODES)
async def test_email_outside_the_domain_is_denied(gw: GatewayThread, mode: str) -> None:
    error = await _refused(gw, mode, "send_email", {"to": "x@evil.test", "subject": "hi"})
    assert error.code == jsonrpc.FORBIDDEN and "mail-inside" in error.error.message
    async with client(gw, "/mcp", mode) as mcp:
        sent = await mcp.call_tool("orders__send_email", {"to": "bo@example.com", "subject": "hi"})
        with pytest.raises(MCPError) as caught:  # the aggregate applies the same policy
            await mcp.call_tool("orders__send_email", {"to": "bo@example.com.evil.test", "subject": "x"})
    assert not sent.is_error
    assert "mail-inside" in caught.value.error.message


async def test_a_condition_that_cannot_be_evaluated_fails_closed(gw: GatewayThread) -> None:
    error = await _refused(gw, "auto", "send_email", {"subject": "no recipient"})
    assert error.code == jsonrpc.FORBIDDEN
    assert "mail-inside" in error.error.message and "could not be evaluated" in error.error.message


def async_admin(gw: GatewayThread) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gw.url + "/admin/v1", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
    )


async def _pending(api: httpx.AsyncClient, tool: str) -> dict[str, Any]:
    for _ in range(400):
        rows = (await api.get("/mcp/approvals", params={"status": "pending"})).json()["data"]
        mine = [r for r in rows if r["tool"] == tool]
        if mine:
            return mine[0]
        await asyncio.sleep(0.025)
    raise AssertionError(f"no pending approval for {tool}")


@pytest.mark.parametrize("verdict", ["approve", "reject"])
async def test_a_held_refund_waits_for_an_admin(gw: GatewayThread, verdict: str) -> None:
    async with client(gw, "/mcp/orders", "auto") as mcp:
        call = asyncio.ensure_future(mcp.call_tool("issue_refund", {"order_id": "A-1002", "amount": 80}))
        async with async_admin(gw) as api:
            held = await _pending(api, "issue_refund")
            assert held["policy"] == "refund-review" and held["arguments"]["amount"] == 80
            assert not call.done()  # held, not answered
            decided = await api.post(f"/mcp/approvals/{held['id']}/{verdict}", json={"reason": "checked"})
            assert decided.status_code == 200, decided.text
            again = await api.post(f"/mcp/approvals/{held['id']}/approve")
            assert again.status_code == 409  # decided once
        if verdict == "approve":
            result = await call
            assert result.structured_content["refunded"] == 80.0
        else:
            with pytest.raises(MCPError) as caught:
                await call
            assert caught.value.code == jsonrpc.APPROVAL_REJECTED
            assert "checked" in caught.value.error.message
    with admin(gw) as api:
        trail = api.get("/audit", params={"object_id": held["id"]}).json()["data"]
    assert {"mcp_approval.request", f"mcp_approval.{verdict}"} <= {entry["action"] for entry in trail}


async def test_an_undecided_call_times_out_and_is_not_made(gw: GatewayThread) -> None:
    error = await _refused(gw, "legacy", "lookup_order", {"order_id": "A-1002"})
    assert error.code == jsonrpc.APPROVAL_TIMEOUT and "lookup-review" in error.error.message
    with admin(gw) as api:
        rows = api.get("/mcp/approvals", params={"status": "expired"}).json()["data"]
    assert any(r["policy"] == "lookup-review" for r in rows)
    gw.run(gw.app.writer.flush())
    records = gw.run(gw.app.store.tool_call_records(limit=200, server="orders", tool="lookup_order"))
    timed_out = [r for r in records if r["error_code"] == jsonrpc.APPROVAL_TIMEOUT]
    assert timed_out and timed_out[0]["status"] == "denied"
    assert timed_out[0]["verdicts"][-1]["policy"] == "lookup-review"


async def test_policies_through_the_admin_api(gw: GatewayThread) -> None:
    with admin(gw) as api:
        bad = api.post(
            "/mcp/tool-policies",
            json={"name": "broken", "scope_type": "workspace", "scope_id": "ws_default", "when": "args.x >"},
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "when"
        key_id = next(k["id"] for k in api.get("/keys").json()["data"] if k["name"] == "bob")
        made = api.post(
            "/mcp/tool-policies",
            json={
                "name": "bob-no-lookups",
                "scope_type": "key",
                "scope_id": key_id,
                "tool": "lookup_*",
                "action": "deny",
            },
        )
        assert made.status_code == 201, made.text
    async with client(gw, "/mcp/orders", "auto", key=BOB) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
        assert "bob-no-lookups" in caught.value.error.message
    with admin(gw) as api:
        gone = api.delete(f"/mcp/tool-policies/{made.json()['id']}")
        assert gone.status_code == 200
    async with client(gw, "/mcp/orders", "auto", key=BOB) as mcp:
        ok = await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
    assert ok.structured_content["status"] == "shipped"


async def test_the_overnight_refund_agent_is_stopped_by_the_cap_and_the_hourly_limit(
    gw: GatewayThread,
) -> None:
    outcomes: list[str] = []
    async with client(gw, "/mcp", "legacy", key=AGENT) as mcp:
        for i in range(500):
            amount = 500 if i % 10 == 9 else 20  # every tenth refund is above the cap
            try:
                result = await mcp.call_tool("orders__issue_refund", {"order_id": "A-1001", "amount": amount})
            except MCPError as exc:
                outcomes.append(f"{exc.code}:{exc.error.message}")
            else:
                assert result.structured_content["refunded"] == amount
                outcomes.append("ok")
    capped = [o for o in outcomes if o.startswith(f"{jsonrpc.FORBIDDEN}:") and "refund-cap" in o]
    limited = [o for o in outcomes if o.startswith(f"{jsonrpc.RATE_LIMITED}:")]
    assert outcomes.count("ok") == 50  # the hourly limit; denied calls are not counted against it
    assert len(capped) == 50 and len(limited) == 400
    assert "agent-refunds-hourly" in limited[0] and "50 issue_refund calls per hour per key" in limited[0]
    gw.run(gw.app.writer.flush())
    with admin(gw) as api:
        agent_id = next(k["id"] for k in api.get("/keys").json()["data"] if k["name"] == "agent")
    records = gw.run(gw.app.store.tool_call_records(limit=5000, server="orders", tool="issue_refund"))
    mine = [r for r in records if r["key_id"] == agent_id]
    assert len(mine) == 500  # every attempt, with its verdict
    by_status = {s: sum(r["status"] == s for r in mine) for s in ("ok", "denied")}
    assert by_status == {"ok": 50, "denied": 450}
    limit_verdicts = [v for r in mine for v in r["verdicts"] or () if v["check"] == "tool_limit"]
    assert sum(v["verdict"] == "deny" for v in limit_verdicts) == 400
    assert sum(v["verdict"] == "counted" for v in limit_verdicts) == 50
    cap_verdicts = [v for r in mine for v in r["verdicts"] or () if v.get("policy") == "refund-cap"]
    assert len(cap_verdicts) == 50 and all(v["verdict"] == "deny" for v in cap_verdicts)


def _pins(api: httpx.Client, server: str) -> dict[str, dict[str, Any]]:
    return {p["tool"]: p for p in api.get(f"/mcp/servers/{server}/pins").json()["data"]}


async def _until_pin(gw: GatewayThread, api: httpx.Client, server: str, path: str, status: str) -> None:
    """List tools through the gateway (which refreshes its cache) until lookup_order's pin says ``status``."""
    for _ in range(200):
        async with client(gw, path, "auto") as mcp:
            await mcp.list_tools()
        pin = _pins(api, server).get("lookup_order")
        if pin is not None and pin["status"] == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the pin of lookup_order never became {status}")


async def test_a_changed_tool_definition_is_flagged_blocked_and_re_approved(gw: GatewayThread) -> None:
    with admin(gw) as api:
        orders = api.get("/mcp/servers", params={"name": "orders"}).json()["data"][0]
        created = api.post(
            "/mcp/servers",
            json={**{k: orders[k] for k in ("url", "transport")}, "name": "guarded", "pin_policy": "block"},
        )
        assert created.status_code == 201, created.text
        guarded = created.json()["id"]
        api.patch(f"/mcp/servers/{guarded}", json={"secret": "upstream-secret-7f3a"})
        try:
            await _until_pin(gw, api, guarded, "/mcp/guarded", "approved")  # pinned at first discovery
            await _until_pin(gw, api, orders["id"], "/mcp/orders", "approved")
            gw.app.mcp.pool.refresh_s = 0.0  # every list refreshes behind the cached one
            async with client(gw, "/mcp/guarded", "auto") as mcp:
                await mcp.call_tool("switch_description", {})
            await _until_pin(gw, api, guarded, "/mcp/guarded", "changed")
            await _until_pin(gw, api, orders["id"], "/mcp/orders", "changed")
            changed = _pins(api, guarded)["lookup_order"]
            assert "audit@evil.example" in changed["current_definition"]["description"]
            assert "audit@evil.example" not in changed["definition"]["description"]
            trail = api.get("/audit", params={"object_id": changed["id"]}).json()["data"]
            assert [e["action"] for e in trail][:2] == ["mcp_tool_pin.definition_changed", "mcp_tool_pin.pin"]

            async with client(gw, "/mcp/guarded", "auto") as mcp:  # block: hidden and refused
                assert "lookup_order" not in {t.name for t in (await mcp.list_tools()).tools}
                with pytest.raises(MCPError) as caught:
                    await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
            assert caught.value.code == jsonrpc.PIN_CHANGED and "admin approves" in caught.value.error.message
            async with client(gw, "/mcp/orders", "auto") as mcp:  # flag: served, with a verdict
                flagged = await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
            assert flagged.structured_content["status"] == "shipped"
            gw.run(gw.app.writer.flush())
            rows = gw.run(gw.app.store.tool_call_records(limit=5, server="orders", tool="lookup_order"))
            assert {"check": "tool_pin_approved", "verdict": "flag"}.items() <= rows[0]["verdicts"][
                -1
            ].items()

            approved = api.post(f"/mcp/servers/{guarded}/pins/lookup_order/approve")
            assert approved.status_code == 200, approved.text
            assert approved.json()["status"] == "approved"
            again = api.post(f"/mcp/servers/{guarded}/pins/lookup_order/approve")
            assert again.status_code == 409
            async with client(gw, "/mcp/guarded", "auto") as mcp:
                assert "lookup_order" in {t.name for t in (await mcp.list_tools()).tools}
                ok = await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
            assert ok.structured_content["status"] == "shipped"
        finally:
            gw.app.mcp.pool.refresh_s = 60.0
            async with client(gw, "/mcp/orders", "auto") as mcp:
                await mcp.call_tool("switch_description", {})
            api.delete(f"/mcp/servers/{guarded}")
