"""The MCP registry's admin API and lockgate.yaml: versions, import, discovery, RBAC, audit, apply/export."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread
from tests.integration.mcp_kit import ALICE, UPSTREAM_TOKEN, MockMcpThread, stdio_command

MODERN = {"mcp-protocol-version": "2026-07-28", "content-type": "application/json"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockMcpThread]:
    with MockMcpThread() as mock:
        yield mock


@pytest.fixture(scope="module")
def gw(upstream: MockMcpThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    config = {"keys": [{"name": "alice", "key": ALICE}]}
    with admin_gateway(
        tmp_path_factory.mktemp("mcp-admin"), config, mcp_stdio_commands=sys.executable
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def team(gw: GatewayThread) -> dict[str, Any]:
    with admin_client(gw) as admin:
        ws = ok(admin.post("/workspaces", json={"name": "mcp-a"}), 201)
        user = ok(
            admin.post(
                "/users", json={"name": "ma-admin", "roles": [{"role": "admin", "workspace_id": ws["id"]}]}
            ),
            201,
        )
        viewer = ok(admin.post("/users", json={"name": "m-viewer", "roles": [{"role": "viewer"}]}), 201)
        return {
            "ws": ws["id"],
            "ws_admin": ok(admin.post(f"/users/{user['id']}/keys", json={"name": "cli"}), 201)["key"],
            "viewer": ok(admin.post(f"/users/{viewer['id']}/keys", json={"name": "cli"}), 201)["key"],
        }


def call(gw: GatewayThread, path: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    headers = {**MODERN, "mcp-method": "tools/call", "mcp-name": name, "authorization": f"Bearer {ALICE}"}
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=10).json()


def test_versions_discovery_and_retirement(gw: GatewayThread, upstream: MockMcpThread) -> None:
    base = {"name": "crm", "url": f"{upstream.url}/mcp", "secret": UPSTREAM_TOKEN}
    with admin_client(gw) as admin:
        v1 = ok(admin.post("/mcp/servers", json={**base, "version": "1.0.0"}), 201)
        assert "secret" not in v1 and "secret_ciphertext" not in v1
        assert (
            ok(admin.post("/mcp/servers", json={**base, "version": "1.0.0"}), 409)["error"]["param"]
            == "version"
        )
        v2 = ok(admin.post("/mcp/servers", json={**base, "version": "2.0.0", "description": "v2"}), 201)
        listed = ok(admin.get("/mcp/servers", params={"name": "crm", "tools": "true"}))["data"]
        by_version = {row["server_version"]: row for row in listed}
        assert by_version["2.0.0"]["latest"] and not by_version["1.0.0"]["latest"]
        tools = {t["name"] for t in by_version["1.0.0"]["tools"]["tools"]}
        assert {"lookup_order", "issue_refund", "send_email"} <= tools
        assert call(gw, "/mcp/crm@1.0.0", "lookup_order", {"order_id": "A-1001"})["result"][
            "structuredContent"
        ]
        assert call(gw, "/mcp/crm", "lookup_order", {"order_id": "A-1001"})["result"]["structuredContent"]
        ok(admin.post(f"/mcp/servers/{v1['id']}/retire"))
        gone = call(gw, "/mcp/crm@1.0.0", "lookup_order", {"order_id": "A-1001"})
        assert "No MCP server 'crm@1.0.0'" in gone["error"]["message"]
        ok(admin.delete(f"/mcp/servers/{v2['id']}"))
        ok(admin.delete(f"/mcp/servers/{v1['id']}"))


def test_discovery_refreshes_cached_tools_on_its_schedule(gw: GatewayThread, upstream: MockMcpThread) -> None:
    with admin_client(gw) as admin:
        row = ok(
            admin.post(
                "/mcp/servers",
                json={"name": "pinned", "url": f"{upstream.url}/mcp", "secret": UPSTREAM_TOKEN},
            ),
            201,
        )
        first = ok(admin.get(f"/mcp/servers/{row['id']}", params={"tools": "true"}))["tools"]
        assert call(gw, "/mcp/pinned", "switch_description", {})["result"]
        try:
            gw.app.mcp.pool.refresh_s = 0.0  # the scheduled refresh, due at once
            for _ in range(200):
                later = ok(admin.get(f"/mcp/servers/{row['id']}", params={"tools": "true"}))["tools"]
                if later["tools"] != first["tools"]:
                    break
            described = {t["name"]: t["description"] for t in later["tools"]}
            assert "audit@evil.example" in described["lookup_order"]
        finally:
            gw.app.mcp.pool.refresh_s = 60.0
            call(gw, "/mcp/pinned", "switch_description", {})
            ok(admin.delete(f"/mcp/servers/{row['id']}"))


def test_server_json_import(gw: GatewayThread, upstream: MockMcpThread) -> None:
    doc = {
        "name": "io.github.lockgate/mock-orders",
        "version": "0.3.0",
        "description": "Imported.",
        "remotes": [{"type": "streamable-http", "url": f"{upstream.url}/mcp"}],
    }
    with admin_client(gw) as admin:
        row = ok(admin.post("/mcp/servers/import", json={"server": doc, "secret": UPSTREAM_TOKEN}), 201)
        assert (row["name"], row["server_version"], row["tags"]) == (
            "mock-orders",
            "0.3.0",
            ["registry:io.github.lockgate/mock-orders"],
        )
        assert call(gw, "/mcp/mock-orders", "lookup_order", {"order_id": "A-1002"})["result"][
            "structuredContent"
        ]
        bad = admin.post(
            "/mcp/servers/import", json={"server": {"name": "x", "packages": [{"identifier": "y"}]}}
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "server.remotes"
        ok(admin.delete(f"/mcp/servers/{row['id']}"))


def test_validation_and_the_stdio_allow_list(gw: GatewayThread) -> None:
    with admin_client(gw) as admin:
        no_url = admin.post("/mcp/servers", json={"name": "x"})
        assert no_url.status_code == 400 and "needs a URL" in no_url.json()["error"]["message"]
        bad_name = admin.post("/mcp/servers", json={"name": "Has_Underscore", "url": "http://x/mcp"})
        assert bad_name.status_code == 400 and bad_name.json()["error"]["param"] == "name"
        shell = admin.post(
            "/mcp/servers", json={"name": "sh", "transport": "stdio", "command": ["sh", "-c", "id"]}
        )
        assert shell.status_code == 400 and shell.json()["error"]["code"] == "command_not_allowed"
        allowed = ok(
            admin.post(
                "/mcp/servers", json={"name": "std", "transport": "stdio", "command": stdio_command()}
            ),
            201,
        )
        assert call(gw, "/mcp/std", "lookup_order", {"order_id": "A-1001"})["result"]["structuredContent"]
        ok(admin.delete(f"/mcp/servers/{allowed['id']}"))


def test_rbac_and_audit(gw: GatewayThread, team: dict[str, Any], upstream: MockMcpThread) -> None:
    body = {"name": "team-srv", "url": f"{upstream.url}/mcp"}
    with admin_client(gw, team["ws_admin"]) as ws_admin, admin_client(gw, team["viewer"]) as viewer:
        assert ws_admin.post("/mcp/servers", json=body).status_code == 403  # org-wide needs an org admin
        own = ok(ws_admin.post("/mcp/servers", json={**body, "workspace_id": team["ws"]}), 201)
        assert viewer.post("/mcp/servers", json=body).status_code == 403
        assert viewer.get(f"/mcp/servers/{own['id']}").status_code == 200
        assert viewer.post(f"/mcp/servers/{own['id']}/kill").status_code == 403
        killed = ok(ws_admin.post(f"/mcp/servers/{own['id']}/kill", json={"reason": "drill"}))
        assert (killed["status"], killed["status_reason"]) == ("killed", "drill")
        rule = ok(
            ws_admin.post(
                "/mcp/access-rules",
                json={
                    "name": "ma-no-mail",
                    "scope_type": "workspace",
                    "scope_id": team["ws"],
                    "deny_tools": ["*__send_email"],
                },
            ),
            201,
        )
        ok(ws_admin.delete(f"/mcp/access-rules/{rule['id']}"))
        ok(ws_admin.delete(f"/mcp/servers/{own['id']}"))
    with admin_client(gw) as admin:
        audit = ok(admin.get("/audit", params={"limit": 200}))["data"]
    mine = [a for a in audit if a["object_id"] == own["id"]]
    assert [a["action"] for a in mine][-3:] == [
        "mcp_server.create",
        "mcp_server.kill",
        "mcp_server.delete",
    ] or {"mcp_server.create", "mcp_server.kill", "mcp_server.delete"} <= {a["action"] for a in mine}
    assert all("secret_ciphertext" not in str(a["after"]) for a in mine)


def test_yaml_apply_export_and_prune(gw: GatewayThread, upstream: MockMcpThread) -> None:
    config = {
        "keys": [{"name": "alice", "key": ALICE}],
        "mcp_servers": [
            {
                "name": "filed",
                "url": f"{upstream.url}/mcp",
                "secret": UPSTREAM_TOKEN,
                "tags": ["gitops"],
                "tool_status": {"send_email": "disabled"},
            }
        ],
        "mcp_access_rules": [
            {
                "name": "alice-read-only",
                "workspace": "default",
                "key": "alice",
                "allow_tools": ["*__lookup_order"],
            }
        ],
    }
    with admin_client(gw) as admin:
        applied = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(config)}))
        kinds = {(c["kind"], c["action"]) for c in applied["changes"]}
        assert {("mcp_server", "create"), ("mcp_access_rule", "create")} <= kinds
        assert ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(config)}))["changes"] == []
        exported = ok(admin.get("/config/export"))["config"]
        filed = next(s for s in exported["mcp_servers"] if s["name"] == "filed")
        assert filed["secret"].startswith("${") and UPSTREAM_TOKEN not in yaml.safe_dump(exported)
        assert {
            "name": "alice-read-only",
            "workspace": "default",
            "key": "alice",
            "allow_tools": ["*__lookup_order"],
        } in exported["mcp_access_rules"]
        refused = call(gw, "/mcp/filed", "issue_refund", {"order_id": "A-1001", "amount": 1})
        assert "alice-read-only" in refused["error"]["message"]
        assert call(gw, "/mcp/filed", "lookup_order", {"order_id": "A-1001"})["result"]
        del config["mcp_servers"], config["mcp_access_rules"]
        pruned = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(config)}))
        assert {(c["kind"], c["action"]) for c in pruned["changes"]} == {
            ("mcp_server", "delete"),
            ("mcp_access_rule", "delete"),
        }


async def test_list_changed_from_a_stdio_server_refreshes_the_cached_tools(gw: GatewayThread) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    with admin_client(gw) as admin:
        row = ok(
            admin.post(
                "/mcp/servers", json={"name": "std-lc", "transport": "stdio", "command": stdio_command()}
            ),
            201,
        )
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {ALICE}"}, timeout=20)
    try:
        async with Client(
            streamable_http_client(gw.url + "/mcp/std-lc", http_client=http), mode="auto"
        ) as mcp:

            def described(tools: Any) -> str:
                return next(t.description for t in tools.tools if t.name == "lookup_order")

            assert "evil" not in described(await mcp.list_tools())
            await mcp.call_tool("switch_description", {})
            assert gw.app.mcp.pool.refresh_s == 60.0  # only the notification can refresh it now
            for _ in range(500):
                if "audit@evil.example" in described(await mcp.list_tools()):
                    break
            else:
                pytest.fail("the cached tool list never followed notifications/tools/list_changed")
    finally:
        with admin_client(gw) as admin:
            ok(admin.delete(f"/mcp/servers/{row['id']}"))
