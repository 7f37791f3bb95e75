"""The batched record writer: requests append to memory, a background task writes.

Invariants:
- ``put`` never awaits and never touches the database; it is O(1). When the
  in-memory buffer is full it appends the record to the spill file instead
  (a buffered write to the page cache), and only past the spill file's bound is
  a record lost, counted in ``dropped``.
- A batch is written with its rollups in one transaction; a failed batch stays
  (at the front of the buffer, or in the spill file when the buffer is full)
  and the writer backs off exponentially, with jitter, before the next try.
- Once the buffer is drained and the store answers, spilled records are
  replayed (deduplicated by id), including files left by a process that died.
- ``close`` flushes what is left; if the store is down then, the rest goes to
  the spill file, so a graceful shutdown loses nothing.
- MCP tool-call records share the queue, the bound and the spill file; their
  rows are marked (``TOOL_CALL_MARK``) and land in their own table, in the
  same transaction as the request records of their batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

from lockgate.telemetry.records import TOOL_CALL_MARK, RequestRecord, ToolCallRecord
from lockgate.telemetry.spill import SpillFile

log = logging.getLogger("lockgate.telemetry")


class RecordStore(Protocol):
    async def insert_request_records(
        self, rows: Sequence[dict[str, Any]], *, dedupe: bool = False
    ) -> int: ...


class RecordWriter:
    def __init__(
        self,
        store: RecordStore,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queued: int = 100_000,
        spill: SpillFile | None = None,
        backoff_base: float = 0.1,
        backoff_max: float = 30.0,
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queued = max_queued
        self._spill = spill
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._buffer: list[RequestRecord | ToolCallRecord] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._failures = 0  # consecutive failed writes: drives the backoff
        self._last_error_log = 0.0
        self.written = 0
        self.spilled = 0
        self.replayed = 0
        self.dropped = 0
        self.failed_flushes = 0

    def put(self, record: RequestRecord | ToolCallRecord) -> None:
        if len(self._buffer) >= self._max_queued:
            self._overflow(_row(record))
            return
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    def _overflow(self, row: dict[str, Any]) -> None:
        if self._spill is not None and self._spill.write(row):
            self.spilled += 1
        else:
            self.dropped += 1

    @property
    def queued(self) -> int:
        return len(self._buffer)

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lockgate-record-writer")

    def backoff(self) -> float:
        """Seconds to wait after ``_failures`` failed writes in a row (full jitter over an exponential)."""
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** min(self._failures - 1, 30))
        return ceiling * (0.5 + random.random() / 2)

    async def _run(self) -> None:
        while True:
            if self._failures:
                await asyncio.sleep(self.backoff())
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()
            try:
                if await self.flush() and await self.replay():
                    self._wakeup.set()  # more may wait: catch up without sleeping a full interval
            except Exception:  # never let the writer task die; the next round retries
                log.exception("record writer round failed")

    async def flush(self) -> bool:
        """Write the buffer out in batches; False when the store failed (the rest is kept)."""
        async with self._flush_lock:
            return await self._flush_locked()

    async def _flush_locked(self) -> bool:
        while self._buffer:
            batch = self._buffer[: self._batch_size]
            del self._buffer[: len(batch)]
            try:
                await self._store.insert_request_records([_row(r) for r in batch])
            except Exception as exc:
                self._failed(exc, len(batch))
                room = self._max_queued - len(self._buffer)
                self._buffer[:0] = batch[: max(0, room)]
                for record in batch[max(0, room) :]:
                    self._overflow(_row(record))
                return False
            self._failures = 0
            self.written += len(batch)
        return True

    async def replay(self, *, limit_files: int = 1) -> bool:
        """Catch up on spilled records while the buffer has room; True when a file was finished."""
        if self._spill is None:
            return False
        finished = False
        for _ in range(limit_files):
            async with self._flush_lock:  # one replay at a time: a claimed file has one reader
                if self._buffer or not self._spill.has_work():
                    return finished
                path = self._spill.claim()
                if path is None:
                    return finished
                for rows in SpillFile.read(path, self._batch_size):
                    try:
                        written = await self._store.insert_request_records(rows, dedupe=True)
                    except Exception as exc:
                        self._failed(exc, len(rows))
                        return False  # the claimed file stays; the next round starts it again (deduped)
                    self._failures = 0
                    self.replayed += written
                    self.written += written
                    # New records go first: a long replay must not let the live buffer overflow.
                    if len(self._buffer) >= self._batch_size and not await self._flush_locked():
                        return False
                self._spill.done(path)
                finished = True
        return finished

    async def drain(self) -> None:
        """Write everything queued and spilled now (tests, shutdown); stops at a store failure."""
        while await self.flush() and self._spill is not None and self._spill.has_work():
            if not await self.replay() and not self._buffer:
                return

    def _failed(self, exc: Exception, count: int) -> None:
        self._failures += 1
        self.failed_flushes += 1
        now = time.monotonic()
        if now - self._last_error_log > 10:  # one line per 10 s during an outage, not per batch
            self._last_error_log = now
            log.error("writing %d request records failed (%s); backing off and retrying", count, exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.drain()
        # Whatever the store would not take now waits in the spill file for the next start.
        for record in self._buffer:
            self._overflow(_row(record))
        self._buffer.clear()
        if self._spill is not None:
            self._spill.close()


def _row(record: RequestRecord | ToolCallRecord) -> dict[str, Any]:
    row = record.to_row()
    if isinstance(record, ToolCallRecord):
        row[TOOL_CALL_MARK] = True
    return row
