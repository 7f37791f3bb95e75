"""The spend ledger on SQLite and PostgreSQL: batched appends, seed totals, bounded by compaction."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from lockgate.store import ledger
from lockgate.store.db import Store
from lockgate.store.ledger import LedgerRow, PeriodDays
from lockgate.store.tables import spend_ledger

DAY = 86400.0
TODAY = 20_000  # a day number; day * DAY is its midnight
NOW = TODAY * DAY + 3600 * 12
PERIODS = PeriodDays({"d": TODAY, "w": TODAY - 3, "a": None})


async def _rows(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(spend_ledger))).scalar_one())


async def test_totals_sum_each_period_and_name_each_writers_last_flush(store: Store) -> None:
    await ledger.append(
        store.engine,
        [LedgerRow("key:a", TODAY, 0.5, 100, 2), LedgerRow("key:a", TODAY - 2, 0.25, 50, 1)],
        writer="w1",
        flush=1,
        at=NOW,
    )
    await ledger.append(
        store.engine, [LedgerRow("key:a", TODAY - 10, 1.0, 9, 1)], writer="w1", flush=2, at=NOW
    )
    await ledger.append(store.engine, [LedgerRow("ws:b", TODAY, 2.0, 7, 1)], writer="w2", flush=1, at=NOW)
    await ledger.append(store.engine, [], writer="w3", flush=4, at=NOW)  # an empty flush still counts
    values, writers = await ledger.totals(store.engine, PERIODS)
    assert values == {"key:a": {"d": 0.5, "w": 0.75, "a": 1.75}, "ws:b": {"d": 2.0, "w": 2.0, "a": 2.0}}
    assert writers == {"w1": 2, "w2": 1, "w3": 4}
    series = await ledger.daily(store.engine, "key:a", TODAY - 5)
    assert series == [
        {"day": TODAY - 2, "cost_usd": 0.25, "tokens": 50, "requests": 1},
        {"day": TODAY, "cost_usd": 0.5, "tokens": 100, "requests": 2},
    ]


async def test_compaction_folds_old_rows_and_keeps_every_total(store: Store) -> None:
    old = NOW - 2 * 3600
    for flush in range(1, 31):  # thirty flushes an hour or more ago, today and yesterday
        rows = [LedgerRow("key:a", TODAY, 0.01, 1, 1), LedgerRow("key:a", TODAY - 1, 0.02, 2, 1)]
        await ledger.append(store.engine, rows, writer="w1", flush=flush, at=old)
    for flush in range(31, 36):  # recent: left alone
        await ledger.append(
            store.engine, [LedgerRow("key:a", TODAY, 0.1, 1, 1)], writer="w1", flush=flush, at=NOW
        )
    for flush in range(1, 6):  # past a 30-day retention: one lifetime row
        rows = [LedgerRow("ws:x", TODAY - 100 - flush, 1.0, 1, 1), LedgerRow("ws:x", TODAY, 0.5, 1, 1)]
        await ledger.append(store.engine, rows, writer="w2", flush=flush, at=old)
    before = await ledger.totals(store.engine, PERIODS)
    assert await _rows(store) == 75

    removed = await ledger.compact(store.engine, now=NOW, keep_days=30)
    assert removed == 70  # all but the five recent rows...
    assert await _rows(store) == 9  # ...which stay, beside key:a today/yesterday, ws:x lifetime/today
    after = await ledger.totals(store.engine, PERIODS)
    assert after[1] == before[1]  # compaction never touches which flushes a seed holds
    for scope, fields in before[0].items():
        for name, value in fields.items():
            assert abs(after[0][scope][name] - value) < 1e-9
    assert await ledger.compact(store.engine, now=NOW, keep_days=30) == 0  # nothing left to fold


async def test_concurrent_compactions_fold_once(store: Store) -> None:
    for flush in range(1, 21):
        rows = [LedgerRow("org:o", TODAY, 0.05, 1, 1)]
        await ledger.append(store.engine, rows, writer="w1", flush=flush, at=NOW - 7200)
    other = Store(store.url)
    try:
        await asyncio.gather(
            ledger.compact(store.engine, now=NOW, keep_days=30),
            ledger.compact(other.engine, now=NOW, keep_days=30),
        )
    finally:
        await other.close()
    values, _ = await ledger.totals(store.engine, PERIODS)
    assert abs(values["org:o"]["a"] - 1.0) < 1e-9
    assert await _rows(store) == 1
