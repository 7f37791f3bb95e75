"""The mock MCP server on loopback in a thread, and a gateway config that registers it."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from typing import Any, Self

import uvicorn

from lockgate.testing.mock_mcp import http_app
from tests.gateway_harness import free_port

UPSTREAM_TOKEN = "upstream-secret-7f3a"
ALICE = "lg-mcp-alice-0123456789abcdef"  # every server, every tool
BOB = "lg-mcp-bob-0123456789abcdef00"  # an access rule: no refunds, no email
CAROL = "lg-mcp-carol-0123456789abcdef"  # another workspace: sees only what is shared with it


class AsgiThread:
    """Any ASGI app served by uvicorn on loopback, on its own loop in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", loop="none")
        )
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._server.serve(),), daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            self._thread.join(0.01)
        raise RuntimeError("loopback server did not start")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._loop.close()


class MockMcpThread(AsgiThread):
    """The mock MCP server; ``wrap`` may put a middleware around it (to watch what it receives)."""

    def __init__(self, token: str | None = UPSTREAM_TOKEN, wrap: Callable[[Any], Any] | None = None) -> None:
        app = http_app(token)
        super().__init__(wrap(app) if wrap is not None else app)


def stdio_command() -> list[str]:
    return [sys.executable, "-m", "lockgate", "mock-mcp", "--stdio"]


def mcp_config(mock_url: str, **server_overrides: Any) -> dict[str, Any]:
    return {
        "workspaces": [{"name": "team-b"}],
        "keys": [
            {"name": "alice", "workspace": "default", "key": ALICE},
            {"name": "bob", "workspace": "default", "key": BOB},
            {"name": "carol", "workspace": "team-b", "key": CAROL},
        ],
        "mcp_servers": [
            {
                "name": "orders",
                "version": "1.0.0",
                "description": "Orders over Streamable HTTP.",
                "url": f"{mock_url}/mcp",
                "secret": UPSTREAM_TOKEN,
                "workspaces": ["default"],
                "timeout_ms": 1500,
                **server_overrides,
            },
            {
                "name": "old",
                "description": "Orders over Streamable HTTP, handshake era only.",
                "url": f"{mock_url}/h/mcp",
                "secret": UPSTREAM_TOKEN,
                "workspaces": ["default"],
                "timeout_ms": 3000,
            },
            {
                "name": "local",
                "description": "Orders over stdio.",
                "transport": "stdio",
                "command": stdio_command(),
                "timeout_ms": 5000,
            },
            {
                "name": "legacy",
                "description": "Orders over HTTP+SSE.",
                "transport": "sse",
                "url": f"{mock_url}/sse",
                "secret": UPSTREAM_TOKEN,
                "workspaces": ["default"],
                "timeout_ms": 3000,
            },
        ],
        "mcp_access_rules": [
            {
                "name": "bob-no-money",
                "workspace": "default",
                "key": "bob",
                "deny_tools": ["*__issue_refund", "*__send_email"],
            },
        ],
    }
