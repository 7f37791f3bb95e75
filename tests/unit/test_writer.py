import asyncio
import sys
from pathlib import Path

import orjson
from sqlalchemy import func, select

from lockgate.store.db import Store
from lockgate.store.tables import request_logs, request_rollups
from lockgate.telemetry.records import TOOL_CALL_MARK, RequestRecord, ToolCallRecord
from lockgate.telemetry.spill import SpillFile
from lockgate.telemetry.writer import RecordWriter


def record(i: int) -> RequestRecord:
    return RequestRecord(id=f"req_{i}", created_at=1000.0 + i, endpoint="chat", status=200)


async def test_batches_and_flush_on_close(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    writer = RecordWriter(store, batch_size=10, flush_interval=60, max_queued=1000)
    writer.start()
    for i in range(5):
        writer.put(record(i))
    await asyncio.sleep(0.05)
    assert writer.written == 0  # under a batch: waits for the interval (60 s here)
    for i in range(5, 25):
        writer.put(record(i))
    # A full batch wakes the writer without waiting for the interval; it drains the queue in batches.
    for _ in range(100):
        if writer.written == 25:
            break
        await asyncio.sleep(0.01)
    assert writer.written == 25 and writer.queued == 0
    writer.put(record(25))
    await writer.close()  # flushes what is left
    rows = await store.recent_request_records(100)
    assert [r["id"] for r in rows] == [f"req_{i}" for i in range(26)]
    await store.close()


async def test_bounded_queue_counts_drops(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    writer = RecordWriter(store, batch_size=100, flush_interval=60, max_queued=3)
    for i in range(5):
        writer.put(record(i))
    assert writer.queued == 3 and writer.dropped == 2
    await writer.close()
    await store.close()


async def test_failed_flush_keeps_records(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")  # tables not created yet: inserts fail
    writer = RecordWriter(store, batch_size=100, flush_interval=60, max_queued=10)
    writer.put(record(1))
    await writer.flush()
    assert writer.failed_flushes == 1 and writer.queued == 1
    await store.migrate()
    await writer.flush()
    assert writer.written == 1 and writer.queued == 0
    await store.close()


class FlakyStore:
    """A real store behind a slow link that fails its first ``failures`` writes."""

    def __init__(self, store: Store, *, failures: int = 0, delay: float = 0.0) -> None:
        self.store, self.failures, self.delay = store, failures, delay
        self.calls = 0

    async def insert_request_records(self, rows, *, dedupe: bool = False) -> int:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        return await self.store.insert_request_records(rows, dedupe=dedupe)


async def _stored(store: Store) -> tuple[list[str], int]:
    """Record ids, and the requests counted by the hour rollup totals."""
    async with store.engine.connect() as conn:
        ids = list((await conn.execute(select(request_logs.c.id))).scalars())
        counted = (
            await conn.execute(
                select(func.coalesce(func.sum(request_rollups.c.requests), 0)).where(
                    request_rollups.c.res == 3600, request_rollups.c.dim == "all"
                )
            )
        ).scalar_one()
    return ids, int(counted)


async def test_overflow_spills_to_a_file_and_is_replayed(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    spill = SpillFile(tmp_path / "spill", max_bytes=1 << 20)
    writer = RecordWriter(store, batch_size=10, flush_interval=60, max_queued=5, spill=spill)
    for i in range(12):
        writer.put(record(i))
    assert (writer.queued, writer.spilled, writer.dropped) == (5, 7, 0)
    assert len(list((tmp_path / "spill").glob("records-*.jsonl"))) == 1
    await writer.drain()
    ids, counted = await _stored(store)
    assert sorted(ids) == sorted(f"req_{i}" for i in range(12)) and counted == 12
    assert writer.replayed == 7 and list((tmp_path / "spill").iterdir()) == []
    await writer.close()
    await store.close()


async def test_spill_file_is_bounded_and_losses_are_counted(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    line = len(orjson.dumps(record(0).to_row())) + 1
    spill = SpillFile(tmp_path / "spill", max_bytes=3 * line + line // 2)
    writer = RecordWriter(store, batch_size=10, flush_interval=60, max_queued=2, spill=spill)
    for i in range(10):
        writer.put(record(i))
    assert (writer.queued, writer.spilled, writer.dropped) == (2, 3, 5)
    await writer.close()
    ids, _ = await _stored(store)
    assert len(ids) == 5
    await store.close()


async def test_store_outage_backs_off_then_catches_up(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    flaky = FlakyStore(store, failures=4)
    spill = SpillFile(tmp_path / "spill", max_bytes=1 << 20)
    writer = RecordWriter(
        flaky, batch_size=5, flush_interval=0.01, max_queued=20, spill=spill, backoff_base=0.01
    )
    waits = []
    for failures in range(1, 6):
        writer._failures = failures
        waits.append(max(writer.backoff() for _ in range(50)))
    writer._failures = 0
    assert waits == sorted(waits) and waits[-1] > 4 * waits[0]  # exponential, with jitter below the cap
    writer.start()
    for i in range(100):
        writer.put(record(i))
        if i % 10 == 0:
            await asyncio.sleep(0)
    for _ in range(500):
        if writer.written == 100:
            break
        await asyncio.sleep(0.01)
    await writer.close()
    ids, counted = await _stored(store)
    assert len(ids) == 100 == counted and writer.failed_flushes == 4 and writer.dropped == 0
    await store.close()


async def test_shutdown_during_an_outage_keeps_records_for_the_next_start(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    writer = RecordWriter(
        FlakyStore(store, failures=10**6),
        batch_size=10,
        flush_interval=60,
        spill=SpillFile(tmp_path / "spill", max_bytes=1 << 20),
    )
    for i in range(30):
        writer.put(record(i))
    await writer.close()
    assert writer.spilled == 30 and writer.dropped == 0
    # The next process finds the file of the one that is gone and replays it.
    left = next((tmp_path / "spill").glob("records-*.jsonl"))
    dead = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os; print(os.getpid())", stdout=asyncio.subprocess.PIPE
    )
    pid = (await dead.communicate())[0].decode().strip()
    left.rename(left.with_name(f"records-{pid}-0.jsonl"))
    again = RecordWriter(store, batch_size=10, spill=SpillFile(tmp_path / "spill", max_bytes=1 << 20))
    await again.drain()
    ids, counted = await _stored(store)
    assert len(ids) == 30 == counted
    await again.close()
    await store.close()


async def test_replaying_a_file_twice_counts_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    rows = [record(i).to_row() for i in range(8)]
    assert await store.insert_request_records(rows[:5]) == 5
    # A crash after writing part of a replay: the rows already stored are skipped, rollups too.
    assert await store.insert_request_records(rows, dedupe=True) == 3
    assert await store.insert_request_records(rows, dedupe=True) == 0
    ids, counted = await _stored(store)
    assert len(ids) == 8 == counted
    await store.close()


async def test_burst_of_5000_with_a_slow_store_loses_nothing(tmp_path: Path) -> None:
    """The request path only appends; the slow, at first failing, store catches up afterwards."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    slow = FlakyStore(store, failures=3, delay=0.02)
    writer = RecordWriter(
        slow,
        batch_size=200,
        flush_interval=0.05,
        max_queued=500,
        spill=SpillFile(tmp_path / "spill", max_bytes=64 << 20),
        backoff_base=0.02,
    )
    writer.start()
    for i in range(5000):
        writer.put(record(i))
        if i % 50 == 0:
            await asyncio.sleep(0)  # requests interleave with the writer on one loop
    assert writer.spilled > 0  # the burst outran the store: the overflow went to the file
    for _ in range(2000):
        if writer.written == 5000:
            break
        await asyncio.sleep(0.01)
    await writer.close()
    ids, counted = await _stored(store)
    assert len(ids) == len(set(ids)) == 5000 == counted
    assert writer.dropped == 0 and writer.failed_flushes == 3
    await store.close()


async def test_tool_calls_share_the_queue_and_spill_but_land_in_their_own_table(tmp_path: Path) -> None:
    """MCP tool-call records ride the same writer: batches, overflow to the spill file, deduped
    replay; they go to tool_calls in the batch's transaction, and into rollups of their own
    dimensions only (request totals count requests alone)."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    spill = SpillFile(tmp_path / "spill", max_bytes=1 << 20)
    writer = RecordWriter(store, batch_size=10, flush_interval=60, max_queued=4, spill=spill)
    for i in range(5):
        writer.put(record(i))
        writer.put(ToolCallRecord(id=f"call_{i}", created_at=1000.0 + i, method="tools/call", tool="lookup"))
    assert (writer.queued, writer.spilled, writer.dropped) == (4, 6, 0)
    await writer.drain()
    await writer.drain()  # nothing left: a second pass writes nothing twice
    ids, counted = await _stored(store)
    calls = await store.tool_call_records(limit=100)
    assert sorted(ids) == [f"req_{i}" for i in range(5)] and counted == 5
    assert sorted(c["id"] for c in calls) == [f"call_{i}" for i in range(5)]
    assert {c["tool"] for c in calls} == {"lookup"} and writer.written == 10
    async with store.engine.connect() as conn:
        mcp_counted = (
            await conn.execute(
                select(func.sum(request_rollups.c.requests)).where(
                    request_rollups.c.res == 3600, request_rollups.c.dim == "mcp"
                )
            )
        ).scalar_one()
    assert mcp_counted == 5
    # A replay that meets rows already stored (a crash mid-replay) skips them in both tables.
    rows = [
        {**ToolCallRecord(id="call_0", created_at=1.0, method="tools/call").to_row(), TOOL_CALL_MARK: True}
    ]
    assert await store.insert_request_records([*rows, record(0).to_row()], dedupe=True) == 0
    await writer.close()
    await store.close()
