"""Prompts and resources through the MCP gateway: the official mcp client in both protocol eras,
through /mcp (``server__name`` prompts, ``server__uri`` resources) and /mcp/{server}, over every
upstream transport; a server the caller may not use contributes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from lockgate.mcp import jsonrpc
from tests.gateway_harness import GatewayThread
from tests.integration.mcp_kit import ALICE, BOB, CAROL, MockMcpThread, mcp_config

MODES = ["legacy", "auto"]  # "auto" negotiates 2026-07-28 via server/discover
PATHS = [
    ("/mcp/orders", ""),
    ("/mcp/old", ""),
    ("/mcp/local", ""),
    ("/mcp/legacy", ""),
    ("/mcp", "orders__"),
    ("/mcp", "local__"),
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockMcpThread]:
    with MockMcpThread() as mock:
        yield mock


@pytest.fixture(scope="module")
def gw(upstream: MockMcpThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    config = mcp_config(upstream.url)
    config["mcp_access_rules"].append(
        {"name": "bob-not-local", "workspace": "default", "key": "bob", "deny_servers": ["local"]}
    )
    with GatewayThread(
        tmp_path_factory.mktemp("mcp-proto"), config, mcp_stdio_commands=sys.executable
    ) as gateway:
        yield gateway


def client(gw: GatewayThread, path: str, mode: str, key: str = ALICE) -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=20)
    return Client(streamable_http_client(gw.url + path, http_client=http), mode=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("path", "prefix"), PATHS)
async def test_prompts_list_and_get(gw: GatewayThread, mode: str, path: str, prefix: str) -> None:
    async with client(gw, path, mode) as mcp:
        prompts = {p.name: p for p in (await mcp.list_prompts()).prompts}
        assert {f"{prefix}summarize_order", f"{prefix}greeting"} <= set(prompts)
        assert [a.name for a in prompts[f"{prefix}summarize_order"].arguments or []] == ["order_id"]
        got = await mcp.get_prompt(f"{prefix}summarize_order", {"order_id": "A-1001"})
        assert got.messages[0].content.text == "Summarize order A-1001: shipped, total 42.5."


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("path", "prefix"), PATHS)
async def test_resources_templates_and_reads(gw: GatewayThread, mode: str, path: str, prefix: str) -> None:
    async with client(gw, path, mode) as mcp:
        resources = {r.uri: r for r in (await mcp.list_resources()).resources}
        catalog = f"{prefix}orders://catalog"
        assert catalog in resources and resources[catalog].name == f"{prefix}catalog"
        templates = [t.uri_template for t in (await mcp.list_resource_templates()).resource_templates]
        assert f"{prefix}orders://order/{{order_id}}" in templates
        read = await mcp.read_resource(catalog)
        assert orjson.loads(read.contents[0].text) == {"orders": ["A-1001", "A-1002"]}
        # The client fills in the template it was given; the gateway routes the filled-in URI back.
        filled = f"{prefix}orders://order/A-1002"
        order = await mcp.read_resource(filled)
        assert order.contents[0].uri == filled
        assert orjson.loads(order.contents[0].text)["status"] == "processing"


async def test_aggregate_merges_every_servers_prompts_and_resources(gw: GatewayThread) -> None:
    async with client(gw, "/mcp", "auto") as mcp:
        prompts = {p.name.split("__")[0] for p in (await mcp.list_prompts()).prompts}
        resources = {r.uri.split("__")[0] for r in (await mcp.list_resources()).resources}
    assert prompts == resources == {"orders", "old", "local", "legacy"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_server_the_caller_may_not_use_contributes_nothing(gw: GatewayThread, mode: str) -> None:
    async with client(gw, "/mcp", mode, key=BOB) as mcp:  # an access rule denies bob the server "local"
        prompts = {p.name for p in (await mcp.list_prompts()).prompts}
        uris = {r.uri for r in (await mcp.list_resources()).resources}
        templates = {t.uri_template for t in (await mcp.list_resource_templates()).resource_templates}
        assert "orders__greeting" in prompts and "orders__orders://catalog" in uris
        assert not [n for n in prompts | uris | templates if n.startswith("local__")]
        with pytest.raises(MCPError) as caught:
            await mcp.read_resource("local__orders://catalog")
        assert caught.value.code == jsonrpc.FORBIDDEN and "bob-not-local" in caught.value.error.message
        with pytest.raises(MCPError) as caught:
            await mcp.get_prompt("local__greeting")
        assert caught.value.code == jsonrpc.FORBIDDEN
    async with client(gw, "/mcp", mode, key=CAROL) as mcp:  # team-b: only the stdio server is shared
        assert {p.name.split("__")[0] for p in (await mcp.list_prompts()).prompts} == {"local"}
        with pytest.raises(MCPError) as caught:
            await mcp.read_resource("orders__orders://catalog")
        assert caught.value.code == jsonrpc.UNKNOWN_SERVER


@pytest.mark.parametrize("mode", MODES)
async def test_bad_prompt_and_resource_names_are_clean_errors(gw: GatewayThread, mode: str) -> None:
    async with client(gw, "/mcp", mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.read_resource("orders://catalog")  # no server__ prefix in the aggregate
        assert caught.value.code == jsonrpc.UNKNOWN_SERVER
        with pytest.raises(MCPError) as caught:
            await mcp.get_prompt("nowhere__greeting")
        assert caught.value.code == jsonrpc.UNKNOWN_SERVER
    async with client(gw, "/mcp/orders", mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.read_resource("orders://order/A-9999")
        assert caught.value.error.message.startswith("orders@1.0.0: ")  # the server's own error, named
        assert "orders://order/A-9999" in caught.value.error.message


class Heard:
    """A client's message handler: every notification it is told, and a wait for one method."""

    def __init__(self) -> None:
        self.notices: list[Any] = []
        self._changed = asyncio.Condition()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, Exception):
            return
        async with self._changed:
            self.notices.append(message)
            self._changed.notify_all()

    def methods(self) -> list[str]:
        return [n.method for n in self.notices]

    async def wait_for(self, method: str) -> Any:
        """The first ``method`` notification; callers bound the wait with ``asyncio.timeout``."""
        async with self._changed:
            await self._changed.wait_for(lambda: method in self.methods())
        return next(n for n in self.notices if n.method == method)


def heard_client(gw: GatewayThread, path: str, heard: Heard, mode: str = "legacy") -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {ALICE}"}, timeout=20)
    return Client(streamable_http_client(gw.url + path, http_client=http), mode=mode, message_handler=heard)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("path", "prefix"), [("/mcp/orders", ""), ("/mcp/old", ""), ("/mcp", "orders__")])
async def test_progress_comes_on_the_calls_own_stream(
    gw: GatewayThread, mode: str, path: str, prefix: str
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with heard_client(gw, path, Heard(), mode) as mcp:
        result = await mcp.call_tool(
            f"{prefix}emit_notifications", {"steps": 3}, progress_callback=on_progress
        )
        assert result.content[0].text == "emitted 3 progress notifications"
        assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
        # Without a progress token the answer is plain JSON, as before.
        plain = await mcp.call_tool(f"{prefix}lookup_order", {"order_id": "A-1001"})
        assert plain.structured_content["status"] == "shipped"


@pytest.mark.parametrize(("path", "prefix"), [("/mcp/orders", ""), ("/mcp/old", ""), ("/mcp", "orders__")])
async def test_get_stream_relays_what_the_upstream_says_during_a_call(
    gw: GatewayThread, path: str, prefix: str
) -> None:
    heard = Heard()
    async with heard_client(gw, path, heard) as mcp:
        result = await mcp.call_tool(f"{prefix}emit_notifications", {"uri": "orders://order/A-1001"})
        assert not result.is_error
        async with asyncio.timeout(10):
            updated = await heard.wait_for("notifications/resources/updated")
        assert updated.params.uri == f"{prefix}orders://order/A-1001"  # a URI the client can read here
        assert "notifications/tools/list_changed" in heard.methods()


@pytest.mark.parametrize(("path", "prefix"), [("/mcp/orders", ""), ("/mcp/local", ""), ("/mcp", "orders__")])
async def test_list_changed_reaches_the_client_and_refreshes_the_gateways_tool_list(
    gw: GatewayThread, path: str, prefix: str
) -> None:
    heard = Heard()
    async with heard_client(gw, path, heard) as mcp:

        async def lookup_description() -> str | None:
            tools = (await mcp.list_tools()).tools
            return next(t.description for t in tools if t.name == f"{prefix}lookup_order")

        before = await lookup_description()
        switched = await mcp.call_tool(f"{prefix}switch_description", {})
        try:
            async with asyncio.timeout(10):
                await heard.wait_for("notifications/tools/list_changed")
            # The gateway's cached list was dropped when the server said so: the new one is served.
            assert await lookup_description() == switched.content[0].text != before
        finally:
            await mcp.call_tool(f"{prefix}switch_description", {})  # the mock as it was


@pytest.mark.parametrize(("path", "prefix"), [("/mcp/old", ""), ("/mcp", "old__")])
async def test_get_stream_relays_what_the_upstream_says_outside_any_call(
    gw: GatewayThread, path: str, prefix: str
) -> None:
    """A handshake-era upstream's own GET stream of the caller's upstream session is relayed too."""
    heard = Heard()
    async with heard_client(gw, path, heard) as mcp:
        # The server drops what it says before the gateway has attached to its GET stream (which it
        # does when the client's GET stream arrives), so ask until one is heard.
        for attempt in range(50):
            uri = f"orders://order/{attempt}"
            said = await mcp.call_tool(f"{prefix}emit_notifications", {"uri": uri, "outside": True})
            assert said.content[0].text == f"updated {uri} outside the call"
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    updated = await heard.wait_for("notifications/resources/updated")
                break
        else:
            pytest.fail("no resources/updated from outside a call reached the client")
    assert updated.params.uri.startswith(f"{prefix}orders://order/")
