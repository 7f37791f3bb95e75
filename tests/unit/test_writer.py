import asyncio
from pathlib import Path

from lockgate.store.db import Store
from lockgate.telemetry.records import RequestRecord
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
