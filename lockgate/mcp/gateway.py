"""Wiring of the MCP gateway into a Lockgate worker: the proxy with its pool, codec and hooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lockgate.admin.snapshot import Snapshot
from lockgate.errors import LockgateError, MethodNotAllowed, NotFound
from lockgate.governance.jwks import JwksCache
from lockgate.mcp.approvals import ApprovalQueue
from lockgate.mcp.jsonrpc import McpError
from lockgate.mcp.oauth import OAuthGate
from lockgate.mcp.pins import PinBook
from lockgate.mcp.proxy import McpProxy
from lockgate.mcp.session_codec import SessionCodec
from lockgate.mcp.upstreams import UpstreamPool
from lockgate.server.http import send_error, send_json
from lockgate.server.types import Receive, Scope, Send
from lockgate.telemetry.records import ToolCallRecord

if TYPE_CHECKING:
    from lockgate.app import Lockgate

log = logging.getLogger("lockgate.mcp")


class McpGateway(McpProxy):
    def on_snapshot(self, snapshot: Snapshot) -> None:
        """A new registry: cut in-flight calls it kills, drop connections it no longer has."""
        cut = self.in_flight.cut(snapshot.mcp)
        if cut:
            log.warning(
                "kill switch: cancelled %d in-flight MCP call(s) at config version %s", cut, snapshot.version
            )
        with contextlib.suppress(RuntimeError):  # no running loop yet: the first snapshot
            self.pool.sync(snapshot.mcp)
            if self.oauth is not None:
                self.oauth.on_snapshot(snapshot.oauth)  # new issuers' keys start loading now
            if self.approvals is not None:
                self.approvals.notice()  # a decision on a held call comes as a config change

    async def discover(self, name: str, version: str) -> dict[str, Any]:
        """The tools a registered server exposes, from this worker's cache (fetched when cold)."""
        server = self.snapshot().mcp.by_address.get(f"{name}@{version}")
        if server is None:
            return {"status": "not_served", "tools": []}
        try:
            listing = await asyncio.wait_for(self.pool.tools(server), server.timeout_s)
        except (McpError, TimeoutError) as exc:
            return {"status": "unreachable", "error": str(exc), "tools": []}
        tools = [
            {"name": t["name"], "description": t.get("description"), "hash": listing.hashes[t["name"]]}
            for t in listing.tools
        ]
        age = round(time.monotonic() - listing.fetched_at, 3)
        return {"status": "ok", "age_s": age, "tools": tools}

    async def metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        """RFC 9728 protected-resource metadata: GET /.well-known/oauth-protected-resource[/mcp[/x]]."""
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise MethodNotAllowed(f"{scope['method']} is not allowed here; use GET.")
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            document = self.oauth.metadata(scope, headers, self.snapshot().oauth) if self.oauth else None
            if document is None:
                raise NotFound("No OAuth protected resource here.")
        except LockgateError as exc:
            await send_error(send, exc)
            return
        await send_json(send, 200, document, [(b"cache-control", b"public, max-age=300")])

    async def close(self) -> None:
        self.closing.set()
        await self.pool.close()
        if self.oauth is not None:
            await self.oauth.keys.close()


def _recorder(lockgate: Lockgate, pool: UpstreamPool) -> Callable[[ToolCallRecord], None]:
    """Each finished call to telemetry (span, metrics, record), with whether its server lists the
    tool: only listed tool names become metric labels."""

    def record(call: ToolCallRecord) -> None:
        known = False
        if call.server is not None and call.tool:
            server = lockgate.snapshots.current.mcp.by_address.get(f"{call.server}@{call.server_version}")
            listing = pool.cached(server) if server is not None else None
            known = listing is not None and call.tool in listing.hashes
        lockgate.telemetry.put_tool_call(call, known_tool=known)

    return record


def build_mcp_proxy(lockgate: Lockgate) -> McpGateway:
    settings = lockgate.settings
    pool = UpstreamPool(
        lambda: lockgate.client.session,
        stdio_allow_list=settings.mcp_stdio_commands,
        refresh_s=settings.mcp_tools_refresh,
    )
    pins = PinBook(
        lockgate.plane.control,
        lambda version: lockgate._admin_ctx.changed(version),
        lambda: lockgate.snapshots.current.mcp,
    )
    pool.on_listing = pins.observe
    return McpGateway(
        auth=lockgate.auth,
        snapshot=lambda: lockgate.snapshots.current,
        pool=pool,
        codec=SessionCodec(lockgate.plane.secrets.primary),
        record=_recorder(lockgate, pool),
        max_body_bytes=settings.max_body_bytes,
        # A decision is a config change; the admin context publishes it (lockgate/admin/app.py).
        approvals=ApprovalQueue(lockgate.plane.control, lambda version: lockgate._admin_ctx.changed(version)),
        admit=lockgate.governor.admit_windows,  # per-tool limits on the LLM limits' counters
        # Tool prices go to the same budgets as LLM spend, reserved and settled the same way.
        charge=lambda principal, call_id, price: lockgate.governor.admit_charge(
            lockgate.snapshots.current.governance, principal, call_id, price
        ),
        oauth=OAuthGate(
            JwksCache(ttl_s=settings.oauth_jwks_ttl, refetch_s=settings.oauth_jwks_refetch),
            public_url=settings.public_url,
        ),
    )
