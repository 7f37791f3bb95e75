"""What the proxy needs from an upstream MCP server, whatever its transport.

An upstream is one pooled connection per worker and registered server version.
``request`` sends one JSON-RPC request and returns its ``result``, or raises
``McpError`` (the upstream's own JSON-RPC error passes through with its code;
transport failures and timeouts become gateway codes). Every call has a deadline.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Protocol

from lockgate.mcp.jsonrpc import UPSTREAM_ERROR, McpError

HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
CLIENT_INFO = {"name": "lockgate", "version": "1"}


# Told of each notification an upstream sends on the stream of one caller's request (progress,
# list_changed ...): only streams that belong to one request can be attributed to its caller.
Notify = Callable[[dict[str, Any]], None]


class Upstream(Protocol):
    # Called when the server says its tool list changed (a notification, or a new session's answer).
    on_list_changed: Callable[[], None] | None

    async def request(
        self,
        method: str,
        params: dict[str, Any],
        *,
        timeout_s: float,
        session: str | None = None,
        notify: Notify | None = None,
    ) -> dict[str, Any]: ...

    async def open_session(self, *, timeout_s: float) -> str | None:
        """A session of the caller's own upstream (legacy-era HTTP); None where there is no such thing."""
        ...

    async def close_session(self, session: str, *, timeout_s: float) -> None: ...

    async def listen(self, session: str, notify: Notify) -> None:
        """Relay what the server says outside requests on the caller's own ``session``; returns when
        there is no such stream, or it ends."""
        ...

    async def close(self) -> None: ...


_ids = itertools.count(1)


def next_id() -> int:
    """Gateway-assigned ids: callers' ids never reach a shared upstream connection, so they cannot collide."""
    return next(_ids)


def answer_of(message: dict[str, Any], server: str) -> dict[str, Any]:
    """The result of a JSON-RPC response, or its error as an ``McpError`` with the server named."""
    error = message.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise McpError(
            code if isinstance(code, int) else UPSTREAM_ERROR,
            f"{server}: {error.get('message', 'error')}",
            error.get("data") if isinstance(error.get("data"), dict) else None,
        )
    result = message.get("result")
    if not isinstance(result, dict):
        raise McpError(UPSTREAM_ERROR, f"{server} answered without a result object.")
    return result
