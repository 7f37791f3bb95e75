"""Micro-benchmark: what the routing layer costs per request, next to plain pass-through.

Run: .venv/bin/python bench/routing.py [--requests N]

Drives the whole data-plane pipeline in-process (ASGI call, auth, validation, route plan,
strategy engine, settle, record) against an upstream that answers instantly without a
socket, so the numbers are Lockgate's own CPU time per request:
- plain: an alias with one target (the pass-through path);
- routed: an alias whose saved config is fallback over a weighted loadbalance, with
  retries, a request timeout and a circuit breaker (the engine's full walk);
- header: the same config sent inline in ``x-lockgate-config`` (memoised by value).
Pin it to one core (``taskset -c 0``) for stable numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import yaml

from lockgate.app import Lockgate
from lockgate.gateway.attempts import UpstreamResponse
from lockgate.gateway.strategies import Engine
from lockgate.settings import Settings

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
)
ROUTE = {
    "strategy": {"mode": "fallback", "on_status_codes": [429, 500, 502, 503, 504]},
    "retry": {"attempts": 2},
    "request_timeout": 30000,
    "circuit_breaker": {"failure_threshold": 5, "cooldown_ms": 10000},
    "targets": [
        {
            "strategy": {"mode": "loadbalance"},
            "targets": [
                {"provider": "@a", "override_params": {"model": "gpt-4o-mini"}, "weight": 0.7},
                {"provider": "@b", "override_params": {"model": "gpt-4o-mini"}, "weight": 0.3},
            ],
        },
        {"provider": "@c", "override_params": {"model": "gpt-4o-mini"}},
    ],
}


def config() -> dict[str, Any]:
    base = "http://upstream.invalid/v1"
    return {
        "integrations": [{"name": n, "provider": "openai", "base_url": base, "api_key": "x"} for n in "abc"],
        "configs": [{"id": "lb", "config": ROUTE}],
        "models": [{"alias": "plain", "targets": ["@a/gpt-4o-mini"]}, {"alias": "routed", "config": "lb"}],
    }


async def instant_upstream(client: Any, target: Any, request: Any, *, stream: bool, time_limit: float) -> Any:
    return UpstreamResponse(200, SimpleNamespace(headers={}), ANSWER)


def scope_for(model: str, header: str | None) -> tuple[dict[str, Any], bytes]:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if header is not None:
        headers.append((b"x-lockgate-config", header.encode()))
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}
    return scope, body


async def measure(app: Lockgate, model: str, header: str | None, requests: int) -> tuple[float, float]:
    scope, body = scope_for(model, header)
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(min(500, requests)):
        await app(scope, receive, send)
        await asyncio.sleep(0)
    samples = []
    for _ in range(requests):
        start = time.perf_counter_ns()
        await app(scope, receive, send)
        samples.append(time.perf_counter_ns() - start)
        # The instant upstream never suspends: let the record writer and the config poll run,
        # as real network waits would (untimed).
        await asyncio.sleep(0)
    assert set(statuses) == {200}, statuses
    samples.sort()
    return statistics.median(samples) / 1e3, samples[int(len(samples) * 0.99)] / 1e3


async def run(requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="lockgate-bench-") as tmp:
        path = Path(tmp) / "lockgate.yaml"
        path.write_text(yaml.safe_dump(config()))
        # Records queue during the runs and are written at shutdown: the writer's batches are
        # off the request path, and the same for every scenario.
        settings = Settings(
            config=str(path),
            database_url=f"sqlite:///{tmp}/bench.db",
            demo=True,
            log_batch_size=1_000_000,
            log_flush_interval=3600.0,
        )
        app = Lockgate(settings)
        await app.startup()
        app.pipeline.engine = Engine(app.client, send=instant_upstream)
        try:
            rows = [
                ("plain (alias, one target)", "plain", None),
                ("routed (saved fallback+loadbalance)", "routed", None),
                ("header (inline x-lockgate-config)", "gpt-4o-mini", json.dumps(ROUTE)),
            ]
            results = [(label, *await measure(app, model, header, requests)) for label, model, header in rows]
        finally:
            await app.shutdown()
    plain = results[0][1]
    print(f"{'scenario':40} {'p50 us':>8} {'p99 us':>8} {'vs plain':>9}")
    for label, p50, p99 in results:
        print(f"{label:40} {p50:8.1f} {p99:8.1f} {p50 - plain:+8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    asyncio.run(run(parser.parse_args().requests))


if __name__ == "__main__":
    main()
