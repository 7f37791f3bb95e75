"""Analytics from rollups equal a direct computation over the same records, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from lockgate.errors import BadRequest
from lockgate.store.db import Store
from lockgate.store.logs import LogFilter
from lockgate.telemetry import analytics
from lockgate.telemetry.histogram import STEPS_PER_DOUBLING
from lockgate.telemetry.records import AttemptRecord, RequestRecord
from lockgate.telemetry.retention import Retention

NOW = 1_900_000_000.0 - 1_900_000_000.0 % 86_400 + 20 * 3600  # 20:00 UTC on some day
RATIO = 2 ** (1 / STEPS_PER_DOUBLING)  # the histogram's bucket ratio: the percentile error bound


def synthetic(n: int, seed: int = 7) -> list[RequestRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        workspace = rng.choice(["ws_a", "ws_b", "ws_c"])
        status = rng.choices([200, 400, 429, 502], weights=[85, 5, 5, 5])[0]
        stream = rng.random() < 0.3
        r = RequestRecord(
            id=f"req_{i:06d}",
            created_at=NOW - rng.random() * 50 * 3600,  # the last ~2 days, across a UTC midnight
            endpoint="chat",
            stream=stream,
            key_id=f"key_{workspace}_{rng.randrange(3)}",
            workspace_id=workspace,
            requested_model="alias",
            provider=rng.choice(["openai-prod", "anthropic-prod"]),
            model=rng.choice(["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"]),
            status=status,
            prompt_tokens=rng.randrange(10, 2000),
            completion_tokens=rng.randrange(0, 800) if status == 200 else None,
            cached_tokens=rng.choice([None, 0, 128]),
            reasoning_tokens=rng.choice([None, 64]),
            cost_usd=rng.random() / 100 if status == 200 else None,
            latency_ms=rng.lognormvariate(math.log(400), 1.2),
            ttft_ms=rng.lognormvariate(math.log(150), 0.8) if stream else None,
            cache_status=rng.choice([None, "hit", "miss", "refresh", "no-store", "bypass"]),
            metadata=rng.choice([None, {"env": "prod"}, {"env": "dev", "team": "x"}]),
        )
        r.attempt_log.append(AttemptRecord("@openai-prod/gpt-4o-mini", status, 1.0))
        out.append(r)
    return out


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def expected(records: list[RequestRecord], step: int, key: Callable[[RequestRecord], list[str | None]]):
    groups: dict[tuple[int, str | None], list[RequestRecord]] = defaultdict(list)
    for r in records:
        for g in key(r):
            groups[(int(r.created_at // step) * step, g)].append(r)
    return groups


def check_point(point: dict[str, Any], rs: list[RequestRecord]) -> None:
    assert point["requests"] == len(rs)
    errors = sum(1 for r in rs if r.status >= 400)
    assert point["errors"] == errors and point["error_rate"] == pytest.approx(errors / len(rs))
    tokens = point["tokens"]
    assert tokens["prompt"] == sum(r.prompt_tokens or 0 for r in rs)
    assert tokens["completion"] == sum(r.completion_tokens or 0 for r in rs)
    assert tokens["cached"] == sum(r.cached_tokens or 0 for r in rs)
    assert tokens["reasoning"] == sum(r.reasoning_tokens or 0 for r in rs)
    assert point["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in rs))
    lookups = [r for r in rs if r.cache_status in ("hit", "miss")]  # the others never read the cache
    hits = sum(1 for r in lookups if r.cache_status == "hit")
    assert point["cache_hit_rate"] == (pytest.approx(hits / len(lookups)) if lookups else None)
    latencies = [r.latency_ms for r in rs]
    assert point["latency_ms"]["avg"] == pytest.approx(sum(latencies) / len(rs))
    ttfts = [r.ttft_ms for r in rs if r.ttft_ms is not None]
    for name, values in (("latency_ms", latencies), ("ttft_ms", ttfts)):
        for q in (0.5, 0.95, 0.99):
            estimate = point[name][f"p{round(q * 100)}"]
            if not values:
                assert estimate is None
                continue
            true = exact_quantile(values, q)
            # Same bucket as the true value: within one bucket ratio (or 1 ms below 1 ms).
            assert true / RATIO <= estimate <= true * RATIO or abs(estimate - true) <= 1.0, (name, q)


@pytest.fixture
async def loaded(store: Store) -> list[RequestRecord]:
    records = synthetic(3000)
    for i in range(0, len(records), 250):  # many batches: rollups accumulate with upserts
        await store.insert_request_records([r.to_row() for r in records[i : i + 250]])
    return records


CASES: list[tuple[str, str, Callable[[RequestRecord], list[str | None]]]] = [
    ("hour", "none", lambda r: [None]),
    ("day", "workspace", lambda r: [r.workspace_id]),
    ("hour", "key", lambda r: [r.key_id]),
    ("day", "model", lambda r: [r.model]),
    ("hour", "provider", lambda r: [r.provider]),
    ("day", "tag:env", lambda r: [r.metadata["env"]] if r.metadata else []),
    ("minute", "model", lambda r: [r.model]),
    ("minute", "none", lambda r: [None]),
]


async def test_analytics_match_a_direct_computation(store: Store, loaded: list[RequestRecord]) -> None:
    for bucket, group_by, key in CASES:  # one load per database, every kind of question
        since = NOW - (2 * 3600 if bucket == "minute" else 3 * 86400)
        result = await analytics.query(
            store.engine, analytics.Query(since=since, until=NOW + 1, bucket=bucket, group_by=group_by)
        )
        step = analytics.BUCKETS[bucket]
        window = [r for r in loaded if r.created_at >= int(since // step) * step]
        groups = expected(window, step, key)
        assert {(p["bucket_start"], p["group"]) for p in result["data"]} == set(groups), (bucket, group_by)
        for point in result["data"]:
            check_point(point, groups[(point["bucket_start"], point["group"])])
        by_group: dict[str | None, list[RequestRecord]] = defaultdict(list)
        for (_, g), rs in groups.items():
            by_group[g] += rs
        assert {t["group"] for t in result["totals"]} == set(by_group)
        for total in result["totals"]:
            check_point(total, by_group[total["group"]])


async def test_workspace_scope_and_bad_questions(store: Store, loaded: list[RequestRecord]) -> None:
    q = analytics.Query(since=NOW - 86400, until=NOW, group_by="workspace", workspace_in={"ws_a", "ws_b"})
    result = await analytics.query(store.engine, q)
    assert {t["group"] for t in result["totals"]} == {"ws_a", "ws_b"}
    only = analytics.Query(since=NOW - 86400, until=NOW, workspace_id="ws_c")
    totals = (await analytics.query(store.engine, only))["totals"]
    assert totals[0]["requests"] == sum(
        1 for r in loaded if r.workspace_id == "ws_c" and NOW - 86400 <= r.created_at < NOW
    )
    none = analytics.Query(since=NOW - 86400, until=NOW, workspace_in=set())
    assert (await analytics.query(store.engine, none))["data"] == []
    for bad in (
        analytics.Query(since=NOW - 3600, until=NOW, bucket="minute", group_by="key"),
        analytics.Query(since=NOW - 3600, until=NOW, group_by="colour"),
        analytics.Query(since=NOW, until=NOW - 1),
        analytics.Query(since=NOW - 30 * 86400, until=NOW, bucket="minute"),
    ):
        with pytest.raises(BadRequest):
            await analytics.query(store.engine, bad)


async def test_retention_deletes_in_batches_and_prunes_rollups(
    store: Store, loaded: list[RequestRecord]
) -> None:
    retention = Retention(store.logs, days=1, rollup_days=1, minute_rollup_hours=1, batch=100, pause=0)
    deleted = await retention.run_once(now=NOW)
    assert deleted == sum(1 for r in loaded if r.created_at < NOW - 86400) > 100
    rows, _ = await store.logs.page(LogFilter(), limit=5000)
    assert len(rows) == len(loaded) - deleted and min(r["created_at"] for r in rows) >= NOW - 86400
    minute = await analytics.query(
        store.engine, analytics.Query(since=NOW - 2 * 3600, until=NOW + 1, bucket="minute")
    )
    assert minute["data"] and min(p["bucket_start"] for p in minute["data"]) >= NOW - 3600
