"""The counters API, one suite over both backends (memory and a real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from lockgate.state.counters import (
    BudgetCheck,
    Charge,
    ConcurrencyCheck,
    Counters,
    TokenSettle,
    Unseeded,
    WindowCheck,
    open_counters,
)

LEASE = 60.0


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/7"
        import redis.asyncio as aioredis

        async with aioredis.Redis.from_url(url) as client:
            await client.flushdb()
        backend = open_counters(url, timeout=2.0)
    else:
        backend = open_counters(None)
    yield backend
    await backend.close()


async def _seeded(counters: Counters, values: dict[str, dict[str, float]] | None = None) -> str:
    token = await counters.begin_seed()
    assert await counters.seed(token, "e1", values or {}, {"w1": 3})
    return "e1"


async def _admit(counters: Counters, req: str, reserve: float = 0.0, **checks: tuple) -> object:
    now = time.time()
    return await counters.admit(
        req,
        now,
        now + LEASE,
        reserve,
        checks.get("budgets", ()),
        checks.get("windows", ()),
        checks.get("slots", ()),
    )


async def test_window_admits_up_to_the_limit_then_says_when_to_retry(counters: Counters) -> None:
    window = (WindowCheck("rl:k:rpm", 60.0, 3, 1, "rpm"),)
    remaining = []
    for n in range(3):
        admission = await _admit(counters, f"r{n}", windows=window)
        assert admission.ticket is not None
        remaining.append(admission.remaining[0])
    assert remaining == [2, 1, 0]
    refused = await _admit(counters, "r3", windows=window)
    assert refused.ticket is None and refused.refusal is not None
    assert refused.refusal.kind == "window" and refused.refusal.ident == "rpm"
    assert refused.refusal.used == 3
    # The first request leaves the window at most one minute and one bucket (1 s) from now.
    assert 0 < refused.refusal.retry_after <= 61.0
    assert await counters.window_count("rl:k:rpm", 60.0, time.time()) == 3


async def test_budget_reserves_the_worst_case_and_settles_the_real_cost(counters: Counters) -> None:
    await _seeded(counters, {"key:a": {"d:20990101": 0.1}})
    budget = (BudgetCheck("key:a", "d:20990101", 1.0, "b1"),)
    first = await _admit(counters, "r1", 0.4, budgets=budget)
    second = await _admit(counters, "r2", 0.4, budgets=budget)
    assert first.ticket and second.ticket
    refused = await _admit(counters, "r3", 0.4, budgets=budget)
    assert refused.refusal and refused.refusal.kind == "budget" and refused.refusal.ident == "b1"
    assert refused.refusal.used == pytest.approx(0.9)
    settled = await counters.settle(first.ticket, time.time(), (Charge("key:a", ("d:20990101",), 0.05),))
    assert settled.epoch == "e1"
    assert settled.values[("key:a", "d:20990101")] == pytest.approx(0.15)
    state = (await counters.read(("key:a",)))["key:a"]
    assert state["r"] == pytest.approx(0.4) and state["d:20990101"] == pytest.approx(0.15)
    assert (await _admit(counters, "r4", 0.4, budgets=budget)).ticket is not None  # 0.15+0.8 fits
    await counters.release(second.ticket)
    state = (await counters.read(("key:a",)))["key:a"]
    assert state["r"] == pytest.approx(0.4) and state["d:20990101"] == pytest.approx(0.15)


async def test_admission_is_all_or_nothing(counters: Counters) -> None:
    await _seeded(counters)
    budget = (BudgetCheck("ws:x", "a", 10.0, "b"),)
    windows = (WindowCheck("rl:a", 60.0, 5, 1, "a"), WindowCheck("rl:b", 60.0, 0, 1, "b"))
    refused = await _admit(counters, "r1", 1.0, budgets=budget, windows=windows, slots=())
    assert refused.refusal and refused.refusal.ident == "b"
    assert (await counters.read(("ws:x",)))["ws:x"].get("r", 0.0) == 0.0
    assert await counters.window_count("rl:a", 60.0, time.time()) == 0


async def test_budgets_need_a_seeded_epoch_windows_do_not(counters: Counters) -> None:
    with pytest.raises(Unseeded):
        await _admit(counters, "r1", 0.1, budgets=(BudgetCheck("org:o", "a", 1.0, "b"),))
    assert (await _admit(counters, "r2", windows=(WindowCheck("w", 60.0, 1, 1, "w"),))).ticket
    settled = await counters.settle(None, time.time(), (Charge("org:o", ("a",), 0.5),))
    assert settled.epoch is None  # nowhere to charge: the spend book keeps it for later


async def test_concurrency_slots_are_taken_and_given_back(counters: Counters) -> None:
    slots = (ConcurrencyCheck("cc:k", 2, "concurrent"),)
    first = await _admit(counters, "r1", slots=slots)
    assert first.ticket and (await _admit(counters, "r2", slots=slots)).ticket
    refused = await _admit(counters, "r3", slots=slots)
    assert refused.refusal and refused.refusal.kind == "concurrency" and refused.refusal.retry_after
    await counters.release(first.ticket)
    assert (await _admit(counters, "r4", slots=slots)).ticket is not None


async def test_token_estimate_is_replaced_by_the_real_count(counters: Counters) -> None:
    def tpm(amount: int) -> tuple[WindowCheck, ...]:
        return (WindowCheck("tpm:k", 60.0, 100, amount, "tpm", tokens=True),)

    first = await _admit(counters, "r1", windows=tpm(60))
    assert first.ticket and first.remaining == (40,)
    assert (await _admit(counters, "r2", windows=tpm(60))).refusal is not None
    await counters.settle(first.ticket, time.time(), (), (TokenSettle("tpm:k", 60.0, 10),))
    assert await counters.window_count("tpm:k", 60.0, time.time()) == 10
    assert (await _admit(counters, "r3", windows=tpm(60))).ticket is not None


async def test_parallel_admissions_never_pass_a_limit(counters: Counters) -> None:
    await _seeded(counters)
    budget = (BudgetCheck("org:o", "a", 1.0, "b"),)
    results = await asyncio.gather(*(_admit(counters, f"r{n}", 0.1, budgets=budget) for n in range(40)))
    assert sum(1 for a in results if a.ticket) == 10
    windows = (WindowCheck("rl:p", 60.0, 7, 1, "rpm"),)
    results = await asyncio.gather(*(_admit(counters, f"q{n}", windows=windows) for n in range(30)))
    assert sum(1 for a in results if a.ticket) == 7


async def test_expired_leases_give_their_reservation_back(counters: Counters) -> None:
    await _seeded(counters)
    budget = (BudgetCheck("key:l", "a", 1.0, "b"),)
    now = time.time()
    held = await counters.admit("r1", now, now + 1.0, 0.8, budget, (), ())
    assert held.ticket and (await _admit(counters, "r2", 0.8, budgets=budget)).refusal
    await asyncio.sleep(1.1)  # the lease (the backend's minimum, one second) runs out
    assert (await _admit(counters, "r3", 0.8, budgets=budget)).ticket is not None


async def test_a_new_period_field_drops_the_old_one(counters: Counters) -> None:
    await _seeded(counters)
    await counters.settle(None, time.time(), (Charge("key:p", ("d:20990101", "a"), 1.0),))
    await counters.settle(None, time.time(), (Charge("key:p", ("d:20990102", "a"), 2.0),))
    assert (await counters.read(("key:p",)))["key:p"] == {"d:20990102": 2.0, "a": 3.0}


async def test_seed_claims_readd_and_reset(counters: Counters) -> None:
    stale = await counters.begin_seed()
    fresh = await counters.begin_seed()
    assert not await counters.seed(stale, "old", {}, {})  # a later claim wins
    assert await counters.seed(fresh, "e2", {"org:o": {"a": 5.0}}, {"w1": 7})
    assert not await counters.seed(fresh, "e3", {}, {})  # an epoch exists
    assert await counters.epoch("w1") == ("e2", 7)
    assert await counters.epoch("w2") == ("e2", 0)
    assert not await counters.readd("other", (Charge("org:o", ("a",), 1.0),))
    assert await counters.readd("e2", (Charge("org:o", ("a",), 1.0),))
    assert (await counters.read(("org:o",)))["org:o"]["a"] == 6.0
    budget = (BudgetCheck("org:o", "a", 100.0, "b"),)
    held = await _admit(counters, "r1", 1.0, budgets=budget)
    await counters.reset("e2")
    assert await counters.epoch("w1") == (None, 0)
    await counters.release(held.ticket)  # the old epoch's reservation goes quietly
    token = await counters.begin_seed()
    assert await counters.seed(token, "e4", {"org:o": {"a": 2.0}}, {})
    assert (await counters.read(("org:o",)))["org:o"] == {"a": 2.0}


# Redis only: the per-request scripts travel in shared pipelines (counters_redis._ScriptBatch).


@pytest.fixture
async def redis_counters(redis_url: str) -> AsyncIterator[tuple[Counters, str]]:
    url = redis_url.rsplit("/", 1)[0] + "/7"
    import redis.asyncio as aioredis

    async with aioredis.Redis.from_url(url) as client:
        await client.flushdb()
    backend = open_counters(url, timeout=2.0)
    yield backend, url
    await backend.close()


async def test_a_burst_larger_than_a_pipeline_is_exact(redis_counters: tuple[Counters, str]) -> None:
    counters, _ = redis_counters
    await _seeded(counters)
    budget = (BudgetCheck("org:o", "a", 30.0, "b"),)
    windows = (WindowCheck("rl:burst", 60.0, 250, 1, "rpm"),)
    results = await asyncio.gather(
        *(_admit(counters, f"r{n}", 0.1, budgets=budget, windows=windows) for n in range(1000))
    )
    admitted = [a for a in results if a.ticket]
    assert len(admitted) == 250  # the window, not the budget (25 USD reserved of 30)
    refusals = {a.refusal.kind for a in results if a.refusal}
    assert refusals == {"window"}
    settled = await asyncio.gather(
        *(counters.settle(a.ticket, time.time(), (Charge("org:o", ("a",), 0.01),)) for a in admitted)
    )
    assert {s.epoch for s in settled} == {"e1"}
    spend = (await counters.read(("org:o",)))["org:o"]
    assert spend["a"] == pytest.approx(2.5)
    assert "r" not in spend  # every reservation released


async def test_scripts_flushed_from_redis_are_loaded_again(redis_counters: tuple[Counters, str]) -> None:
    counters, url = redis_counters
    await _seeded(counters)
    windows = (WindowCheck("rl:flush", 60.0, 100, 1, "rpm"),)
    assert (await _admit(counters, "before", windows=windows)).ticket
    import redis.asyncio as aioredis

    async with aioredis.Redis.from_url(url) as client:
        await client.script_flush()
    results = await asyncio.gather(*(_admit(counters, f"after{n}", windows=windows) for n in range(20)))
    assert all(a.ticket for a in results)
    assert await counters.window_count("rl:flush", 60.0, time.time()) == 21


async def test_an_unreachable_redis_fails_every_waiting_call_promptly() -> None:
    from lockgate.state.counters import CountersUnavailable

    counters = open_counters("redis://127.0.0.1:9/0", timeout=0.2)  # nothing listens on port 9
    try:
        windows = (WindowCheck("rl:down", 60.0, 100, 1, "rpm"),)
        results = await asyncio.wait_for(
            asyncio.gather(
                *(_admit(counters, f"r{n}", windows=windows) for n in range(50)), return_exceptions=True
            ),
            timeout=10,
        )
        assert all(isinstance(r, CountersUnavailable) for r in results)
    finally:
        await counters.close()
