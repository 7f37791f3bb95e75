"""The batched record writer: requests append to memory, a background task writes.

Invariants:
- ``put`` never awaits and never touches the database; it is O(1).
- The buffer is bounded; past the bound records are counted in ``dropped``
  (the observability issue adds spilling them to a local file).
- A failed flush keeps its batch for the next try, within the bound.
- ``close`` flushes what is left, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from lockgate.store.db import Store
from lockgate.telemetry.records import RequestRecord, ToolCallRecord

log = logging.getLogger("lockgate.telemetry")


class RecordWriter:
    def __init__(
        self, store: Store, *, batch_size: int = 500, flush_interval: float = 1.0, max_queued: int = 100_000
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queued = max_queued
        self._buffer: list[RequestRecord | ToolCallRecord] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.written = 0
        self.dropped = 0
        self.failed_flushes = 0

    def put(self, record: RequestRecord | ToolCallRecord) -> None:
        if len(self._buffer) >= self._max_queued:
            self.dropped += 1
            return
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    @property
    def queued(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lockgate-record-writer")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()
            await self.flush()

    async def flush(self) -> None:
        async with self._flush_lock:
            while self._buffer:
                batch = self._buffer[: self._batch_size]
                del self._buffer[: len(batch)]
                try:
                    await self._write(batch)
                except Exception:
                    self.failed_flushes += 1
                    log.exception("writing %d request records failed; will retry", len(batch))
                    room = self._max_queued - len(self._buffer)
                    self.dropped += max(0, len(batch) - room)
                    self._buffer[:0] = batch[: max(0, room)]
                    return
                self.written += len(batch)

    async def _write(self, batch: list[RequestRecord | ToolCallRecord]) -> None:
        # Tool calls share the queue (one writer, one bound) and land in their own table.
        await self._store.insert_request_records([r.to_row() for r in batch if isinstance(r, RequestRecord)])
        await self._store.insert_tool_call_records(
            [r.to_row() for r in batch if isinstance(r, ToolCallRecord)]
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
