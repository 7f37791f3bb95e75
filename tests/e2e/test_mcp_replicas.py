"""Two gateway processes share nothing but the store and the secret key: a legacy (handshake-era)
MCP session alternates between them request by request, and a kill made through one reaches
the other, cutting its in-flight call (version poll alone, and with Redis pub/sub)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from lockgate.mcp import jsonrpc
from tests.e2e.test_cli import spawn, wait_ready
from tests.gateway_harness import free_port
from tests.integration.mcp_kit import ALICE, UPSTREAM_TOKEN, mcp_config

ADMIN = "lga-mcp-e2e-admin"


class Alternating(httpx2.AsyncBaseTransport):
    """Sends each request to the next gateway in turn: no stickiness anywhere."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.inner = httpx2.AsyncHTTPTransport()
        self.sent: list[tuple[str, int]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append((request.method, port))
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _cluster(
    tmp: Path, extra_env: dict[str, str], extra_config: dict[str, Any] | None = None
) -> Iterator[list[str]]:
    mock_port = free_port()
    ports = [free_port(), free_port()]
    config = tmp / "lockgate.yaml"
    config.write_text(yaml.safe_dump({**mcp_config(f"http://127.0.0.1:{mock_port}"), **(extra_config or {})}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "LOCKGATE_DATABASE_URL": f"sqlite:///{tmp / 'mcp.db'}",
        "LOCKGATE_SECRET_KEY": "mcp-e2e-shared-secret",
        "LOCKGATE_ADMIN_KEY": ADMIN,
        "LOCKGATE_MCP_STDIO_COMMANDS": sys.executable,
        **extra_env,
    }
    with ExitStack() as stack:
        mock = spawn("mock-mcp", "--port", str(mock_port), "--token", UPSTREAM_TOKEN, env=env)
        processes = [mock]
        stack.callback(lambda: [(p.terminate(), p.wait(10)) for p in processes])
        for port in ports:
            processes.append(spawn("serve", "--port", str(port), "--config", str(config), env=env))
        for port, process in zip(ports, processes[1:], strict=True):
            wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        yield [f"http://127.0.0.1:{port}" for port in ports]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    yield from _cluster(tmp_path_factory.mktemp("mcp-poll"), {})


@pytest.fixture(scope="module")
def cluster_with_redis(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[list[str]]:
    yield from _cluster(tmp_path_factory.mktemp("mcp-redis"), {"LOCKGATE_REDIS_URL": redis_url})


def _client(urls: list[str], path: str, transport: httpx2.AsyncBaseTransport | None = None) -> Client:
    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {ALICE}"},
        timeout=20,
        **({"transport": transport} if transport else {}),
    )
    return Client(streamable_http_client(urls[0] + path, http_client=http), mode="legacy")


@pytest.mark.parametrize("path", ["/mcp", "/mcp/orders", "/mcp/old"])
async def test_a_legacy_session_alternates_between_two_gateway_processes(
    cluster: list[str], path: str
) -> None:
    ports = [int(url.rsplit(":", 1)[1]) for url in cluster]
    transport = Alternating(ports)
    prefix = "orders__" if path == "/mcp" else ""
    async with _client(cluster, path, transport) as mcp:
        for i in range(6):
            result = await mcp.call_tool(
                f"{prefix}lookup_order", {"order_id": "A-1001" if i % 2 else "A-1002"}
            )
            assert not result.is_error
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert f"{prefix}issue_refund" in names
    posts = [port for method, port in transport.sent if method == "POST"]
    assert set(posts) == set(ports)  # both processes served the one session
    assert len(posts) >= 8


def _server_id(url: str, name: str) -> str:
    rows = httpx.get(
        f"{url}/admin/v1/mcp/servers", params={"name": name}, headers={"authorization": f"Bearer {ADMIN}"}
    ).json()["data"]
    return next(r["id"] for r in rows if r["latest"])


@pytest.mark.parametrize("fixture", ["cluster", "cluster_with_redis"])
async def test_kill_through_one_process_cuts_calls_on_the_other(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    first, second = request.getfixturevalue(fixture)
    admin = {"authorization": f"Bearer {ADMIN}"}
    local = _server_id(first, "local")
    async with _client([second], "/mcp/local") as mcp:
        assert not (await mcp.call_tool("lookup_order", {"order_id": "A-1001"})).is_error
        call = asyncio.ensure_future(mcp.call_tool("slow_task", {"seconds": 4.8}))
        await asyncio.sleep(0.3)  # let the call reach the second process (its outcome is asserted below)
        async with httpx.AsyncClient(headers=admin, timeout=10) as api:
            killed = await api.post(f"{first}/admin/v1/mcp/servers/{local}/kill", json={"reason": "e2e"})
            assert killed.status_code == 200
            try:
                with pytest.raises(MCPError) as caught:
                    await call
                assert caught.value.code == jsonrpc.KILLED
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    try:
                        await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
                    except MCPError as exc:
                        assert exc.code == jsonrpc.KILLED and "e2e" in exc.error.message
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail("the second process never saw the kill")
            finally:
                assert (await api.post(f"{first}/admin/v1/mcp/servers/{local}/enable")).status_code == 200
