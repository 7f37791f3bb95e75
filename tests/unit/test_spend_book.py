"""The spend book keeps counters equal to the sum of settled spend through counter restarts.

Two books (two gateway processes) share one store and one set of counters; a
"restart" wipes the counters (FLUSHDB on Redis). Whatever was flushed or not,
applied or not, every charge must end up in the counters exactly once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lockgate.governance import spend
from lockgate.governance.periods import all_fields, day_number
from lockgate.governance.spend import UNCERTAIN, SpendBook
from lockgate.state.counters import Charge, Counters, open_counters
from lockgate.store import ledger
from lockgate.store.db import Store
from lockgate.store.ledger import PeriodDays

SCOPE = "org:o"


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Counters, str]]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/8"
        import redis.asyncio as aioredis

        async with aioredis.Redis.from_url(url) as client:
            await client.flushdb()
        backend = open_counters(url, timeout=2.0)
        yield backend, url
    else:
        backend = open_counters(None)
        yield backend, ""
    await backend.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = Store(f"sqlite:///{tmp_path / 'spend.db'}")
    await db.migrate()
    yield db
    await db.close()


async def _restart(counters: Counters, url: str) -> None:
    """Everything in the counters is gone, as after a Redis restart without persistence."""
    if url:
        import redis.asyncio as aioredis

        async with aioredis.Redis.from_url(url) as client:
            await client.flushdb()
    else:
        epoch, _ = await counters.epoch("any")
        assert epoch is not None
        await counters.reset(epoch)


async def _settle(book: SpendBook, counters: Counters, amount: float, *, timed_out: bool = False) -> None:
    """What the governor does for one request: charge the counters, then tell the book."""
    now = time.time()
    charge = Charge(SCOPE, all_fields(now), amount)
    epoch = UNCERTAIN if timed_out else (await counters.settle(None, now, (charge,))).epoch
    book.record([(SCOPE, day_number(now), amount, 10, 1)], [(charge, epoch)])


async def _counted(counters: Counters) -> float:
    return (await counters.read((SCOPE,)))[SCOPE].get("a", 0.0)


async def _ledger_total(store: Store) -> float:
    values, _ = await ledger.totals(store.engine, PeriodDays({"a": None}))
    return values.get(SCOPE, {}).get("a", 0.0)


async def test_counters_survive_a_restart_with_nothing_lost_or_doubled(
    store: Store, counters: tuple[Counters, str]
) -> None:
    backend, url = counters
    a, b = SpendBook(store, backend), SpendBook(store, backend)
    await a.ensure_seeded()
    for _ in range(3):
        await _settle(a, backend, 1.0)
    await a.flush()  # in the ledger before the restart: the next seed holds it
    await _settle(a, backend, 0.5)  # applied, not flushed
    await _settle(b, backend, 2.0)  # the other process: applied, not flushed
    await _restart(backend, url)
    await _settle(a, backend, 0.25)  # lands nowhere: no epoch
    await a.ensure_seeded()  # reseed from the ledger, then a re-adds its own missing charges
    await b.flush()  # b commits after the seed: its charge is in neither seed nor epoch...
    await b.reconcile()  # ...so b re-adds it
    expected = 3.0 + 0.5 + 2.0 + 0.25
    assert await _counted(backend) == pytest.approx(expected)
    await a.reconcile()
    await b.reconcile()  # idempotent
    assert await _counted(backend) == pytest.approx(expected)
    await a.flush()
    assert await _ledger_total(store) == pytest.approx(expected)
    # Once everything is confirmed the books forget it: nothing grows without bound.
    await a.reconcile()
    assert a._closed == [] and b._closed == []


async def test_a_second_restart_counts_flushed_spend_from_the_ledger_only(
    store: Store, counters: tuple[Counters, str]
) -> None:
    backend, url = counters
    book = SpendBook(store, backend)
    await book.ensure_seeded()
    for amount in (0.1, 0.2, 0.3):
        await _settle(book, backend, amount)
        await book.flush()
        await book.reconcile()
    await _restart(backend, url)
    await book.ensure_seeded()
    await _restart(backend, url)
    await book.ensure_seeded()
    assert await _counted(backend) == pytest.approx(0.6)


async def test_a_timed_out_charge_forces_one_reseed(
    store: Store, counters: tuple[Counters, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, _ = counters
    monkeypatch.setattr(spend, "_SUSPECT_GRACE", 0.0)
    book = SpendBook(store, backend)
    await book.ensure_seeded()
    await _settle(book, backend, 1.0)
    # The call timed out on our side but did land: the counters hold it, the book cannot know.
    now = time.time()
    await backend.settle(None, now, (Charge(SCOPE, all_fields(now), 4.0),))
    await _settle(book, backend, 4.0, timed_out=True)
    await book.reconcile()  # drops the epoch instead of guessing
    assert (await backend.epoch(book.writer))[0] is None
    await book.ensure_seeded()
    assert await _counted(backend) == pytest.approx(5.0)


async def test_memory_seed_divides_spend_per_worker(store: Store) -> None:
    now = time.time()
    await ledger.append(
        store.engine, [ledger.LedgerRow(SCOPE, day_number(now), 3.0, 1, 1)], writer="old", flush=1, at=now
    )
    backend = open_counters(None)
    await SpendBook(store, backend, divisor=3).ensure_seeded()
    assert await _counted(backend) == pytest.approx(1.0)
