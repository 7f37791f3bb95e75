"""Retention: request records older than N days are deleted in the background, in batches.

Small batches keep each delete transaction short (no long lock on the table,
no huge WAL/undo), with a pause between them so the writer and readers keep
going. Minute rollups are kept for hours, hour rollups for longer than the
records they summarise (they are small), so trends outlive the raw log.
Every worker may run this; the deletes are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from lockgate.store.logs import LogStore
from lockgate.telemetry.rollups import HOUR

log = logging.getLogger("lockgate.telemetry")
DAY = 86_400.0


class Retention:
    def __init__(
        self,
        logs: LogStore,
        *,
        days: float,
        rollup_days: float,
        minute_rollup_hours: float,
        interval: float = 3600.0,
        batch: int = 5000,
        pause: float = 0.05,
    ) -> None:
        self.logs = logs
        self.days = days
        self.rollup_days = rollup_days
        self.minute_rollup_hours = minute_rollup_hours
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self.deleted = 0
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, now: float | None = None) -> int:
        """One pass: delete expired records batch by batch, then prune rollups. Returns records deleted."""
        now = time.time() if now is None else now
        deleted = 0
        if self.days > 0:
            cutoff = now - self.days * DAY
            while True:
                n = await self.logs.delete_before(cutoff, batch=self.batch)
                deleted += n
                if n < self.batch:
                    break
                await asyncio.sleep(self.pause)
        hour_cut = now - max(self.rollup_days, self.days) * DAY if self.rollup_days > 0 else 0.0
        await self.logs.prune_rollups(
            minute_before=now - self.minute_rollup_hours * HOUR, hour_before=hour_cut
        )
        self.deleted += deleted
        return deleted

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="lockgate-retention")

    async def _loop(self) -> None:
        await asyncio.sleep(min(60.0, self.interval))  # not in the middle of start-up
        while True:
            try:
                deleted = await self.run_once()
                if deleted:
                    log.info("retention deleted %d request records", deleted)
            except Exception:
                log.exception("retention pass failed; trying again next interval")
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
