"""Measure analytics and log queries on N synthetic request records (default 1,000,000).

Writes the records the way the gateway does (batches of 500 through
``Store.insert_request_records``: rows plus rollup upserts in one transaction),
then times the analytics questions and a few filtered log pages. A script, not
a test: the numbers depend on the machine.

    python scripts/bench_analytics.py                      # SQLite in a temp dir
    python scripts/bench_analytics.py --postgres           # a private PostgreSQL (tests/services.py)
    python scripts/bench_analytics.py --database-url URL   # any database
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from lockgate.store.db import Store
from lockgate.store.logs import LogFilter
from lockgate.store.tables import request_logs, request_rollups
from lockgate.telemetry import analytics

DAYS = 30
WORKSPACES = [f"ws_{i}" for i in range(10)]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "llama-3.3-70b", "o4-mini"]
PROVIDERS = ["openai-prod", "azure-eu", "anthropic-prod", "vertex", "groq"]


def records(n: int, end: float, seed: int = 1):
    """Time-ordered, as a gateway produces them; 10 workspaces x 10 keys, 6 models, tags."""
    rng = random.Random(seed)
    start = end - DAYS * 86400
    step = (end - start) / n
    for i in range(n):
        ws = rng.choice(WORKSPACES)
        status = rng.choices([200, 400, 429, 502], weights=[90, 3, 4, 3])[0]
        stream = rng.random() < 0.4
        ok = status == 200
        yield {
            "id": f"req_{i:010d}",
            "created_at": start + i * step,
            "endpoint": "chat",
            "stream": stream,
            "key_id": f"key_{ws}_{rng.randrange(10)}",
            "workspace_id": ws,
            "requested_model": "alias",
            "provider": rng.choice(PROVIDERS),
            "model": rng.choice(MODELS),
            "status": status,
            "prompt_tokens": rng.randrange(10, 4000),
            "completion_tokens": rng.randrange(1, 1000) if ok else None,
            "cached_tokens": rng.choice([None, 0, 1024]),
            "reasoning_tokens": None,
            "cost_usd": rng.random() / 50 if ok else None,
            "usage_source": "reported" if ok else None,
            "latency_ms": rng.lognormvariate(math.log(600), 1.0),
            "ttft_ms": rng.lognormvariate(math.log(200), 0.7) if stream and ok else None,
            "overhead_ms": rng.random(),
            "attempts": 1,
            "attempt_log": [{"target": "@openai-prod/gpt-4o-mini", "status": status, "latency_ms": 500.0}],
            "cache_status": rng.choice([None, "miss", "hit"]),
            "trace_id": None,
            "span_id": None,
            "verdicts": None,
            "bodies": None,
            "error_type": None if ok else "upstream_error",
            "error_message": None if ok else f"upstream said {status}",
            "metadata": {"env": rng.choice(["prod", "dev"]), "feature": f"f{rng.randrange(20)}"},
        }


async def timed(label: str, coro, repeat: int = 3) -> object:
    best, result = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        result = await coro()
        best = min(best, time.perf_counter() - t)
    print(f"  {label:<58} {best * 1000:8.1f} ms")
    return result


async def main(url: str, n: int) -> None:
    store = Store(url)
    await store.migrate()
    end = time.time() // 3600 * 3600
    t = time.perf_counter()
    batch: list[dict] = []
    for row in records(n, end):
        batch.append(row)
        if len(batch) == 500:
            await store.insert_request_records(batch)
            batch = []
    if batch:
        await store.insert_request_records(batch)
    took = time.perf_counter() - t
    # Steady state: retention keeps minute rollups for 48 hours (records are all kept here).
    await store.logs.prune_rollups(minute_before=end - 48 * 3600, hour_before=0)
    async with store.engine.connect() as conn:
        logs = (await conn.execute(select(func.count()).select_from(request_logs))).scalar_one()
        rollups = (await conn.execute(select(func.count()).select_from(request_rollups))).scalar_one()
    print(
        f"{store.engine.dialect.name}: wrote {logs:,} records in {took:.1f} s ({logs / took:,.0f}/s), "
        f"{rollups:,} rollup rows"
    )

    def ask(**kw):
        return lambda: analytics.query(store.engine, analytics.Query(until=end, **kw))

    print("analytics:")
    await timed("30 days by day, totals", ask(since=end - 30 * 86400, bucket="day"))
    await timed("30 days by day, per model", ask(since=end - 30 * 86400, bucket="day", group_by="model"))
    await timed(
        "30 days by day, per key (100 keys)", ask(since=end - 30 * 86400, bucket="day", group_by="key")
    )
    await timed("7 days by hour, per workspace", ask(since=end - 7 * 86400, group_by="workspace"))
    await timed("7 days by hour, per tag feature", ask(since=end - 7 * 86400, group_by="tag:feature"))
    await timed(
        "24 hours by hour, per provider, one workspace",
        ask(since=end - 86400, group_by="provider", workspace_id="ws_3"),
    )
    await timed("24 hours by minute, totals", ask(since=end - 86400, bucket="minute"))
    await timed("6 hours by minute, per model", ask(since=end - 6 * 3600, bucket="minute", group_by="model"))
    print("logs (first page of 50, newest first):")
    for label, f in (
        ("no filter", LogFilter()),
        ("workspace", LogFilter(workspace_id="ws_3")),
        ("key", LogFilter(key_id="key_ws_3_4")),
        ("workspace + status 5xx + model", LogFilter(workspace_id="ws_3", status="5xx", model="gpt-4o")),
        ("metadata tag feature=f7, last 24 h", LogFilter(since=end - 86400, tags={"feature": "f7"})),
        ("error text, last 24 h", LogFilter(since=end - 86400, text="said 429")),
        ("min cost 0.0199 (rare), whole table", LogFilter(min_cost=0.0199)),
    ):
        await timed(label, lambda f=f: store.logs.page(f, limit=50))
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    parser.add_argument("--postgres", action="store_true", help="start a private PostgreSQL for the run")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = args.database_url
        if args.postgres:
            from tests.services import postgres_server

            url = stack.enter_context(postgres_server())
        if url is None:
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/bench.db"
        asyncio.run(main(url, args.records))
