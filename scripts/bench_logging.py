"""What request logging costs on the full pipeline: RPS and latency with records on and off.

Starts the mock provider and ``lockgate serve --demo`` (one worker) as processes,
drives non-streaming chat requests at a fixed concurrency for a fixed time, and
prints RPS and latency percentiles for LOCKGATE_LOG_REQUESTS=1 and 0. Metrics
are on in both runs (they are always on); tracing is off. A script, not a test.

    python scripts/bench_logging.py [--seconds 15] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


async def load(url: str, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                async with session.post(url, json=BODY) as reply:
                    await reply.read()
                    assert reply.status == 200
                latencies.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies


def run(log: bool, mock_url: str, seconds: float, concurrency: int) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "LOCKGATE_MOCK_URL": mock_url,
            "LOCKGATE_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "LOCKGATE_LOG_REQUESTS": "1" if log else "0",
        }
        args = ["serve", "--port", str(port), "--demo", "--config", "examples/demo.yaml"]
        gateway = subprocess.Popen([sys.executable, "-m", "lockgate", *args], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait(f"http://127.0.0.1:{port}/readyz")
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            asyncio.run(load(url, 2, concurrency))  # warm-up
            count, latencies = asyncio.run(load(url, seconds, concurrency))
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        finally:
            gateway.terminate()
            gateway.wait(10)
    latencies.sort()
    pick = lambda q: latencies[int(q * (len(latencies) - 1))]  # noqa: E731
    return {"rps": count / seconds, "p50": pick(0.5), "p99": pick(0.99),
            "queued": ready["records_queued"], "dropped": ready["records_dropped"]}  # fmt: skip


def per_record_cost(n: int = 20_000) -> None:
    """CPU per record in one process (steadier than RPS on a shared machine): the request path's
    part (metrics + queue) and the writer's (row, rollup deltas, SQLite batch with rollups)."""
    from lockgate.store.db import Store
    from lockgate.telemetry.hub import Telemetry
    from lockgate.telemetry.metrics import Metrics
    from lockgate.telemetry.records import AttemptRecord, RequestRecord
    from lockgate.telemetry.writer import RecordWriter

    async def go() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/cost.db")
            await store.migrate()
            writer = RecordWriter(store, batch_size=500, max_queued=n + 1)
            hub = Telemetry(writer, Metrics(), None, lambda: 1)
            now = time.time()
            records = []
            for i in range(n):
                r = RequestRecord(
                    id=f"req_{i}", created_at=now + i / 3000, endpoint="chat", workspace_id="ws_default",
                    key_id="key_1", requested_model="gpt-4o-mini", provider="openai", model="gpt-4o-mini",
                    status=200, prompt_tokens=12, completion_tokens=30, cost_usd=0.0001,
                    usage_source="reported", metadata={"env": "prod", "feature": "chat"},
                )  # fmt: skip
                r.attempt_log.append(AttemptRecord("@openai/gpt-4o-mini", 200, 2.0))
                r.finish(2.5)
                records.append(r)
            t = time.process_time()
            for r in records:
                hub.put(r)
            put = time.process_time() - t
            t, wall = time.process_time(), time.perf_counter()
            await writer.flush()
            flush, flush_wall = time.process_time() - t, time.perf_counter() - wall
            await store.close()
        print(
            f"per record: request path (metrics + queue) {put / n * 1e6:.1f} us CPU; writer"
            f" {flush / n * 1e6:.1f} us CPU ({flush_wall / n * 1e6:.1f} us wall) on SQLite"
        )

    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    per_record_cost()
    mock_port = free_port()
    mock = subprocess.Popen([sys.executable, "-m", "lockgate", "mock-provider", "--port", str(mock_port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait(f"http://127.0.0.1:{mock_port}/__mock/health")
        for log in (False, True, False, True):  # interleaved, to see the noise
            r = run(log, f"http://127.0.0.1:{mock_port}", args.seconds, args.concurrency)
            state = "on " if log else "off"
            print(
                f"records {state}: {r['rps']:7.0f} RPS  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
                f"  (queued at end {r['queued']}, dropped {r['dropped']})"
            )
    finally:
        mock.terminate()
        mock.wait(10)


if __name__ == "__main__":
    main()
