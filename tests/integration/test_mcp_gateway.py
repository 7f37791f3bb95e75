"""The MCP gateway end to end: the official mcp client, in both protocol eras, through /mcp and
/mcp/{server}, against the mock MCP server over Streamable HTTP, HTTP+SSE and stdio."""

from __future__ import annotations

import asyncio
import sys
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
from tests.integration.mcp_kit import ALICE, BOB, CAROL, UPSTREAM_TOKEN, MockMcpThread, mcp_config

ADMIN = "lga-mcp-admin-key"
MODES = ["legacy", "auto"]  # "auto" negotiates 2026-07-28 via server/discover


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockMcpThread]:
    with MockMcpThread() as mock:
        yield mock


@pytest.fixture(scope="module")
def gw(upstream: MockMcpThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with GatewayThread(
        tmp_path_factory.mktemp("mcp"),
        mcp_config(upstream.url),
        admin_key=ADMIN,
        mcp_stdio_commands=sys.executable,
    ) as gateway:
        yield gateway


def client(gw: GatewayThread, path: str, mode: str, key: str = ALICE) -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=20)
    return Client(streamable_http_client(gw.url + path, http_client=http), mode=mode)


def admin(gw: GatewayThread) -> httpx.Client:
    return httpx.Client(
        base_url=gw.url + "/admin/v1", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
    )


def server_id(gw: GatewayThread, name: str) -> str:
    with admin(gw) as api:
        rows = api.get("/mcp/servers", params={"name": name}).json()["data"]
    return next(r["id"] for r in rows if r["latest"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/mcp/orders", ""),
        ("/mcp/old", ""),
        ("/mcp/local", ""),
        ("/mcp/legacy", ""),
        ("/mcp", "orders__"),
        ("/mcp", "old__"),
        ("/mcp", "local__"),
    ],
)
async def test_list_and_call_through_the_gateway(
    gw: GatewayThread, mode: str, path: str, prefix: str
) -> None:
    async with client(gw, path, mode) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {f"{prefix}lookup_order", f"{prefix}issue_refund", f"{prefix}send_email"} <= names
        result = await mcp.call_tool(f"{prefix}issue_refund", {"order_id": "A-1001", "amount": 5})
        assert not result.is_error
        assert result.structured_content == {"order_id": "A-1001", "refunded": 5.0, "status": "refunded"}
        assert mcp.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")


async def test_aggregate_namespaces_every_server(gw: GatewayThread) -> None:
    async with client(gw, "/mcp", "auto") as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
    servers = {name.split("__")[0] for name in names}
    assert servers == {"orders", "old", "local", "legacy"}


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_shows_only_permitted_tools(gw: GatewayThread, mode: str) -> None:
    async with client(gw, "/mcp", mode, key=BOB) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
    assert "orders__lookup_order" in names
    assert not {n for n in names if n.endswith(("__issue_refund", "__send_email"))}


async def test_workspace_sees_only_servers_shared_with_it(gw: GatewayThread) -> None:
    async with client(gw, "/mcp", "auto", key=CAROL) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
    assert {n.split("__")[0] for n in names} == {"local"}
    with pytest.raises(Exception) as caught:  # /mcp/orders does not exist for team-b
        async with client(gw, "/mcp/orders", "auto", key=CAROL) as mcp:
            await mcp.list_tools()
    assert "No MCP server 'orders'" in repr(caught.value)


@pytest.mark.parametrize("mode", MODES)
async def test_forbidden_call_is_a_jsonrpc_error_naming_the_rule(gw: GatewayThread, mode: str) -> None:
    async with client(gw, "/mcp", mode, key=BOB) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("orders__issue_refund", {"order_id": "A-1001", "amount": 5})
        assert caught.value.code == jsonrpc.FORBIDDEN
        assert "bob-no-money" in caught.value.error.message
        ok = await mcp.call_tool("orders__lookup_order", {"order_id": "A-1002"})
        assert ok.structured_content["status"] == "processing"


@pytest.mark.parametrize("mode", MODES)
async def test_tool_failure_and_timeout_answer_cleanly(gw: GatewayThread, mode: str) -> None:
    async with client(gw, "/mcp/orders", mode) as mcp:
        failed = await mcp.call_tool("broken_tool", {})
        assert failed.is_error and "failed on purpose" in failed.content[0].text
        with pytest.raises(MCPError) as caught:  # the server's timeout_ms is 1500; the tool sleeps 30 s
            await mcp.call_tool("slow_task", {"seconds": 30})
        assert caught.value.code == jsonrpc.REQUEST_TIMEOUT
        assert "did not answer tools/call" in caught.value.error.message
        again = await mcp.call_tool("lookup_order", {"order_id": "A-1001"})  # the session still works
        assert not again.is_error


async def test_unreachable_upstream_is_a_clean_error(gw: GatewayThread) -> None:
    with admin(gw) as api:
        created = api.post(
            "/mcp/servers", json={"name": "gone", "url": "http://127.0.0.1:9/mcp", "timeout_ms": 2000}
        )
        assert created.status_code == 201, created.text
    for mode in MODES:
        async with client(gw, "/mcp/gone", "legacy" if mode == "legacy" else "2026-07-28") as mcp:
            with pytest.raises(MCPError) as caught:
                await mcp.call_tool("anything", {})
        assert caught.value.code == jsonrpc.UPSTREAM_ERROR
        assert "unreachable" in caught.value.error.message
    async with client(gw, "/mcp", "auto") as mcp:  # the aggregate leaves the broken server out
        names = {t.name for t in (await mcp.list_tools()).tools}
    assert "orders__lookup_order" in names and not any(n.startswith("gone__") for n in names)
    with admin(gw) as api:
        assert api.delete(f"/mcp/servers/{created.json()['id']}").status_code == 200


def _post(
    gw: GatewayThread, body: Any, path: str = "/mcp", key: str | None = ALICE, **headers: str
) -> httpx.Response:
    sent = {"content-type": "application/json", "accept": "application/json, text/event-stream", **headers}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return httpx.post(gw.url + path, content=content, headers=sent, timeout=10)


MODERN = {"mcp-protocol-version": "2026-07-28"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', {}, 400, jsonrpc.PARSE_ERROR),
        ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], {}, 400, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, {}, 400, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1}, {}, 400, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}, {}, 400, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}, {}, 400, jsonrpc.INVALID_PARAMS),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {}, 400, jsonrpc.INVALID_REQUEST),  # no session
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            {**MODERN, "mcp-method": "tools/call"},
            400,
            jsonrpc.HEADER_MISMATCH,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "orders__send_email"}},
            {**MODERN, "mcp-method": "tools/call", "mcp-name": "orders__lookup_order"},
            400,
            jsonrpc.HEADER_MISMATCH,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 7}},
            {**MODERN, "mcp-method": "tools/call", "mcp-name": "7"},
            400,
            jsonrpc.HEADER_MISMATCH,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {}}},
            {**MODERN, "mcp-method": "tools/call"},
            200,
            jsonrpc.INVALID_PARAMS,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "nope/nope"},
            {**MODERN, "mcp-method": "nope/nope"},
            200,
            -32601,
        ),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"mcp-protocol-version": "1999-01-01"}, 400, -32022),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"mcp-session-id": "lgs1.forged"}, 404, -32600),
    ],
)
def test_malformed_jsonrpc_gets_clean_errors(
    gw: GatewayThread, body: Any, headers: dict[str, str], status: int, code: int
) -> None:
    reply = _post(gw, body, **headers)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code


def test_no_key_is_401_with_a_jsonrpc_body(gw: GatewayThread) -> None:
    reply = _post(
        gw, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, key=None, **MODERN, **{"mcp-method": "ping"}
    )
    assert reply.status_code == 401
    assert reply.json()["id"] == 3 and "No API key" in reply.json()["error"]["message"]
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_a_session_belongs_to_its_key(gw: GatewayThread) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    reply = _post(gw, init)
    assert reply.json()["result"]["protocolVersion"] == "2025-06-18"
    session = reply.headers["mcp-session-id"]
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert _post(gw, ping, **{"mcp-session-id": session}).status_code == 200
    stolen = _post(gw, ping, key=BOB, **{"mcp-session-id": session})
    assert stolen.status_code == 404
    tampered = session[:-4] + ("AAAA" if not session.endswith("AAAA") else "BBBB")
    assert _post(gw, ping, **{"mcp-session-id": tampered}).status_code == 404


def test_upstream_credentials_are_injected_and_never_returned(
    gw: GatewayThread, upstream: MockMcpThread
) -> None:
    # The mock refuses anything without the upstream token; the caller only ever sent a Lockgate key.
    direct = httpx.post(upstream.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=5)
    assert direct.status_code == 401
    listed = _post(
        gw, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, **MODERN, **{"mcp-method": "tools/list"}
    )
    assert listed.status_code == 200 and UPSTREAM_TOKEN not in listed.text
    with admin(gw) as api:
        servers = api.get("/mcp/servers").text
        exported = api.get("/mcp/servers", params={"tools": "true"}).text
    assert UPSTREAM_TOKEN not in servers and "secret_ciphertext" not in servers
    assert UPSTREAM_TOKEN not in exported


async def test_every_call_is_recorded_with_redacted_arguments(gw: GatewayThread) -> None:
    async with client(gw, "/mcp", "auto", key=BOB) as mcp:
        with pytest.raises(MCPError):
            await mcp.call_tool("orders__send_email", {"to": "dana@example.com", "subject": "hi"})
    async with client(gw, "/mcp/orders", "legacy") as mcp:
        await mcp.call_tool("send_email", {"to": "erin@example.com", "subject": "receipt"})
    gw.run(gw.app.writer.flush())
    with admin(gw) as api:
        rows = api.get("/mcp/tool-calls", params={"tool": "send_email", "limit": 200}).json()["data"]
    denied = next(r for r in rows if r["status"] == "denied" and r["key_id"] != "master")
    assert denied["server"] == "orders" and denied["session"] == "modern"
    assert denied["arguments"] == {"to": "[EMAIL]", "subject": "hi"}
    assert "bob-no-money" in denied["error_message"]
    ok = next(r for r in rows if r["status"] == "ok")
    assert ok["arguments"]["to"] == "[EMAIL]" and ok["result_bytes"] > 0 and ok["latency_ms"] >= 0
    assert all("example.com" not in str(r["arguments"]) for r in rows)


async def test_kill_switch_cuts_in_flight_calls_and_refuses_new_ones(gw: GatewayThread) -> None:
    orders = server_id(gw, "orders")
    async with client(gw, "/mcp/local", "auto") as mcp:
        call = asyncio.ensure_future(mcp.call_tool("slow_task", {"seconds": 4.5}))
        for _ in range(400):  # wait until the gateway holds the call, without timing assumptions
            if len(gw.app.mcp.in_flight):
                break
            await asyncio.sleep(0.01)
        assert len(gw.app.mcp.in_flight) == 1
        with admin(gw) as api:
            local = server_id(gw, "local")
            killed = api.post(f"/mcp/servers/{local}/tools/slow_task/kill")
            assert killed.status_code == 200 and killed.json()["tool_status"] == {"slow_task": "killed"}
        with pytest.raises(MCPError) as caught:
            await call
        assert caught.value.code == jsonrpc.KILLED and "kill switch" in caught.value.error.message
        with pytest.raises(MCPError) as refused:
            await mcp.call_tool("slow_task", {"seconds": 0})
        assert refused.value.code == jsonrpc.KILLED
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert "slow_task" not in names and "lookup_order" in names
        with admin(gw) as api:
            assert api.post(f"/mcp/servers/{local}/tools/slow_task/enable").status_code == 200
        assert not (await mcp.call_tool("slow_task", {"seconds": 0})).is_error
    with admin(gw) as api:
        assert api.post(f"/mcp/servers/{orders}/disable", json={"reason": "incident 42"}).status_code == 200
        try:
            async with client(gw, "/mcp/orders", "auto") as mcp:
                with pytest.raises(MCPError) as caught:
                    await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
            assert caught.value.code == jsonrpc.DISABLED and "incident 42" in caught.value.error.message
        finally:
            assert api.post(f"/mcp/servers/{orders}/enable").status_code == 200
        audit = api.get("/audit", params={"limit": 200}).json()["data"]
    actions = [a["action"] for a in audit]
    assert {
        "mcp_server.tool_kill",
        "mcp_server.tool_enable",
        "mcp_server.disable",
        "mcp_server.enable",
    } <= set(actions)


def test_get_stream_needs_a_session_and_delete_ends_the_upstream_ones(gw: GatewayThread) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}
    session = _post(gw, init, path="/mcp/orders").headers["mcp-session-id"]
    headers = {"authorization": f"Bearer {ALICE}", "accept": "text/event-stream"}
    assert httpx.get(gw.url + "/mcp/orders", headers=headers, timeout=5).status_code == 400
    with httpx.stream(
        "GET", gw.url + "/mcp/orders", headers={**headers, "mcp-session-id": session}, timeout=5
    ) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
        assert next(stream.iter_lines()) == ": lockgate"
    deleted = httpx.delete(gw.url + "/mcp/orders", headers={**headers, "mcp-session-id": session}, timeout=5)
    assert deleted.status_code == 200
    # The upstream session is gone; the gateway falls back to its pooled one for this id.
    listed = _post(
        gw,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        path="/mcp/orders",
        **{"mcp-session-id": session},
    )
    assert listed.status_code == 200 and listed.json()["result"]["tools"]
    assert httpx.put(gw.url + "/mcp", headers=headers, timeout=5).status_code == 405


async def test_upstream_era_is_discovered_per_server(gw: GatewayThread) -> None:
    async with client(gw, "/mcp", "auto") as mcp:
        await mcp.list_tools()
    snapshot = gw.app.snapshots.current
    orders = gw.app.mcp.pool.get(snapshot.mcp.latest["orders"])
    assert getattr(orders, "modern", None) is True  # the SDK mock speaks 2026-07-28: no upstream session
    old = gw.app.mcp.pool.get(snapshot.mcp.latest["old"])
    assert getattr(old, "modern", None) is False


def test_a_legacy_session_carries_its_own_upstream_session(
    gw: GatewayThread, upstream: MockMcpThread
) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}
    token = _post(gw, init, path="/mcp/old").headers["mcp-session-id"]
    state = gw.app.mcp.codec.decode(token)
    upstream_session = state.upstream["old@1"]
    assert state.endpoint == "old@1" and state.key_id != "anonymous"
    # That upstream session is live at the server, and the gateway uses it for this caller.
    direct = httpx.post(
        upstream.url + "/h/mcp",
        json={"jsonrpc": "2.0", "id": 9, "method": "ping"},
        headers={
            "authorization": f"Bearer {UPSTREAM_TOKEN}",
            "mcp-session-id": upstream_session,
            "accept": "application/json, text/event-stream",
        },
        timeout=5,
    )
    assert direct.status_code == 200
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "A-1001"}},
    }
    assert _post(gw, call, path="/mcp/old", **{"mcp-session-id": token}).json()["result"]["structuredContent"]
    # DELETE ends it upstream; the same id still works, on the worker's pooled upstream session.
    headers = {"authorization": f"Bearer {ALICE}", "mcp-session-id": token}
    assert httpx.delete(gw.url + "/mcp/old", headers=headers, timeout=5).status_code == 200
    assert _post(gw, call, path="/mcp/old", **{"mcp-session-id": token}).json()["result"]["structuredContent"]


def test_records_join_the_callers_trace(gw: GatewayThread) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "orders__lookup_order", "arguments": {"order_id": "A-1001"}},
    }
    headers = {
        **MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "orders__lookup_order",
        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
    }
    assert _post(gw, call, **headers).json()["result"]
    gw.run(gw.app.writer.flush())
    rows = gw.run(gw.app.store.tool_call_records(limit=500))
    traced = [r for r in rows if r["trace_id"] == trace_id]
    assert len(traced) == 1 and len(traced[0]["span_id"]) == 16 and traced[0]["span_id"] != "00f067aa0ba902b7"
