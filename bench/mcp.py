"""MCP scenario: tools/call pass-through, direct to the mock MCP server vs through Lockgate.

Run: .venv/bin/python bench/mcp.py [--requests N] [--concurrency C]

Starts the mock MCP server and `lockgate serve` (one worker, key auth and tool-call records on)
as separate processes, pinned to different cores when `taskset` exists, and drives 2026-07-28
stateless POSTs (`tools/call lookup_order`) with an aiohttp client from this process:
- added latency: p50/p99 at concurrency 1, gateway minus direct;
- calls per second through the gateway at concurrency C (the gateway process on one core), and
  the gateway's own CPU per call (from /proc), i.e. calls per core-second whatever bounds the run.
The mock is an SDK server and slower than the gateway; throughput is bounded by it too, so the
direct figure is printed alongside.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import orjson
import yaml

KEY = "lg-bench-mcp-key-0123456789abcdef"
TOKEN = "bench-upstream-token"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(args: list[str], env: dict[str, str], core: int | None) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", str(core)] if core is not None and shutil.which("taskset") else []
    cmd = [*prefix, sys.executable, "-m", "lockgate", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


def _body(i: int) -> bytes:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    params = {"name": "lookup_order", "arguments": {"order_id": "A-1001"}, "_meta": meta}
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params})


async def _run(url: str, headers: dict[str, str], n: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            for i in counter:
                started = time.perf_counter()
                async with http.post(url, data=_body(i), headers=headers) as reply:
                    payload = await reply.read()
                    assert reply.status == 200 and b'"result"' in payload, payload[:200]
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux), so calls per core-second need no idle core to measure."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lockgate-bench-mcp-"))
    mock_port, gw_port = _free_port(), _free_port()
    config = {
        "keys": [{"name": "bench", "key": KEY}],
        "mcp_servers": [{"name": "orders", "url": f"http://127.0.0.1:{mock_port}/mcp", "secret": TOKEN}],
    }
    (tmp / "lockgate.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "LOCKGATE_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}"}
    cores = os.cpu_count() or 1
    mock = _spawn(["mock-mcp", "--port", str(mock_port), "--token", TOKEN], env, 0 if cores > 1 else None)
    gateway = _spawn(
        ["serve", "--port", str(gw_port), "--config", str(tmp / "lockgate.yaml")],
        env,
        1 if cores > 1 else None,
    )
    try:
        _wait(f"http://127.0.0.1:{mock_port}/mcp")
        _wait(f"http://127.0.0.1:{gw_port}/healthz")
        modern = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": "tools/call",
            "mcp-name": "lookup_order",
        }
        direct = (f"http://127.0.0.1:{mock_port}/mcp", {**modern, "authorization": f"Bearer {TOKEN}"})
        via = (f"http://127.0.0.1:{gw_port}/mcp/orders", {**modern, "authorization": f"Bearer {KEY}"})
        warm = min(200, args.requests)
        for url, headers in (direct, via):
            asyncio.run(_run(url, headers, warm, 1))
        one_direct, _ = asyncio.run(_run(*direct, args.requests, 1))
        one_via, _ = asyncio.run(_run(*via, args.requests, 1))
        _, direct_s = asyncio.run(_run(*direct, args.requests, args.concurrency))
        cpu_before = _cpu_seconds(gateway.pid)
        _, via_s = asyncio.run(_run(*via, args.requests, args.concurrency))
        gateway_cpu = _cpu_seconds(gateway.pid) - cpu_before
    finally:
        for process in (gateway, mock):
            process.terminate()
            process.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    p50 = statistics.median(one_via) - statistics.median(one_direct)
    p99 = _pct(one_via, 0.99) - _pct(one_direct, 0.99)
    print(f"tools/call pass-through, {args.requests} calls")
    print(
        f"  concurrency 1: direct p50 {statistics.median(one_direct):.2f} ms"
        f" p99 {_pct(one_direct, 0.99):.2f} ms;"
        f" via Lockgate p50 {statistics.median(one_via):.2f} ms p99 {_pct(one_via, 0.99):.2f} ms"
    )
    print(f"  added latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(
        f"  concurrency {args.concurrency}: direct {args.requests / direct_s:.0f} calls/s,"
        f" via Lockgate (one worker, one core) {args.requests / via_s:.0f} calls/s"
    )
    print(
        f"  gateway CPU: {gateway_cpu * 1e6 / args.requests:.0f} us per call ="
        f" {args.requests / gateway_cpu:.0f} calls per core-second"
    )


if __name__ == "__main__":
    main()
