"""``/mcp`` and ``/mcp/{server}``: the one place where the MCP gateway's stages are put in order.

POST: read -> parse JSON-RPC -> authenticate (Lockgate key, or an OAuth bearer JWT: mcp/oauth.py)
-> era (2026-07-28 per-request envelope, or the handshake era with a composite session) -> routing
headers agree with the body -> session -> dispatch (answered here, merged lists, or one routed call:
access rules, pins, action policies (deny, or wait for approval), the upstream call under the
kill switch) -> record. GET opens the
handshake era's server stream, which carries what upstreams tell the session (notices.py);
DELETE ends a session and the upstream sessions in it.
Answers are JSON; errors are JSON-RPC errors, never a bare 500.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from lockgate.admin.snapshot import Snapshot
from lockgate.errors import AuthenticationFailed, BodyTooLarge, BudgetExceeded, LimitsUnavailable
from lockgate.governance.admission import Pass
from lockgate.governance.auth import Authenticator, Principal
from lockgate.mcp import methods, streams, tool_guard
from lockgate.mcp.action_policy import WINDOWS, ToolPolicy, decide
from lockgate.mcp.approvals import ApprovalQueue
from lockgate.mcp.calls import InFlight, redact
from lockgate.mcp.jsonrpc import (
    BUDGET_EXCEEDED,
    FORBIDDEN,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RATE_LIMITED,
    UNKNOWN_SERVER,
    UNSUPPORTED_PROTOCOL_VERSION,
    McpError,
    Message,
    error_body,
    parse_message,
    result_body,
)
from lockgate.mcp.notices import Notices
from lockgate.mcp.oauth import OAuthGate, OAuthRefused
from lockgate.mcp.registry import SEPARATOR, McpServer
from lockgate.mcp.session_codec import InvalidSession, SessionCodec, SessionState
from lockgate.mcp.tool_guard import ToolGuard
from lockgate.mcp.upstream.base import HANDSHAKE_VERSION, MODERN_VERSION, Notify
from lockgate.mcp.upstreams import UpstreamPool
from lockgate.server.http import read_body
from lockgate.server.types import Receive, Scope, Send
from lockgate.state.counters import Admission, WindowCheck
from lockgate.telemetry.records import McpOrigin, ToolCallRecord

log = logging.getLogger("lockgate.mcp")

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_JSON = [(b"content-type", b"application/json")]
_CAPABILITIES = {"tools": {"listChanged": True}, "prompts": {"listChanged": False}, "resources": {}}
_SERVER_INFO = {"name": "lockgate", "version": "1"}
_SESSION_SETUP_TIMEOUT = 5.0
# The GET stream ends on its own after this long (clients reconnect; undelivered notices wait in the
# outbox) so a graceful shutdown, which waits for open responses, never waits on an idle client.
_GET_STREAM_S = 30.0
_LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


class McpProxy:
    def __init__(
        self,
        *,
        auth: Authenticator,
        snapshot: Callable[[], Snapshot],
        pool: UpstreamPool,
        codec: SessionCodec,
        record: Callable[[ToolCallRecord], None],
        max_body_bytes: int,
        approvals: ApprovalQueue | None = None,
        admit: Callable[[str, tuple[WindowCheck, ...]], Awaitable[Admission]] | None = None,
        charge: Callable[[Principal, str, float], Awaitable[Pass]] | None = None,
        oauth: OAuthGate | None = None,
    ) -> None:
        self.auth = auth
        self.snapshot = snapshot
        self.pool = pool
        self.codec = codec
        self.record = record
        self.max_body_bytes = max_body_bytes
        self.approvals = approvals
        self.admit = admit
        self.charge = charge
        self.oauth = oauth
        self.in_flight = InFlight()
        self.closing = asyncio.Event()
        self.notices = Notices()
        # A list change nobody's request carried (stdio, SSE): every session reaching the server hears it.
        pool.on_changed = lambda address: self.notices.broadcast(address, _LIST_CHANGED)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        if method == "POST":
            await self._post(scope, headers, receive, send)
        elif method == "GET":
            await self._get(scope, headers, receive, send)
        elif method == "DELETE":
            await self._delete(scope, headers, send)
        else:
            error = McpError(INVALID_REQUEST, f"{method} is not allowed on /mcp; use POST, GET or DELETE.")
            await _send(send, 405, error_body(None, error), [(b"allow", b"POST, GET, DELETE")])

    # -- POST: the stages, in order ---------------------------------------------------------------

    async def _post(self, scope: Scope, headers: dict[str, str], receive: Receive, send: Send) -> None:
        message: Message | None = None
        extra: list[tuple[bytes, bytes]] = []
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            message = parse_message(body)
            snapshot = self.snapshot()
            principal = await self._authenticate(scope, headers, snapshot)
            era = _era(headers, message)
            if era == "modern":
                _check_routing_headers(headers, message)
            endpoint = self._endpoint(scope, snapshot, principal)
            ctx = methods.CallContext(principal, snapshot.mcp, endpoint, era)
            ctx.origin = _origin(headers, message)
            ctx.trace = _trace(ctx.origin.traceparent)
            ctx.rules = snapshot.mcp.rules_for(principal.workspace_id, principal.key_id)
            ctx.rules += snapshot.oauth.rules_for(principal)  # an OAuth claim rule's limits
            if era == "legacy" and message.method != "initialize":
                ctx.session = self._session(headers, principal, endpoint)
                ctx.session_id = headers["mcp-session-id"]
            if not message.is_request:
                await _send(send, 202, b"", [])
                return
            if message.method == "initialize":
                result, token = await self._initialize(ctx, message)
                extra = [(b"mcp-session-id", token.encode())]
            elif _progress_token(message) and "text/event-stream" in headers.get("accept", ""):
                await self._with_progress(ctx, message, send)
                return
            else:
                result = await self._answer(ctx, message)
            await _send(send, 200, result_body(message.id, result), _JSON + extra)
        except McpError as exc:
            status = exc.http_status
            await _send(send, status, error_body(message.id if message else None, exc), _JSON)
        except AuthenticationFailed as exc:
            await _refuse(send, message.id if message else None, exc)
        except BodyTooLarge as exc:
            await _send(send, 413, error_body(None, McpError(INVALID_REQUEST, exc.message)), _JSON)

    async def _authenticate(self, scope: Scope, headers: dict[str, str], snapshot: Snapshot) -> Principal:
        """A Lockgate key; or, once OAuth issuers are configured, also a bearer JWT from one."""
        if self.oauth is None or not snapshot.oauth.issuers:
            return self.auth.authenticate(headers, snapshot)
        return await self.oauth.authenticate(scope, headers, snapshot, self.auth)

    def _endpoint(self, scope: Scope, snapshot: Snapshot, principal: Principal) -> McpServer | None:
        address = scope["path"].rstrip("/")[len("/mcp") :].lstrip("/")
        if not address:
            return None
        server = snapshot.mcp.resolve(address)
        if server is None or not server.usable_by(principal.workspace_id, principal.key_id):
            # Same answer for "absent" and "not yours": names of other teams' servers do not leak.
            raise McpError(UNKNOWN_SERVER, f"No MCP server {address!r} here.", http_status=404)
        return server

    def _session(
        self, headers: dict[str, str], principal: Principal, endpoint: McpServer | None
    ) -> SessionState:
        token = headers.get("mcp-session-id")
        if not token:
            raise McpError(
                INVALID_REQUEST,
                "Missing Mcp-Session-Id: send initialize first (or use protocol 2026-07-28).",
                http_status=400,
            )
        try:
            state = self.codec.decode(token)
        except InvalidSession as exc:
            raise McpError(
                INVALID_REQUEST, f"Unknown session ({exc}); initialize again.", http_status=404
            ) from None
        here = endpoint.address if endpoint is not None else ""
        if state.key_id != principal.key_id or state.endpoint != here:
            raise McpError(
                INVALID_REQUEST, "This session belongs to another key or endpoint.", http_status=404
            )
        return state

    async def _initialize(self, ctx: methods.CallContext, message: Message) -> tuple[dict[str, Any], str]:
        if ctx.era == "modern":
            raise McpError(
                INVALID_REQUEST, "initialize is not part of protocol 2026-07-28; use server/discover."
            )
        asked = message.params.get("protocolVersion")
        version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSION
        principal = ctx.principal
        state = SessionState(
            principal.key_id,
            principal.workspace_id,
            ctx.endpoint.address if ctx.endpoint is not None else "",
            version,
        )
        servers = ctx.servers()
        await asyncio.gather(*(self._open_upstream(server, state) for server in servers))
        result = {
            "protocolVersion": version,
            "capabilities": _CAPABILITIES,
            "serverInfo": _SERVER_INFO,
            "instructions": _instructions(ctx, servers),
        }
        return result, self.codec.encode(state)

    async def _open_upstream(self, server: McpServer, state: SessionState) -> None:
        """The caller's own upstream session, and the pins of what its tools look like now."""
        timeout = min(server.timeout_s, _SESSION_SETUP_TIMEOUT)
        upstream = self.pool.get(server)
        session = await upstream.open_session(timeout_s=timeout)
        if session is not None:
            state.upstream[server.address] = session
        if server.pin_policy != "off":
            try:
                listing = await asyncio.wait_for(self.pool.tools(server), timeout)
            except (McpError, TimeoutError):
                return
            for tool, digest in listing.hashes.items():
                state.pins[f"{server.address}{SEPARATOR}{tool}"] = digest

    async def _answer(self, ctx: methods.CallContext, message: Message) -> dict[str, Any]:
        result = await self._dispatch(ctx, message)
        return _modern_result(message.method, result) if ctx.era == "modern" else result

    async def _with_progress(self, ctx: methods.CallContext, message: Message, send: Send) -> None:
        """A request that asked for progress: its progress notifications stream before the answer
        (the spec's place for notifications about a request, in both eras); JSON when none came."""
        notes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        ctx.progress = notes.put_nowait
        result = await streams.progress_then_answer(send, message.id, self._answer(ctx, message), notes)
        if result is not None:
            await _send(send, 200, result_body(message.id, result), _JSON)

    async def _dispatch(self, ctx: methods.CallContext, message: Message) -> dict[str, Any]:
        method, params = message.method, message.params
        if method == "ping":
            return {}
        if method == "server/discover":
            return {
                "supportedVersions": [MODERN_VERSION],
                "capabilities": _CAPABILITIES,
                "instructions": _instructions(ctx, ctx.servers()),
                "_meta": {"io.modelcontextprotocol/serverInfo": _SERVER_INFO},
            }
        if method in methods.LISTS:
            return await methods.gather_list(ctx, method, self._fetch(ctx), self.pool.tools)
        if method in methods.ROUTED:
            return await self._routed(ctx, method, params)
        if ctx.endpoint is not None and method not in ("initialize",):
            # Everything else (completion, logging level ...) passes through to the one server.
            return await self._fetch(ctx)(ctx.endpoint, method, _strip_meta(params))
        raise McpError(METHOD_NOT_FOUND, f"Method not found: {method}")

    def _fetch(self, ctx: methods.CallContext) -> Callable[..., Any]:
        async def fetch(server: McpServer, method: str, params: dict[str, Any]) -> dict[str, Any]:
            upstream = self.pool.get(server)
            call = upstream.request(
                method,
                params,
                timeout_s=server.timeout_s,
                session=ctx.upstream_session(server),
                notify=self._relay(ctx, server),
            )
            return await self.in_flight.run(server.address, None, call)

        return fetch

    def _relay(self, ctx: methods.CallContext, server: McpServer) -> Notify | None:
        """What the server says while answering: progress onto the request's own stream when the
        caller asked for it, the rest to the caller's GET stream (handshake era)."""
        session, progress = ctx.session_id, ctx.progress
        if session is None and progress is None:
            return None
        address = server.address

        def relay(message: dict[str, Any]) -> None:
            if progress is not None and message.get("method") == "notifications/progress":
                progress(message)
            elif session is not None:
                self.notices.post(session, address, methods.prefixed_notice(ctx, server, message))

        return relay

    async def _routed(self, ctx: methods.CallContext, method: str, params: dict[str, Any]) -> dict[str, Any]:
        started = time.time()
        record = ToolCallRecord(
            id=uuid.uuid4().hex,
            created_at=started,
            method=method,
            key_id=ctx.principal.key_id,
            workspace_id=ctx.principal.workspace_id,
            session=ctx.era,
            tool=params.get(methods.ROUTED[method])
            if isinstance(params.get(methods.ROUTED[method]), str)
            else None,
        )
        if ctx.trace is not None:
            record.trace_id, record.span_id = ctx.trace
        record.origin = ctx.origin
        if method == "tools/call":
            record.arguments = redact(params.get("arguments"))
        gate: Pass | None = None  # the tool's price, reserved on the caller's budgets
        guard: ToolGuard | None = None  # the server's guardrails on arguments and result
        sent = False
        try:
            server, inner = methods.routed_target(ctx, method, params)
            record.server, record.server_version, record.tool = server.name, server.version, inner
            methods.check_routed(ctx, method, server, inner, params)
            if method == "tools/call":
                cached = self.pool.cached(server)
                methods.pin_verdict(ctx, server, inner, cached.hashes.get(inner) if cached else None)
                await self._action_policies(ctx, server, inner, params.get("arguments") or {}, record.id)
                guard = self._tool_guard(ctx, server, inner)
                if guard is not None and isinstance(params.get("arguments"), dict):
                    await guard.arguments(params["arguments"])  # rewritten in place before it goes upstream
                gate = await self._reserve_price(ctx, server, inner, record)
            forwarded = _strip_meta(methods.unprefixed_params(ctx, method, params, inner))
            call = self.pool.get(server).request(
                method,
                forwarded,
                timeout_s=server.timeout_s,
                session=ctx.upstream_session(server),
                notify=self._relay(ctx, server),
            )
            sent = True
            result: dict[str, Any] = await self.in_flight.run(
                server.address, inner if method == "tools/call" else None, call
            )
            if guard is not None:
                await guard.result(result)
            record.status = "tool_error" if result.get("isError") else "ok"
            record.result_bytes = _size(result)
            return methods.prefixed_result(ctx, server, result)
        except McpError as exc:
            record.status = exc.status_name
            record.error_code, record.error_message = exc.code, exc.message
            raise
        except Exception as exc:  # a bug here must still answer JSON-RPC and leave a record
            log.exception("MCP %s failed inside the gateway", method)
            record.status, record.error_code = "error", INTERNAL_ERROR
            raise McpError(INTERNAL_ERROR, "Internal error in Lockgate.") from exc
        finally:
            if gate is not None:
                # A call that reached the server costs its price, whatever it answered; one
                # refused or cut before it was sent costs nothing.
                record.cost_usd = record.cost_usd if sent else None
                await gate.settle_charge(record.cost_usd or 0.0)
            record.latency_ms = (time.time() - started) * 1000
            record.verdicts = ctx.verdicts or None
            self.record(record)

    def _tool_guard(self, ctx: methods.CallContext, server: McpServer, tool: str) -> ToolGuard | None:
        guardrails = tool_guard.attached(server, self.snapshot().guardrails)
        if guardrails is None:
            return None
        return ToolGuard(guardrails, server, tool, ctx.principal.metadata, ctx.verdicts)

    async def _action_policies(
        self, ctx: methods.CallContext, server: McpServer, tool: str, args: dict[str, Any], call_id: str
    ) -> None:
        """The first action policy that matches decides: allow, deny, or hold for approval; every
        matching limit counts the call (a denied call is not counted; a held one is, before it waits)."""
        principal = ctx.principal
        policies = ctx.registry.policies_for(principal.workspace_id, principal.key_id)
        if not policies:
            return
        who = {
            "key": principal.key_id,
            "key_name": principal.key_name,
            "workspace": principal.workspace_id,
            "metadata": dict(principal.metadata),
        }
        decision, limits = decide(policies, server=server.name, tool=tool, args=args, principal=who)
        if decision.policy is None:
            if limits:
                await self._tool_limits(ctx, limits, tool, call_id)
            return
        verdict = decision.verdict
        ctx.verdicts.append(verdict)
        name = decision.policy.name
        if decision.action == "deny":
            why = f" (its condition could not be evaluated: {decision.error})" if decision.error else ""
            raise McpError(FORBIDDEN, f"Denied by the tool policy {name!r}{why}.", {"policy": name})
        if limits:
            await self._tool_limits(ctx, limits, tool, call_id)
        if decision.action == "require_approval":
            if self.approvals is None:
                raise McpError(
                    FORBIDDEN, f"The tool policy {name!r} needs an approval queue.", {"policy": name}
                )
            verdict["approval"] = await self.approvals.wait(
                decision.policy, principal, server.name, tool, redact(args)
            )
            verdict["verdict"] = "approved"

    async def _reserve_price(
        self, ctx: methods.CallContext, server: McpServer, tool: str, record: ToolCallRecord
    ) -> Pass | None:
        """Reserve the tool's price (``tool_costs``) on the caller's hard budgets; None when it is free."""
        price = server.price(tool)
        if price <= 0 or self.charge is None:
            return None
        try:
            gate = await self.charge(ctx.principal, record.id, price)
        except BudgetExceeded as exc:
            ctx.verdicts.append({"check": "budget", "verdict": "deny", "price_usd": price})
            raise McpError(BUDGET_EXCEEDED, exc.message, {"price_usd": price}) from None
        except LimitsUnavailable as exc:
            raise McpError(RATE_LIMITED, exc.message, {"price_usd": price}) from None
        record.cost_usd = price
        return gate

    async def _tool_limits(
        self, ctx: methods.CallContext, limits: tuple[ToolPolicy, ...], tool: str, call_id: str
    ) -> None:
        """One atomic counters call for every matching limit: all count the call, or none does."""
        principal = ctx.principal
        windows = []
        for policy in limits:
            assert policy.limit_calls is not None and policy.limit_window is not None
            scope = principal.workspace_id if policy.limit_by == "workspace" else principal.key_id
            key = f"mcp:{policy.name}:{policy.limit_by}:{scope}:{policy.limit_window}"
            seconds = WINDOWS[policy.limit_window]
            windows.append(WindowCheck(key, seconds, policy.limit_calls, 1, policy.name))
        if self.admit is None:
            raise McpError(RATE_LIMITED, "Tool rate limits apply but this gateway has no counters.")
        try:
            admission = await self.admit(call_id, tuple(windows))
        except LimitsUnavailable as exc:
            raise McpError(RATE_LIMITED, exc.message, {"limits": [p.name for p in limits]}) from None
        refusal = admission.refusal
        if refusal is None:
            ctx.verdicts.extend(
                {"check": "tool_limit", "limit": p.name, "verdict": "counted", "remaining": left}
                for p, left in zip(limits, admission.remaining, strict=True)
            )
            return
        policy = next(p for p in limits if p.name == refusal.ident)
        ctx.verdicts.append({"check": "tool_limit", "limit": policy.name, "verdict": "deny"})
        retry = f"; retry in {refusal.retry_after:.0f}s" if refusal.retry_after is not None else ""
        raise McpError(
            RATE_LIMITED,
            f"Rate limit {policy.name!r} reached: at most {policy.limit_calls} {tool} calls per "
            f"{policy.limit_window} per {policy.limit_by}{retry}.",
            {"limit": policy.name, "retry_after": refusal.retry_after},
        )

    # -- GET and DELETE (handshake era) ------------------------------------------------------------

    async def _get(self, scope: Scope, headers: dict[str, str], receive: Receive, send: Send) -> None:
        """The server-to-client stream: the session's notices as they come, until the client or the
        worker goes, or ``_GET_STREAM_S`` passes."""
        try:
            snapshot = self.snapshot()
            principal = await self._authenticate(scope, headers, snapshot)
            endpoint = self._endpoint(scope, snapshot, principal)
            state = self._session(headers, principal, endpoint)
            rules = snapshot.mcp.rules_for(principal.workspace_id, principal.key_id)
            rules += snapshot.oauth.rules_for(principal)
            ctx = methods.CallContext(principal, snapshot.mcp, endpoint, "legacy", state, rules=rules)
            ctx.session_id = headers["mcp-session-id"]
        except McpError as exc:
            await _send(
                send, exc.http_status if exc.http_status != 200 else 400, error_body(None, exc), _JSON
            )
            return
        except AuthenticationFailed as exc:
            await _refuse(send, None, exc)
            return
        box = self.notices.box(headers["mcp-session-id"])
        servers = ctx.servers()
        box.addresses.update(s.address for s in servers)
        # The upstreams' own GET streams of the caller's upstream sessions, while this one is open.
        listening = [
            asyncio.ensure_future(self._listen(ctx, server, state.upstream[server.address]))
            for server in servers
            if server.address in state.upstream
        ]
        try:
            await streams.notices(send, receive, box, self.closing, _GET_STREAM_S)
        finally:
            for task in listening:
                task.cancel()

    async def _listen(self, ctx: methods.CallContext, server: McpServer, session: str) -> None:
        relay = self._relay(ctx, server)
        assert relay is not None  # ctx has the caller's session id
        try:
            await self.pool.get(server).listen(session, relay)
        except (McpError, aiohttp.ClientError, ValueError) as exc:  # nothing to hear: the stream is all
            log.info("no server-side stream from %s for a session: %s", server.address, exc)

    async def _delete(self, scope: Scope, headers: dict[str, str], send: Send) -> None:
        try:
            snapshot = self.snapshot()
            principal = await self._authenticate(scope, headers, snapshot)
            endpoint = self._endpoint(scope, snapshot, principal)
            state = self._session(headers, principal, endpoint)
        except McpError as exc:
            await _send(
                send, exc.http_status if exc.http_status != 200 else 400, error_body(None, exc), _JSON
            )
            return
        except AuthenticationFailed as exc:
            await _refuse(send, None, exc)
            return
        for address, session in state.upstream.items():
            server = snapshot.mcp.by_address.get(address)
            if server is not None:
                await self.pool.get(server).close_session(session, timeout_s=min(server.timeout_s, 5.0))
        # The id stays decodable (it is stateless); ending it means its upstream sessions are gone.
        await _send(send, 200, b"", [])


def _era(headers: dict[str, str], message: Message) -> str:
    version = headers.get("mcp-protocol-version")
    meta = message.params.get("_meta")
    if version is None and isinstance(meta, dict):
        version = meta.get(_META_VERSION)
    if version == MODERN_VERSION or message.method == "server/discover":
        return "modern"
    if version is not None and version not in HANDSHAKE_VERSIONS:
        raise McpError(
            UNSUPPORTED_PROTOCOL_VERSION,
            f"Unsupported protocol version {version!r}; supported: {[*HANDSHAKE_VERSIONS, MODERN_VERSION]}.",
            {"supported": [*HANDSHAKE_VERSIONS, MODERN_VERSION]},
            http_status=400,
        )
    return "legacy"


def _check_routing_headers(headers: dict[str, str], message: Message) -> None:
    """2026-07-28: Mcp-Method (and Mcp-Name for named methods) must say what the body says."""
    if not message.is_request:
        return
    said = headers.get("mcp-method")
    if said != message.method:
        raise McpError(
            HEADER_MISMATCH,
            f"Mcp-Method header {said!r} does not match the body's method {message.method!r}.",
            http_status=400,
        )
    key = methods.ROUTED.get(message.method)
    if key is not None and headers.get("mcp-name") != message.params.get(key):
        raise McpError(
            HEADER_MISMATCH,
            f"Mcp-Name header {headers.get('mcp-name')!r} does not match params.{key} "
            f"{message.params.get(key)!r}.",
            http_status=400,
        )


def _origin(headers: dict[str, str], message: Message) -> McpOrigin:
    """The caller's trace context (``params._meta`` first, as the MCP semantic conventions
    propagate it, then the HTTP header), JSON-RPC id, session and protocol version."""
    meta = message.params.get("_meta")
    meta = meta if isinstance(meta, dict) else {}
    traceparent = meta.get("traceparent")
    return McpOrigin(
        traceparent=traceparent if isinstance(traceparent, str) else headers.get("traceparent"),
        request_id=str(message.id) if message.id is not None else None,
        session_token=headers.get("mcp-session-id"),
        protocol_version=headers.get("mcp-protocol-version") or _str(meta.get(_META_VERSION)),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _trace(traceparent: str | None) -> tuple[str, str] | None:
    """W3C ``traceparent``: the record joins the caller's trace with a span id of its own
    (with tracing on, telemetry replaces both with its exported span's)."""
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    if parts[1] == "0" * 32:
        return None
    return parts[1], secrets.token_hex(8)


def _progress_token(message: Message) -> bool:
    meta = message.params.get("_meta")
    return isinstance(meta, dict) and meta.get("progressToken") is not None


def _modern_result(method: str, result: dict[str, Any]) -> dict[str, Any]:
    """2026-07-28 results say they are complete; list results carry cache hints (never shared:
    what a caller sees depends on its key)."""
    extra: dict[str, Any] = {"resultType": "complete"}
    if method in methods.LISTS or method == "server/discover":
        extra.update(cacheScope="private", ttlMs=0)
    return {**result, **{k: v for k, v in extra.items() if k not in result}}


def _strip_meta(params: dict[str, Any]) -> dict[str, Any]:
    """The caller's envelope stays here; each upstream gets the one its own era needs."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return params
    kept = {k: v for k, v in meta.items() if not k.startswith("io.modelcontextprotocol/")}
    return {**{k: v for k, v in params.items() if k != "_meta"}, **({"_meta": kept} if kept else {})}


def _instructions(ctx: methods.CallContext, servers: list[McpServer]) -> str:
    if ctx.endpoint is not None:
        return ctx.endpoint.description
    names = ", ".join(s.name for s in servers) or "none"
    return f"Lockgate MCP gateway. Tools are named server{SEPARATOR}tool. Servers: {names}."


def _size(result: dict[str, Any]) -> int:
    return len(orjson.dumps(result))


async def _refuse(send: Send, message_id: Any, exc: AuthenticationFailed) -> None:
    """401 (or an OAuth 403/503) with the challenge that tells the client how to authenticate."""
    if isinstance(exc, OAuthRefused):
        status, code, www = exc.status, exc.rpc_code, exc.challenge
    else:
        status, code, www = 401, INVALID_REQUEST, 'Bearer realm="lockgate"'
    headers = [(b"www-authenticate", www.encode("latin-1"))] if www else []
    await _send(send, status, error_body(message_id, McpError(code, exc.message)), _JSON + headers)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
