"""Agent governance across two gateway processes sharing the store and Redis: a per-tool rate limit
is exact while calls alternate between them, and a call held for approval on one process is
released by a decision made through the other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from lockgate.mcp import jsonrpc
from tests.e2e.test_mcp_replicas import ADMIN, Alternating, _client, _cluster

POLICIES: list[dict[str, Any]] = [
    {
        "name": "alice-lookups",
        "workspace": "default",
        "key": "alice",
        "tool": "lookup_order",
        "action": "limit",
        "limit": {"calls": 7, "per": "hour"},
    },
    {
        "name": "refund-review",
        "workspace": "default",
        "tool": "issue_refund",
        "when": "args.amount > 50",
        "action": "require_approval",
        "approval_timeout_s": 60,
    },
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[list[str]]:
    yield from _cluster(
        tmp_path_factory.mktemp("mcp-gov-redis"),
        {"LOCKGATE_REDIS_URL": redis_url},
        {"mcp_tool_policies": POLICIES},
    )


async def test_a_tool_limit_is_exact_across_processes(cluster: list[str]) -> None:
    ports = [int(url.rsplit(":", 1)[1]) for url in cluster]
    transport = Alternating(ports)
    outcomes: list[str] = []
    async with _client(cluster, "/mcp/orders", transport) as mcp:
        for _ in range(20):
            try:
                await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
            except MCPError as exc:
                assert exc.code == jsonrpc.RATE_LIMITED and "alice-lookups" in exc.error.message
                outcomes.append("limited")
            else:
                outcomes.append("ok")
    posts = {port for method, port in transport.sent if method == "POST"}
    assert posts == set(ports)
    assert outcomes == ["ok"] * 7 + ["limited"] * 13


async def test_an_approval_made_on_one_process_releases_the_call_on_the_other(
    cluster: list[str],
) -> None:
    first, second = cluster
    async with (
        _client([second], "/mcp/orders") as mcp,
        httpx.AsyncClient(headers={"authorization": f"Bearer {ADMIN}"}, timeout=10) as api,
    ):
        call = asyncio.ensure_future(mcp.call_tool("issue_refund", {"order_id": "A-1002", "amount": 75}))
        for _ in range(400):
            rows = (await api.get(f"{first}/admin/v1/mcp/approvals", params={"status": "pending"})).json()
            if rows["data"]:
                break
            await asyncio.sleep(0.025)
        (held,) = rows["data"]
        approved = await api.post(f"{first}/admin/v1/mcp/approvals/{held['id']}/approve")
        assert approved.status_code == 200, approved.text
        result = await asyncio.wait_for(call, 30)
    assert result.structured_content == {"order_id": "A-1002", "refunded": 75.0, "status": "refunded"}
