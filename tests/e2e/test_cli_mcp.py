"""`lockgate mcp ...` against a real gateway: register, discover, kill a tool, read the records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import orjson

from tests.admin_harness import ADMIN_KEY, admin_gateway
from tests.e2e.test_cli_control import lockgate
from tests.integration.mcp_kit import ALICE, UPSTREAM_TOKEN, MockMcpThread


def test_registry_and_kill_switch_from_the_cli(tmp_path: Path) -> None:
    config = {"keys": [{"name": "alice", "key": ALICE}]}
    with (
        MockMcpThread() as upstream,
        admin_gateway(tmp_path, config, mcp_stdio_commands=sys.executable) as gw,
    ):
        env = {"LOCKGATE_URL": gw.url, "LOCKGATE_ADMIN_KEY": ADMIN_KEY}
        added = lockgate(
            "mcp",
            "servers",
            "add",
            "crm",
            "--server-url",
            f"{upstream.url}/mcp",
            "--secret",
            UPSTREAM_TOKEN,
            "--version",
            "1.2.0",
            "--json",
            env=env,
        )
        assert added.returncode == 0, added.stdout + added.stderr
        assert orjson.loads(added.stdout)["server_version"] == "1.2.0" and UPSTREAM_TOKEN not in added.stdout
        listed = lockgate("mcp", "servers", "list", "--tools", env=env)
        assert "crm@1.2.0 *" in listed.stdout and "lookup_order" in listed.stdout
        killed = lockgate("mcp", "tools", "kill", "crm", "send_email", "--json", env=env)
        assert orjson.loads(killed.stdout)["tool_status"] == {"send_email": "killed"}

        def call(name: str) -> dict[str, object]:
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": name, "arguments": {"to": "x@example.com", "subject": "s"}},
            }
            headers = {
                "authorization": f"Bearer {ALICE}",
                "mcp-protocol-version": "2026-07-28",
                "mcp-method": "tools/call",
                "mcp-name": name,
            }
            return httpx.post(gw.url + "/mcp/crm", json=body, headers=headers, timeout=10).json()

        assert "was killed" in str(call("send_email")["error"])
        assert lockgate("mcp", "tools", "enable", "crm", "send_email", env=env).returncode == 0
        assert "result" in call("send_email")
        assert lockgate("mcp", "servers", "kill", "crm@1.2.0", "--reason", "drill", env=env).returncode == 0
        assert "drill" in str(call("send_email")["error"])
        gw.run(gw.app.writer.flush())
        records = lockgate("mcp", "calls", "--server", "crm", "--json", env=env)
        statuses = [r["status"] for r in orjson.loads(records.stdout)]
        assert statuses.count("killed") == 2 and statuses.count("ok") == 1
        failed = lockgate("mcp", "calls", "--status", "error", "--tool", "send_email", "--json", env=env)
        assert [r["status"] for r in orjson.loads(failed.stdout)] == ["killed", "killed"]
        newest = lockgate("mcp", "calls", "--limit", "1", "--since", "0", "--json", env=env)
        assert [r["id"] for r in orjson.loads(newest.stdout)] == [orjson.loads(records.stdout)[0]["id"]]
        assert orjson.loads(lockgate("mcp", "calls", "--until", "0", "--json", env=env).stdout) == []
        stats = lockgate("mcp", "stats", "--group-by", "tool", "--json", env=env)
        [row] = orjson.loads(stats.stdout)
        assert (row["group"], row["calls"], row["errors"]) == ("crm__send_email", 3, 2)
        table = lockgate("mcp", "stats", env=env)
        assert table.returncode == 0 and "crm" in table.stdout and "66.7%" in table.stdout
        bad = lockgate("mcp", "stats", "--group-by", "model", env=env)
        assert bad.returncode == 1 and "group_by" in bad.stderr
        doc = {
            "name": "io.github.x/imported",
            "version": "3",
            "remotes": [{"type": "sse", "url": f"{upstream.url}/sse"}],
        }
        (tmp_path / "server.json").write_text(json.dumps(doc))
        imported = lockgate("mcp", "import", str(tmp_path / "server.json"), "--json", env=env)
        assert orjson.loads(imported.stdout)["transport"] == "sse"
        missing = lockgate("mcp", "servers", "kill", "nope", env=env)
        assert missing.returncode == 1 and "no MCP server 'nope'" in missing.stderr
