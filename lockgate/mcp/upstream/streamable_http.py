"""Streamable HTTP upstreams, both protocol eras, as raw JSON-RPC over the worker's aiohttp session.

The era is found once per connection: a ``server/discover`` probe; a server that
does not answer it is a handshake-era server. Handshake-era servers get one pooled
session per worker (initialized lazily, re-initialized on 404) for callers that
carry no session of their own, and ``open_session`` for legacy callers whose
composite session id carries their own upstream session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from lockgate.mcp.jsonrpc import REQUEST_TIMEOUT, UPSTREAM_ERROR, McpError
from lockgate.mcp.upstream.base import (
    CLIENT_INFO,
    HANDSHAKE_VERSION,
    MODERN_VERSION,
    Notify,
    answer_of,
    next_id,
)

log = logging.getLogger("lockgate.mcp")
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_META_CLIENT = "io.modelcontextprotocol/clientInfo"
_META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
_NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class SessionGone(Exception):
    """The upstream answered 404 for a session id: it expired or the server restarted."""


class StreamableHttpUpstream:
    def __init__(
        self, name: str, url: str, headers: Mapping[str, str], http: Callable[[], aiohttp.ClientSession]
    ) -> None:
        self.name = name
        self.url = url
        self._headers = {
            **headers,
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        self._http = http
        self.modern: bool | None = None
        self._pooled: str | None = None
        self._lock = asyncio.Lock()
        self.on_list_changed: Callable[[], None] | None = None

    async def request(
        self,
        method: str,
        params: dict[str, Any],
        *,
        timeout_s: float,
        session: str | None = None,
        notify: Notify | None = None,
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout_s):
                await self._ensure_era()
                if self.modern:
                    return await self._modern(method, params, notify)
                if session is not None:
                    try:
                        return await self._post(method, params, session, notify)
                    except SessionGone:
                        log.info("%s: the caller's upstream session expired; using the pooled one", self.name)
                try:
                    return await self._post(method, params, await self._pooled_session(), notify)
                except SessionGone:
                    self._pooled = None
                    return await self._post(method, params, await self._pooled_session(), notify)
        except TimeoutError:
            raise McpError(
                REQUEST_TIMEOUT, f"{self.name} did not answer {method} within {timeout_s:g}s."
            ) from None
        except aiohttp.ClientError as exc:
            raise McpError(UPSTREAM_ERROR, f"{self.name} is unreachable: {type(exc).__name__}.") from None

    async def open_session(self, *, timeout_s: float) -> str | None:
        try:
            async with asyncio.timeout(timeout_s):
                await self._ensure_era()
                return None if self.modern else await self._initialize()
        except (TimeoutError, aiohttp.ClientError, McpError) as exc:
            log.warning("%s: no session of its own for a caller (%s); the pooled one serves", self.name, exc)
            return None

    async def close_session(self, session: str, *, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            async with asyncio.timeout(timeout_s):
                headers = {
                    **self._headers,
                    "mcp-session-id": session,
                    "mcp-protocol-version": HANDSHAKE_VERSION,
                }
                async with self._http().delete(self.url, headers=headers) as response:
                    await response.read()

    async def listen(self, session: str, notify: Notify) -> None:
        """The server's own GET stream for a caller's ``session`` (handshake era): what the server says
        outside any request, until the stream ends or the caller's GET stream goes (cancelled)."""
        await self._ensure_era()
        if self.modern:
            return  # 2026-07-28 servers speak outside requests only through subscriptions/listen
        headers = {
            **self._headers,
            "accept": "text/event-stream",
            "mcp-session-id": session,
            "mcp-protocol-version": HANDSHAKE_VERSION,
        }
        forever = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._http().get(self.url, headers=headers, timeout=forever) as response:
            if response.status != 200 or "text/event-stream" not in response.headers.get("content-type", ""):
                await response.read()
                return  # a server without a GET stream (405) has nothing to say outside requests
            told = self._notifier(notify)
            async for message in _events(response):
                if "method" in message and "id" not in message:
                    told(message)

    async def close(self) -> None:
        if self._pooled is not None:
            await self.close_session(self._pooled, timeout_s=2.0)
            self._pooled = None

    async def _ensure_era(self) -> None:
        if self.modern is not None:
            return
        async with self._lock:
            if self.modern is None:
                self.modern = await self._probe()

    async def _probe(self) -> bool:
        body = {"jsonrpc": "2.0", "id": next_id(), "method": "server/discover", "params": _modern_meta({})}
        headers = {**self._headers, "mcp-protocol-version": MODERN_VERSION, "mcp-method": "server/discover"}
        async with self._http().post(self.url, data=orjson.dumps(body), headers=headers) as response:
            if response.status >= 400:
                await response.read()
                if response.status in (401, 403):
                    raise McpError(
                        UPSTREAM_ERROR, f"{self.name} refused the gateway's credentials ({response.status})."
                    )
                return False
            message = await _read_answer(response, body["id"], self._notified)
        result = message.get("result")
        return isinstance(result, dict) and MODERN_VERSION in (result.get("supportedVersions") or ())

    async def _pooled_session(self) -> str:
        if self._pooled is None:
            async with self._lock:
                if self._pooled is None:
                    self._pooled = await self._initialize()
        return self._pooled

    async def _initialize(self) -> str:
        params = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
        body = {"jsonrpc": "2.0", "id": next_id(), "method": "initialize", "params": params}
        async with self._http().post(self.url, data=orjson.dumps(body), headers=self._headers) as response:
            _check_status(self.name, response)
            session = response.headers.get("mcp-session-id")
            answer_of(await _read_answer(response, body["id"], self._notified), self.name)
        if session is None:
            raise McpError(UPSTREAM_ERROR, f"{self.name} gave no Mcp-Session-Id on initialize.")
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        headers = {**self._headers, "mcp-session-id": session, "mcp-protocol-version": HANDSHAKE_VERSION}
        async with self._http().post(self.url, data=orjson.dumps(note), headers=headers) as response:
            await response.read()
        return session

    async def _post(
        self, method: str, params: dict[str, Any], session: str, notify: Notify | None = None
    ) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": next_id(), "method": method, "params": params}
        headers = {**self._headers, "mcp-session-id": session, "mcp-protocol-version": HANDSHAKE_VERSION}
        try:
            async with self._http().post(self.url, data=orjson.dumps(body), headers=headers) as response:
                if response.status == 404:
                    await response.read()
                    raise SessionGone(session)
                _check_status(self.name, response)
                answer = await _read_answer(response, body["id"], self._notifier(notify))
                return answer_of(answer, self.name)
        except asyncio.CancelledError:
            # A killed or abandoned call: tell the server (best effort, on the pooled connection).
            asyncio.get_running_loop().create_task(self._cancel(session, body["id"]))
            raise

    async def _modern(self, method: str, params: dict[str, Any], notify: Notify | None) -> dict[str, Any]:
        # 2026-07-28: stateless; the routing headers must agree with the body.
        body = {"jsonrpc": "2.0", "id": next_id(), "method": method, "params": _modern_meta(params)}
        headers = {**self._headers, "mcp-protocol-version": MODERN_VERSION, "mcp-method": method}
        named = _NAMED.get(method)
        if named is not None and isinstance(params.get(named), str):
            headers["mcp-name"] = params[named]
        # Closing the response is the modern era's cancellation: a cancelled task does just that.
        async with self._http().post(self.url, data=orjson.dumps(body), headers=headers) as response:
            if response.status >= 400 and "json" not in response.headers.get("content-type", ""):
                _check_status(self.name, response)
            return answer_of(await _read_answer(response, body["id"], self._notifier(notify)), self.name)

    async def _cancel(self, session: str, request_id: int) -> None:
        note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        headers = {**self._headers, "mcp-session-id": session, "mcp-protocol-version": HANDSHAKE_VERSION}
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                async with self._http().post(self.url, data=orjson.dumps(note), headers=headers) as response:
                    await response.read()

    def _notified(self, message: dict[str, Any]) -> None:
        if message.get("method") == "notifications/tools/list_changed" and self.on_list_changed is not None:
            self.on_list_changed()

    def _notifier(self, notify: Notify | None) -> Notify:
        """The pool hears list changes first (its cache goes stale), then the caller everything."""
        if notify is None:
            return self._notified

        def both(message: dict[str, Any]) -> None:
            self._notified(message)
            notify(message)

        return both


def _modern_meta(params: dict[str, Any]) -> dict[str, Any]:
    meta = dict(params.get("_meta") or {})
    meta[_META_VERSION] = MODERN_VERSION
    meta.setdefault(_META_CLIENT, CLIENT_INFO)
    meta.setdefault(_META_CAPABILITIES, {})  # required by 2026-07-28 servers on every request
    return {**params, "_meta": meta}


def _check_status(name: str, response: aiohttp.ClientResponse) -> None:
    if response.status in (401, 403):
        raise McpError(UPSTREAM_ERROR, f"{name} refused the gateway's credentials ({response.status}).")
    if response.status >= 400:
        raise McpError(UPSTREAM_ERROR, f"{name} answered HTTP {response.status}.")


async def _read_answer(
    response: aiohttp.ClientResponse, request_id: int, notified: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """The JSON-RPC response to ``request_id`` from a JSON body or an SSE stream."""
    if "text/event-stream" not in response.headers.get("content-type", ""):
        try:
            message = orjson.loads(await response.read())
        except orjson.JSONDecodeError:
            raise McpError(UPSTREAM_ERROR, "The upstream answer is not JSON.") from None
        if not isinstance(message, dict):
            raise McpError(UPSTREAM_ERROR, "The upstream answer is not a JSON-RPC object.")
        return message
    async for message in _events(response):
        if message.get("id") == request_id and ("result" in message or "error" in message):
            return message
        if "method" in message and "id" not in message:
            notified(message)
    raise McpError(UPSTREAM_ERROR, "The upstream closed its event stream before answering.")


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC objects of an SSE stream, one per event (events that are not JSON are skipped)."""
    data: list[bytes] = []
    async for raw in response.content:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            try:
                message = orjson.loads(b"\n".join(data))
            except orjson.JSONDecodeError:
                message = None
            data.clear()
            if isinstance(message, dict):
                yield message
