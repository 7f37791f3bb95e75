"""Stage 10 in one call: the finished record goes to the metrics, the trace and the writer
(for request records and, through ``put_tool_call``, MCP tool calls).

The pipeline hands every record to ``Telemetry.put``; nothing here awaits or
touches the store. A background task copies the writer's counters, the
snapshot version and the open circuits into the metrics once a second (each
worker its own, which is what multiprocess mode needs: a scrape answered by one
worker reads them all).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from lockgate.telemetry.metrics import Metrics
from lockgate.telemetry.records import RequestRecord, ToolCallRecord
from lockgate.telemetry.tracing import Tracing
from lockgate.telemetry.writer import RecordWriter


class Telemetry:
    def __init__(
        self,
        writer: RecordWriter,
        metrics: Metrics,
        tracing: Tracing | None,
        config_version: Callable[[], int],
        *,
        store_records: bool = True,
        open_circuits: Callable[[], int] = lambda: 0,
    ) -> None:
        self.writer = writer
        self.store_records = store_records
        self.metrics = metrics
        self.tracing = tracing
        self._config_version = config_version
        self._open_circuits = open_circuits
        self._task: asyncio.Task[None] | None = None

    def put(self, record: RequestRecord) -> None:
        if record.trace is not None:
            record.trace.end(record)
            record.trace = None
        self.metrics.observe(record)
        if self.store_records:
            self.writer.put(record)

    def put_tool_call(self, record: ToolCallRecord, *, known_tool: bool) -> None:
        """A routed MCP call: its span (which stamps the record's trace ids), metrics, and the record.

        Tool calls are the MCP audit trail: stored whatever ``store_records`` (LOCKGATE_LOG_REQUESTS)
        says. ``known_tool``: the server lists the tool (metrics/labels stay bounded).
        """
        if self.tracing is not None:
            self.tracing.tool_call(record)
        self.metrics.observe_tool_call(record, known_tool=known_tool)
        self.writer.put(record)

    def sync_metrics(self) -> None:
        w = self.writer
        self.metrics.sync(
            queued=w.queued,
            written=w.written,
            spilled=w.spilled,
            dropped=w.dropped,
            failures=w.failed_flushes,
            version=self._config_version(),
            open_circuits=self._open_circuits(),
        )

    def render_metrics(self) -> bytes:
        self.sync_metrics()
        return self.metrics.render()

    def start(self) -> None:
        self.writer.start()
        self._task = asyncio.create_task(self._sync_loop(), name="lockgate-metrics-sync")

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.sync_metrics()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.writer.close()
        if self.tracing is not None:
            self.tracing.shutdown()
        self.metrics.close()
