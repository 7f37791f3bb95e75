"""Legacy HTTP+SSE upstreams (protocol 2024-11-05): one GET event stream, POSTs to its endpoint.

The stream's first ``endpoint`` event names where to POST; answers come back as
``message`` events on the stream and are matched to waiting calls by the
gateway-assigned id. One stream per worker and server version, reopened on the
next request after it drops; calls waiting on a dropped stream fail at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson

from lockgate.mcp.jsonrpc import REQUEST_TIMEOUT, UPSTREAM_ERROR, McpError
from lockgate.mcp.upstream.base import CLIENT_INFO, Notify, answer_of, next_id

log = logging.getLogger("lockgate.mcp")
_SSE_VERSION = "2024-11-05"


class SseUpstream:
    def __init__(
        self, name: str, url: str, headers: Mapping[str, str], http: Callable[[], aiohttp.ClientSession]
    ) -> None:
        self.name = name
        self.url = url
        self._headers = dict(headers)
        self._http = http
        self._endpoint: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[str] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
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
        # ``notify`` goes unused: one shared stream carries every caller's notifications, so none
        # can be attributed; list changes still reach callers through the pool (upstreams.py).
        request_id = next_id()
        try:
            async with asyncio.timeout(timeout_s):
                endpoint = await self._connected()
                return answer_of(await self._call(endpoint, request_id, method, params), self.name)
        except TimeoutError:
            self._waiting.pop(request_id, None)
            raise McpError(
                REQUEST_TIMEOUT, f"{self.name} did not answer {method} within {timeout_s:g}s."
            ) from None
        except aiohttp.ClientError as exc:
            self._waiting.pop(request_id, None)
            raise McpError(UPSTREAM_ERROR, f"{self.name} is unreachable: {type(exc).__name__}.") from None
        except asyncio.CancelledError:
            self._waiting.pop(request_id, None)
            raise

    async def open_session(self, *, timeout_s: float) -> str | None:
        return None

    async def listen(self, session: str, notify: Notify) -> None:
        return None  # no sessions of callers' own here (see ``request`` on notifications)

    async def close_session(self, session: str, *, timeout_s: float) -> None:
        return None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._endpoint = None
        self._fail_all("the connection was closed")

    async def _connected(self) -> str:
        if self._endpoint is not None and self._reader is not None and not self._reader.done():
            return self._endpoint
        async with self._lock:
            if self._endpoint is not None and self._reader is not None and not self._reader.done():
                return self._endpoint
            self._ready = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(self._ready), name=f"mcp-sse-{self.name}")
            endpoint = await self._ready
            params = {"protocolVersion": _SSE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
            answer_of(await self._call(endpoint, next_id(), "initialize", params), self.name)
            await self._post(endpoint, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            self._endpoint = endpoint
            return endpoint

    async def _call(
        self, endpoint: str, request_id: int, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        await self._post(endpoint, {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await future

    async def _post(self, endpoint: str, message: dict[str, Any]) -> None:
        headers = {**self._headers, "content-type": "application/json"}
        async with self._http().post(endpoint, data=orjson.dumps(message), headers=headers) as response:
            await response.read()
            if response.status >= 400:
                raise McpError(UPSTREAM_ERROR, f"{self.name} answered HTTP {response.status}.")

    async def _read(self, ready: asyncio.Future[str]) -> None:
        headers = {**self._headers, "accept": "text/event-stream"}
        try:
            async with self._http().get(self.url, headers=headers) as response:
                if response.status >= 400:
                    raise McpError(UPSTREAM_ERROR, f"{self.name} answered HTTP {response.status}.")
                event, data = "message", []
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        self._event(event, "\n".join(data), ready)
                        event, data = "message", []
            raise McpError(UPSTREAM_ERROR, f"{self.name} closed its event stream.")
        except (McpError, aiohttp.ClientError) as exc:
            error = exc if isinstance(exc, McpError) else McpError(UPSTREAM_ERROR, f"{self.name}: {exc}")
            if not ready.done():
                ready.set_exception(error)
            self._fail_all(error.message)
        finally:
            self._endpoint = None

    def _event(self, event: str, data: str, ready: asyncio.Future[str]) -> None:
        if event == "endpoint":
            if not ready.done():
                ready.set_result(urljoin(self.url, data))
            return
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        if "id" in message and ("result" in message or "error" in message):
            future = self._waiting.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)
        elif message.get("method") == "notifications/tools/list_changed" and self.on_list_changed:
            self.on_list_changed()

    def _fail_all(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(McpError(UPSTREAM_ERROR, reason))
