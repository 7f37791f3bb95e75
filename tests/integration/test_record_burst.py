"""5,000 requests through the real gateway while the store is slow and at first down: no record lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from lockgate.testing.mock_provider import MockProviderThread
from tests.gateway_harness import GatewayThread, demo_config
from tests.unit.test_writer import FlakyStore

BURST = 5000
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def _burst(url: str) -> list[str]:
    ids: list[str] = []
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(_: int) -> None:
            async with session.post(url + "/v1/chat/completions", json=CHAT) as response:
                assert response.status == 200, await response.text()
                ids.append(response.headers["x-lockgate-request-id"])

        await asyncio.gather(*(one(i) for i in range(BURST)))
    return ids


def test_burst_with_a_slow_failing_store_loses_no_record(tmp_path: Path, mock: MockProviderThread) -> None:
    with GatewayThread(
        tmp_path, demo_config(mock.url), demo=True, log_queue_size=300, log_batch_size=100
    ) as gw:
        writer = gw.app.writer
        # The store answers after 30 ms per batch and refuses the first five: the queue overflows.
        writer._store = FlakyStore(gw.app.store, failures=5, delay=0.03)
        writer._backoff_base = 0.02
        ids = asyncio.run(_burst(gw.url))
        gw.run(writer.drain(), timeout=120)
        stored = {r["id"] for r in gw.records()}
        assert writer.spilled > 0 and writer.dropped == 0 and writer.failed_flushes >= 5
    assert len(ids) == BURST and set(ids) <= stored
