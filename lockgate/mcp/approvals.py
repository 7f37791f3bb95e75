"""Calls held for a human: a ``require_approval`` policy parks the call here until an admin decides.

How a decision reaches the worker holding the call (any worker, any replica): the waiting call
is an ``mcp_approvals`` row, created in an audited config change by the worker that holds the
call; ``POST /admin/v1/mcp/approvals/{id}/approve|reject`` updates the row in another audited
change. Every change bumps the config version, which reaches every worker as a snapshot notice
(Redis pub/sub, or the next poll); on each notice this queue re-reads the rows of the calls it
holds and wakes the ones decided. A slow poll of the same rows backs up a lost notice, and the
deadline (the policy's ``approval_timeout_s``) is checked against the stored ``expires_at``.

Waiting is an ``asyncio`` future: nothing blocks the loop. The queue is bounded per worker
(``max_waiting``); a call past the bound is refused at once rather than parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lockgate.governance.auth import Principal
from lockgate.mcp.action_policy import ToolPolicy
from lockgate.mcp.jsonrpc import APPROVAL_PENDING_LIMIT, APPROVAL_REJECTED, APPROVAL_TIMEOUT, McpError
from lockgate.store.control import MCP_APPROVAL, AuditActor, ControlStore

log = logging.getLogger("lockgate.mcp")

_POLL_S = 5.0  # the backstop when a notice is lost; notices normally wake a call first


class ApprovalQueue:
    def __init__(
        self,
        control: ControlStore,
        changed: Callable[[int | None], Awaitable[None]],
        *,
        max_waiting: int = 100,
        poll_s: float = _POLL_S,
    ) -> None:
        self.control = control
        self.changed = changed
        self.max_waiting = max_waiting
        self.poll_s = poll_s
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._checks: set[asyncio.Task[None]] = set()

    async def wait(
        self,
        policy: ToolPolicy,
        principal: Principal,
        server: str,
        tool: str,
        arguments: Any,
    ) -> str:
        """Park the call until approved (returns the approval id); raises when rejected or expired."""
        if len(self.waiting) >= self.max_waiting:
            raise McpError(
                APPROVAL_PENDING_LIMIT,
                f"The policy {policy.name!r} needs approval, and {self.max_waiting} calls already wait "
                "on this worker; try again later.",
                {"policy": policy.name},
            )
        expires_at = time.time() + policy.approval_timeout_s
        actor = AuditActor(principal.key_id, f"mcp key {principal.key_name}")
        async with self.control.change(actor) as tx:
            row = await tx.create(
                MCP_APPROVAL,
                {
                    "policy": policy.name,
                    "workspace_id": principal.workspace_id,
                    "key_id": principal.key_id,
                    "server": server,
                    "tool": tool,
                    "arguments": arguments,
                    "status": "pending",
                    "expires_at": expires_at,
                },
                action="request",
            )
        approval_id = str(row["id"])
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[approval_id] = future
        try:
            await self.changed(tx.version)
            decided = await self._until_decided(approval_id, future, expires_at)
        finally:
            self.waiting.pop(approval_id, None)
        if decided is None:
            await self._expire(approval_id)
            raise McpError(
                APPROVAL_TIMEOUT,
                f"The call waited {policy.approval_timeout_s:g}s for approval under the policy "
                f"{policy.name!r} and nobody decided; it was not made.",
                {"policy": policy.name, "approval": approval_id},
            )
        if decided["status"] != "approved":
            reason = f": {decided['reason']}" if decided.get("reason") else ""
            raise McpError(
                APPROVAL_REJECTED,
                f"The call was rejected by {decided.get('decided_by') or 'an admin'} under the policy "
                f"{policy.name!r}{reason}.",
                {"policy": policy.name, "approval": approval_id},
            )
        return approval_id

    async def _until_decided(
        self, approval_id: str, future: asyncio.Future[dict[str, Any]], expires_at: float
    ) -> dict[str, Any] | None:
        while True:
            left = expires_at - time.time()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(future), min(left, self.poll_s))
            row = await self.control.get(MCP_APPROVAL, approval_id)
            if row is not None and row["status"] != "pending":
                return row

    def notice(self) -> None:
        """A new config version: look at the rows of the calls held here (off the caller's path)."""
        if not self.waiting:
            return
        task = asyncio.get_running_loop().create_task(self._check())
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check(self) -> None:
        for approval_id, future in list(self.waiting.items()):
            try:
                row = await self.control.get(MCP_APPROVAL, approval_id)
            except Exception:  # the poll retries; a failed read must not kill the listener
                log.exception("reading approval %s failed", approval_id)
                return
            if row is not None and row["status"] != "pending" and not future.done():
                future.set_result(row)

    async def _expire(self, approval_id: str) -> None:
        try:
            async with self.control.change(AuditActor("mcp", "approval timeout")) as tx:
                row = await tx.require(MCP_APPROVAL, approval_id)
                if row["status"] == "pending":
                    await tx.update(MCP_APPROVAL, approval_id, {"status": "expired"}, action="expire")
            await self.changed(tx.version if tx.changed else None)
        except Exception:  # the caller is answered either way; the row stays pending past expires_at
            log.exception("marking approval %s expired failed", approval_id)
