"""Budget alerts: thresholds (50/80/100 % by default) as log events and webhook calls, once per period.

The request path only notices a crossing (a set lookup) and queues it; a
background task claims it in the store (a primary key on budget, scope, period
and threshold, so exactly one process of any replica fires it, restarts
included), logs it, POSTs the webhook with bounded retries, and revokes the key
when the budget says so. A full queue drops alerts with a log line rather than
grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import aiohttp
import orjson

from lockgate.governance.rules import Budget
from lockgate.store import ledger
from lockgate.store.control import API_KEY, AuditActor, ControlStore
from lockgate.store.db import Store

log = logging.getLogger("lockgate.alerts")

_QUEUE_SIZE = 1000
_FIRED_MEMORY = 10_000
_WEBHOOK_ATTEMPTS = 3
_WEBHOOK_TIMEOUT = 5.0

Revoke = Callable[[str, str], Awaitable[None]]  # key id, reason


@dataclass(frozen=True, slots=True)
class AlertEvent:
    budget_id: str
    budget_name: str
    scope: str
    period: str  # the period field: d:20250603, w:20250602, m:202506, a
    threshold: int
    spent_usd: float
    limit_usd: float
    mode: str
    at: float


class Alerts:
    def __init__(
        self,
        store: Store,
        *,
        default_webhook: str | None = None,
        revoke: Revoke | None = None,
        backoff: float = 1.0,
    ) -> None:
        self.store = store
        self.default_webhook = default_webhook
        self.revoke = revoke
        self.backoff = backoff
        self._fired: set[tuple[str, str, str, int]] = set()
        self._queue: asyncio.Queue[tuple[AlertEvent, str | None, bool]] = asyncio.Queue(_QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.dropped = 0

    def observe(
        self, budget: Budget, scope: str, period: str, spent: float, *, exhausted: bool = False
    ) -> None:
        """Queue every threshold ``spent`` has reached (``exhausted``: a hard budget refused a request)."""
        percent = 100.0 if budget.amount <= 0 else spent / budget.amount * 100.0
        if exhausted:
            percent = max(percent, 100.0)
        thresholds = [t for t in budget.thresholds if percent >= t]
        revoke = budget.auto_revoke and percent >= 100.0 and scope.startswith("key:")
        if revoke and 100 not in thresholds:
            thresholds.append(100)
        for threshold in thresholds:
            marker = (budget.id, scope, period, threshold)
            if marker in self._fired:
                continue
            if len(self._fired) >= _FIRED_MEMORY:
                self._fired.clear()  # the store's claim still keeps it once per period
            self._fired.add(marker)
            event = AlertEvent(
                budget.id,
                budget.name,
                scope,
                period,
                threshold,
                round(spent, 10),
                budget.amount,
                "hard" if budget.hard else "soft",
                time.time(),
            )
            try:
                self._queue.put_nowait((event, budget.webhook, revoke and threshold == 100))
            except asyncio.QueueFull:
                self.dropped += 1
                log.error("budget alert queue full; dropped %s", asdict(event))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lockgate-budget-alerts")

    async def _run(self) -> None:
        while True:
            event, webhook, revoke = await self._queue.get()
            try:
                await self._fire(event, webhook, revoke)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("budget alert %s/%s failed", event.budget_id, event.threshold)
            finally:
                self._queue.task_done()

    async def _fire(self, event: AlertEvent, webhook: str | None, revoke: bool) -> None:
        claimed = await ledger.claim_alert(
            self.store.engine,
            budget_id=event.budget_id,
            scope=event.scope,
            period=event.period,
            threshold=event.threshold,
            spent=event.spent_usd,
            at=event.at,
        )
        if not claimed:
            return  # another process (or an earlier run) fired it this period
        payload = {"type": "budget.threshold", **asdict(event)}
        log.warning("budget alert %s", orjson.dumps(payload).decode())
        url = webhook or self.default_webhook
        if url:
            await self._post(url, payload)
        if revoke and self.revoke is not None:
            key_id = event.scope.removeprefix("key:")
            await self.revoke(key_id, f"budget {event.budget_name!r} reached its limit")

    async def _post(self, url: str, payload: dict[str, object]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_WEBHOOK_TIMEOUT))
        for attempt in range(1, _WEBHOOK_ATTEMPTS + 1):
            try:
                async with self._session.post(url, json=payload) as reply:
                    if reply.status < 300:
                        self.sent += 1
                        return
                    problem = f"HTTP {reply.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
            if attempt < _WEBHOOK_ATTEMPTS:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        log.error("budget alert webhook %s failed after %d attempts: %s", url, _WEBHOOK_ATTEMPTS, problem)

    async def drain(self) -> None:
        """Wait until every queued alert is handled (tests, shutdown)."""
        await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None


async def revoke_key(
    control: ControlStore, changed: Callable[[int | None], Awaitable[None]], key_id: str, reason: str
) -> None:
    """Auto-revoke: the same change an admin's revoke makes, audited as the budget's doing."""
    async with control.change(AuditActor("budgets", f"auto-revoke: {reason}")) as tx:
        current = await tx.get(API_KEY, key_id)
        if current is None or current["status"] != "active":
            return
        values = {"status": "revoked", "revoked_at": time.time()}
        await tx.update(API_KEY, key_id, values, action="revoke")
    log.warning("revoked key %s: %s", key_id, reason)
    await changed(tx.version if tx.changed else None)
