"""MCP audit and telemetry end to end: tool calls made with the official mcp client through a real
gateway (mock MCP server upstream) show up in the logs search next to request records, in
/mcp/tool-calls, in analytics from rollups, in Prometheus metrics and as OTel spans."""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread
from tests.integration.mcp_kit import ALICE, BOB, CAROL, MockMcpThread, mcp_config
from tests.integration.otlp_kit import running_receiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
META_TRACE = "0af7651916cd43dd8448eb211c80319c"
META_SPAN = "b7ad6b7169203331"


def client(gw: GatewayThread, key: str, **headers: str) -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}", **headers}, timeout=20)
    return Client(streamable_http_client(gw.url + "/mcp", http_client=http), mode="auto")


async def _calls(gw: GatewayThread) -> None:
    async with client(gw, ALICE) as mcp:
        await mcp.list_tools()  # the tool list the metrics' labels are checked against
        for order in ("A-1001", "A-1002", "A-1001"):
            assert not (await mcp.call_tool("orders__lookup_order", {"order_id": order})).is_error
        assert (await mcp.call_tool("orders__broken_tool", {})).is_error
        with pytest.raises(MCPError):
            await mcp.call_tool("orders__slow_task", {"seconds": 3})  # the server's timeout: 1.5 s
        with pytest.raises(MCPError):
            await mcp.call_tool("nowhere__lookup_order", {"order_id": "A-1"})  # no such server
        await mcp.call_tool("orders__made_up_tool_7f3", {})  # a name no server lists
    async with client(gw, ALICE, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01") as mcp:
        await mcp.call_tool("orders__issue_refund", {"order_id": "A-1001", "amount": 5})
    async with client(gw, BOB) as mcp:
        with pytest.raises(MCPError):
            await mcp.call_tool("orders__send_email", {"to": "a@example.com", "subject": "hi"})
    async with client(gw, CAROL) as mcp:
        await mcp.list_tools()
        assert not (await mcp.call_tool("local__lookup_order", {"order_id": "A-1002"})).is_error


def _meta_traced_call(gw: GatewayThread) -> None:
    """A raw 2026-07-28 call whose trace context rides in params._meta (and a header that loses)."""
    body = {
        "jsonrpc": "2.0",
        "id": "req-42",
        "method": "tools/call",
        "params": {
            "name": "orders__lookup_order",
            "arguments": {"order_id": "A-1002"},
            "_meta": {"traceparent": f"00-{META_TRACE}-{META_SPAN}-01"},
        },
    }
    headers = {
        "authorization": f"Bearer {ALICE}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "orders__lookup_order",
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
    }
    reply = httpx.post(gw.url + "/mcp", json=body, headers=headers, timeout=10)
    assert reply.status_code == 200 and reply.json()["result"]["structuredContent"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A traced gateway (spans to an in-process OTLP receiver) with the admin API, a viewer of
    team-b, one LLM request record and a mix of tool calls: ok, tool error, timeout, denied,
    unknown server and tool, traced by header and by params._meta."""
    with (
        MockMcpThread() as upstream,
        running_receiver() as receiver,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        gw = admin_gateway(
            tmp_path_factory.mktemp("mcp-obs"), mcp_config(upstream.url), mcp_stdio_commands=sys.executable
        )
        with gw:
            with admin_client(gw) as admin:
                workspaces = ok(admin.get("/workspaces", params={"limit": 200}))["data"]
                team_b = next(w["id"] for w in workspaces if w["name"] == "team-b")
                keys = {k["name"]: k["id"] for k in ok(admin.get("/keys", params={"limit": 200}))["data"]}
                user = ok(
                    admin.post(
                        "/users",
                        json={"name": "b-viewer", "roles": [{"role": "viewer", "workspace_id": team_b}]},
                    ),
                    201,
                )
                viewer = ok(admin.post(f"/users/{user['id']}/keys", json={"name": "cli"}), 201)["key"]
            llm = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {ALICE}"},
                timeout=10,
            )
            assert llm.status_code == 404
            gw.run(_calls(gw), timeout=60)
            _meta_traced_call(gw)
            gw.run(gw.app.writer.flush())
            yield {
                "gw": gw,
                "receiver": receiver,
                "team_b": team_b,
                "keys": keys,
                "viewer": viewer,
                "llm_id": llm.headers["x-lockgate-request-id"],
            }


def logs(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    return ok(admin.get("/logs", params={"limit": 200, **params}))["data"]


def test_tool_calls_in_the_logs_search_with_every_filter(scene: dict[str, Any]) -> None:
    keys = scene["keys"]
    with admin_client(scene["gw"]) as admin:
        requests = logs(admin)
        calls = logs(admin, kind="tool_call")
        both = logs(admin, kind="all")
        assert {r["object"] for r in requests} == {"request_log"} and scene["llm_id"] in {
            r["id"] for r in requests
        }
        assert {r["object"] for r in calls} == {"tool_call"} and len(calls) == 11
        assert [r["id"] for r in both] == [
            r["id"] for r in sorted(requests + calls, key=lambda r: (r["created_at"], r["id"]), reverse=True)
        ]
        lookups = logs(admin, kind="all", server="orders", tool="lookup_order")
        assert len(lookups) == 4 and all(r["object"] == "tool_call" for r in lookups)
        tool_errors = logs(admin, kind="tool_call", status="tool_error")  # isError results
        assert {r["tool"] for r in tool_errors} == {"broken_tool", "made_up_tool_7f3"}
        assert all(r["error_code"] is None and r["server"] == "orders" for r in tool_errors)
        [timeout] = logs(admin, kind="tool_call", status="timeout")
        assert timeout["tool"] == "slow_task" and timeout["latency_ms"] >= 1000
        [denied] = logs(admin, kind="tool_call", status="denied")
        assert denied["key_id"] == keys["bob"] and denied["tool"] == "send_email"
        assert logs(admin, kind="tool_call", key_id=keys["bob"]) == [denied]
        failures = logs(admin, kind="all", status="error")
        failed_calls = [r for r in failures if r["object"] == "tool_call"]
        assert {r["status"] for r in failed_calls} == {"tool_error", "timeout", "denied", "error"}
        assert scene["llm_id"] in {r["id"] for r in failures if r["object"] == "request_log"}
        [carol] = logs(admin, kind="tool_call", workspace_id=scene["team_b"])
        assert carol["server"] == "local" and carol["status"] == "ok"
        assert {r["id"] for r in logs(admin, kind="all", q="did not answer")} == {timeout["id"]}
        # Filters of one kind only narrow the other kind to nothing.
        assert logs(admin, kind="all", model="no-such-model") == [
            r for r in requests if r["id"] == scene["llm_id"]
        ]
        assert logs(admin, kind="tool_call", metadata="env:prod") == []
        assert logs(admin, kind="request", server="orders") == []
        # Time range: since the slow call started, only what came after it.
        later = {r["id"] for r in logs(admin, kind="tool_call", since=timeout["created_at"] - 0.001)}
        assert (
            timeout["id"] in later
            and not {r["id"] for r in tool_errors if r["tool"] == "broken_tool"} & later
        )
        assert logs(admin, kind="tool_call", until=calls[-1]["created_at"] - 0.001) == []


def test_one_cursor_pages_through_both_kinds(scene: dict[str, Any]) -> None:
    with admin_client(scene["gw"]) as admin:
        everything = logs(admin, kind="all")
        seen: list[str] = []
        params: dict[str, Any] = {"kind": "all", "limit": 3}
        while True:
            page = ok(admin.get("/logs", params=params))
            seen.extend(r["id"] for r in page["data"])
            if not page["has_more"]:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == [r["id"] for r in everything]


def test_mcp_tool_calls_endpoint_shares_the_search(scene: dict[str, Any]) -> None:
    with admin_client(scene["gw"]) as admin:
        filters = {"server": "orders", "status": "ok"}
        direct = ok(admin.get("/mcp/tool-calls", params={"limit": 200, **filters}))["data"]
        assert direct == logs(admin, kind="tool_call", **filters) and len(direct) == 5
        seen, params = [], {"limit": 2, **filters}
        while True:
            page = ok(admin.get("/mcp/tool-calls", params=params))
            seen.extend(page["data"])
            if not page["has_more"]:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == direct
        one = ok(admin.get(f"/logs/{direct[0]['id']}"))
        assert one == direct[0] and one["object"] == "tool_call"
        traced = ok(admin.get("/mcp/tool-calls", params={"trace_id": CLIENT_TRACE}))["data"]
        assert [r["tool"] for r in traced] == ["issue_refund"]
        # Bad input: the error envelope, never a 500.
        for params in ({"status": "sometimes"}, {"cursor": "not-a-cursor"}, {"since": "yesterday-ish"}):
            reply = admin.get("/mcp/tool-calls", params=params)
            assert reply.status_code == 400, reply.text
            assert set(reply.json()["error"]) == {"message", "type", "code", "param"}
        reply = admin.get("/logs", params={"kind": "everything"})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "kind"


def test_a_workspace_viewer_sees_only_their_workspaces_calls(scene: dict[str, Any]) -> None:
    with admin_client(scene["gw"]) as admin:
        alices = logs(admin, kind="tool_call", key_id=scene["keys"]["alice"])
    with admin_client(scene["gw"], scene["viewer"]) as viewer:
        mine = logs(viewer, kind="all")
        assert [(r["object"], r["server"]) for r in mine] == [("tool_call", "local")]
        assert ok(viewer.get("/mcp/tool-calls"))["data"] == mine
        assert viewer.get(f"/logs/{alices[0]['id']}").status_code == 404
        assert viewer.get("/mcp/tool-calls", params={"workspace_id": "ws_other"}).status_code == 403
        analytics = ok(viewer.get("/analytics", params={"source": "mcp", "group_by": "workspace"}))
        assert [(t["group"], t["calls"]) for t in analytics["totals"]] == [(scene["team_b"], 1)]


def test_exports_include_tool_calls_when_asked(scene: dict[str, Any]) -> None:
    with admin_client(scene["gw"]) as admin:
        jsonl = admin.get("/logs/export", params={"kind": "all"})
        rows = [orjson.loads(line) for line in jsonl.text.splitlines()]
        assert [r["id"] for r in rows] == [r["id"] for r in logs(admin, kind="all")]
        assert {r["object"] for r in rows} == {"request_log", "tool_call"}
        table = list(
            csv.DictReader(
                io.StringIO(admin.get("/logs/export", params={"format": "csv", "kind": "tool_call"}).text)
            )
        )
        denied = next(r for r in table if r["status"] == "denied")
        assert denied["server"] == "orders" and orjson.loads(denied["arguments"]) == {
            "to": "[EMAIL]",
            "subject": "hi",
        }
        mixed = list(
            csv.DictReader(
                io.StringIO(admin.get("/logs/export", params={"format": "csv", "kind": "all"}).text)
            )
        )
        assert {r["object"] for r in mixed} == {"request_log", "tool_call"}
        assert next(r for r in mixed if r["id"] == scene["llm_id"])["requested_model"] == "no-such-model"
        assert request_only_csv(admin)[0] == "id"  # request exports keep their columns


def request_only_csv(admin: httpx.Client) -> list[str]:
    return next(csv.reader(io.StringIO(admin.get("/logs/export", params={"format": "csv"}).text)))


def test_analytics_per_server_tool_workspace_and_key(scene: dict[str, Any]) -> None:
    keys = scene["keys"]
    with admin_client(scene["gw"]) as admin:

        def totals(**params: Any) -> dict[str | None, dict[str, Any]]:
            body = ok(admin.get("/analytics", params={"source": "mcp", **params}))
            assert body["source"] == "mcp"
            return {t["group"]: t for t in body["totals"]}

        tools = totals(group_by="tool")
        lookup = tools["orders__lookup_order"]
        assert (lookup["calls"], lookup["errors"], lookup["error_rate"]) == (4, 0, 0.0)
        assert lookup["latency_ms"]["p50"] is not None
        assert lookup["latency_ms"]["p50"] <= lookup["latency_ms"]["p95"] <= lookup["latency_ms"]["p99"]
        assert (tools["orders__broken_tool"]["calls"], tools["orders__broken_tool"]["error_rate"]) == (1, 1.0)
        assert tools["orders__slow_task"]["latency_ms"]["p50"] >= 1000
        assert "tokens" not in lookup and "cost_usd" not in lookup
        assert set(totals(group_by="tool", server="local")) == {"local__lookup_order"}
        servers = totals(group_by="server", bucket="minute")
        assert servers["orders"]["calls"] == 9 and servers["local"]["calls"] == 1
        assert servers[None]["calls"] == 1  # the call that named no registered server
        assert tools[None]["calls"] == 1  # ... and its tool name is not kept
        by_key = totals(group_by="key")
        assert by_key[keys["bob"]]["errors"] == by_key[keys["bob"]]["calls"] == 1
        assert totals(group_by="none")[None]["calls"] == 11
        # LLM analytics are untouched by tool calls.
        llm = ok(admin.get("/analytics", params={"group_by": "none"}))["totals"]
        assert [t["requests"] for t in llm] == [1]
        for params, name in (
            ({"source": "mcp", "group_by": "model"}, "group_by"),
            ({"source": "mcp", "group_by": "tool", "bucket": "minute"}, "group_by"),
            ({"source": "mcp", "group_by": "server", "server": "orders"}, "server"),
            ({"server": "orders"}, "server"),
        ):
            reply = admin.get("/analytics", params=params)
            assert reply.status_code == 400 and reply.json()["error"]["param"] == name, reply.text


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].rsplit("} ", 1)
            out[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels)))] = float(value)
    return out


def test_prometheus_metrics_per_server_and_tool_with_bounded_labels(scene: dict[str, Any]) -> None:
    text = httpx.get(scene["gw"].url + "/metrics", timeout=10).text
    calls = _samples(text, "lockgate_mcp_tool_calls_total")

    def count(server: str, tool: str, status: str) -> float:
        return calls.get((("server", server), ("status", status), ("tool", tool)), 0.0)

    assert count("orders", "lookup_order", "ok") == 4
    assert count("orders", "broken_tool", "tool_error") == 1
    assert count("orders", "slow_task", "timeout") == 1
    assert count("orders", "send_email", "denied") == 1
    assert count("local", "lookup_order", "ok") == 1
    # Names nobody registered never become labels.
    assert count("unknown", "unknown", "error") == 1
    assert not any("made_up" in v or v == "nowhere" for labels in calls for _, v in labels)
    assert sum(v for labels, v in calls.items() if ("tool", "unknown") in labels) == 2
    durations = _samples(text, "lockgate_mcp_tool_call_duration_seconds_count")
    assert durations[(("server", "orders"), ("tool", "lookup_order"))] == 4


def test_one_span_per_call_after_the_mcp_semantic_conventions(scene: dict[str, Any]) -> None:
    gw, receiver = scene["gw"], scene["receiver"]
    assert gw.app.telemetry.tracing is not None
    gw.app.telemetry.tracing.provider.force_flush()
    spans = {
        s["attributes"]["lockgate.tool_call_id"]: s
        for s in receiver.spans
        if "mcp.method.name" in s["attributes"]
    }
    with admin_client(gw) as admin:
        calls = logs(admin, kind="tool_call")
    assert len(spans) == len(calls)
    for record in calls:  # the record's trace ids are its span's
        span = spans[record["id"]]
        assert (span["trace_id"], span["span_id"]) == (record["trace_id"], record["span_id"])

    [refund] = [r for r in calls if r["tool"] == "issue_refund"]
    span = spans[refund["id"]]
    assert span["name"] == "tools/call issue_refund" and span["parent"] == CLIENT_SPAN
    assert span["trace_id"] == CLIENT_TRACE
    a = span["attributes"]
    assert a["mcp.method.name"] == "tools/call" and a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "issue_refund" and a["lockgate.mcp.server"] == "orders"
    assert a["mcp.protocol.version"] == "2026-07-28" and a["jsonrpc.request.id"]
    assert not span["error"] and "error.type" not in a

    [meta] = [r for r in calls if r["trace_id"] == META_TRACE]
    span = spans[meta["id"]]  # params._meta wins over the HTTP header
    assert (span["trace_id"], span["parent"]) == (META_TRACE, META_SPAN)
    assert span["attributes"]["jsonrpc.request.id"] == "req-42"

    [broken] = [r for r in calls if r["tool"] == "broken_tool"]
    assert spans[broken["id"]]["error"] and spans[broken["id"]]["attributes"]["error.type"] == "tool_error"
    [denied] = [r for r in calls if r["status"] == "denied"]
    a = spans[denied["id"]]["attributes"]
    assert spans[denied["id"]]["error"] and a["error.type"] == str(denied["error_code"])
    assert a["rpc.response.status_code"] == str(denied["error_code"])
    [lost] = [r for r in calls if r["server"] is None]
    assert spans[lost["id"]]["name"] == "tools/call"  # an unresolved name stays out of the span name
    untraced = [r for r in calls if r["trace_id"] not in (CLIENT_TRACE, META_TRACE)]
    assert all(spans[r["id"]]["parent"] == "" for r in untraced)


async def test_handshake_era_spans_carry_a_session_digest(scene: dict[str, Any]) -> None:
    gw, receiver = scene["gw"], scene["receiver"]
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {ALICE}"}, timeout=20)
    async with Client(streamable_http_client(gw.url + "/mcp/orders", http_client=http), mode="legacy") as mcp:
        await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
    gw.run(gw.app.writer.flush())
    with admin_client(gw) as admin:
        [record] = [r for r in logs(admin, kind="tool_call") if r["session"] == "legacy"]
    assert record["session"] == "legacy"
    gw.app.telemetry.tracing.provider.force_flush()
    [span] = [s for s in receiver.spans if s["attributes"].get("lockgate.tool_call_id") == record["id"]]
    session = span["attributes"]["mcp.session.id"]
    assert re.fullmatch(r"[0-9a-f]{32}", session)
    assert span["attributes"]["mcp.protocol.version"] in ("2025-03-26", "2025-06-18", "2025-11-25")
