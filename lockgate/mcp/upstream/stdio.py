"""stdio upstreams: one spawned process per worker and server version, newline-delimited JSON-RPC.

Only allow-listed executables are spawned (``LOCKGATE_MCP_STDIO_COMMANDS``; checked
at registration and again here). Requests are multiplexed over the one process by
gateway-assigned ids; a process that dies is restarted on the next request, and
every waiting call fails at once rather than hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from lockgate.mcp.jsonrpc import FORBIDDEN, REQUEST_TIMEOUT, UPSTREAM_ERROR, McpError
from lockgate.mcp.registry import stdio_allowed
from lockgate.mcp.upstream.base import CLIENT_INFO, HANDSHAKE_VERSION, Notify, answer_of, next_id

log = logging.getLogger("lockgate.mcp")
_LINE_LIMIT = 16 * 1024 * 1024


class StdioUpstream:
    def __init__(self, name: str, command: tuple[str, ...], env: Mapping[str, str], allow_list: str) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.allow_list = allow_list
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
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
                await self._ensure_started()
                return answer_of(await self._call(request_id, method, params), self.name)
        except TimeoutError:
            self._forget(request_id)
            raise McpError(
                REQUEST_TIMEOUT, f"{self.name} did not answer {method} within {timeout_s:g}s."
            ) from None
        except asyncio.CancelledError:
            self._forget(request_id)
            raise

    async def open_session(self, *, timeout_s: float) -> str | None:
        return None  # the process is the session

    async def listen(self, session: str, notify: Notify) -> None:
        return None  # no sessions of callers' own here (see ``request`` on notifications)

    async def close_session(self, session: str, *, timeout_s: float) -> None:
        return None

    async def close(self) -> None:
        process, self._process = self._process, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(3):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self._fail_all("the connection was closed")

    async def _ensure_started(self) -> None:
        if self._process is not None and self._process.returncode is None:
            return
        async with self._lock:
            if self._process is not None and self._process.returncode is None:
                return
            if not stdio_allowed(self.command, self.allow_list):
                raise McpError(
                    FORBIDDEN,
                    f"{self.name}: {self.command[:1]} is not on LOCKGATE_MCP_STDIO_COMMANDS; not spawned.",
                )
            await self.close()
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *self.command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    env={**os.environ, **self.env},
                    limit=_LINE_LIMIT,
                )
            except OSError as exc:
                raise McpError(UPSTREAM_ERROR, f"{self.name} could not be started: {exc.strerror}.") from None
            self._reader = asyncio.create_task(self._read(self._process), name=f"mcp-stdio-{self.name}")
            params = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
            answer_of(await self._call(next_id(), "initialize", params), self.name)
            await self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def _call(self, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        await self._write({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await future

    async def _write(self, message: dict[str, Any]) -> None:
        process = self._process
        if process is None or process.stdin is None:
            raise McpError(UPSTREAM_ERROR, f"{self.name} is not running.")
        try:
            process.stdin.write(orjson.dumps(message) + b"\n")
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise McpError(UPSTREAM_ERROR, f"{self.name} exited.") from None

    def _forget(self, request_id: int) -> None:
        if self._waiting.pop(request_id, None) is not None and self._process is not None:
            note = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": request_id},
            }
            with contextlib.suppress(Exception):
                assert self._process.stdin is not None
                self._process.stdin.write(orjson.dumps(note) + b"\n")

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while line := await process.stdout.readline():
                try:
                    message = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # servers may log to stdout; only JSON-RPC lines count
                if not isinstance(message, dict):
                    continue
                if "id" in message and ("result" in message or "error" in message):
                    future = self._waiting.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("method") == "notifications/tools/list_changed" and self.on_list_changed:
                    self.on_list_changed()
        except (ValueError, ConnectionError) as exc:
            log.warning("%s: reading stdout failed: %s", self.name, exc)
        self._fail_all(f"{self.name} exited (code {process.returncode})")

    def _fail_all(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(McpError(UPSTREAM_ERROR, reason))
