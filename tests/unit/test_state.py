"""The state backends, one suite over memory and Redis (a real private Redis server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lockgate.state import KeyValueStore, StateUnavailable, open_store
from lockgate.state.memory import MemoryStore
from tests.gateway_harness import free_port


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[KeyValueStore]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    backend = open_store(url, max_bytes=1 << 20, max_entries=100)
    assert backend.name == request.param
    yield backend
    await backend.close()


async def test_set_get_delete(store: KeyValueStore) -> None:
    await store.set("t:a", b"\x00binary\xff", 30)
    assert await store.get("t:a") == b"\x00binary\xff"
    await store.set("t:a", b"second", 30)
    assert await store.get("t:a") == b"second"
    await store.delete("t:a")
    assert await store.get("t:a") is None
    assert await store.get("t:never") is None


async def test_entries_expire(store: KeyValueStore) -> None:
    await store.set("t:short", b"x", 0.05)
    await store.set("t:long", b"y", 30)
    await asyncio.sleep(0.15)
    assert await store.get("t:short") is None and await store.get("t:long") == b"y"


async def test_memory_store_is_an_lru_bounded_by_entries_and_bytes() -> None:
    store = MemoryStore(max_bytes=1600, max_entries=3)
    for key in "abc":
        await store.set(key, b"." * 10, 30)
    await store.get("a")  # a is now the most recently used
    await store.set("d", b"." * 10, 30)
    assert await store.get("b") is None and await store.get("a") is not None and len(store) == 3
    await store.set("big", b"." * 101, 30)  # over 1/16 of the byte budget: never stored
    assert await store.get("big") is None
    for key in "efgh":
        await store.set(key, b"." * 100, 30)
    assert store.bytes <= 1600 and len(store) <= 3


async def test_redis_outage_is_state_unavailable() -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0", max_bytes=1, max_entries=1)
    with pytest.raises(StateUnavailable):
        await store.get("t:x")
    with pytest.raises(StateUnavailable):
        await store.set("t:x", b"1", 10)
    await store.close()
