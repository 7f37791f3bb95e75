"""Tool calls in the store, on SQLite and PostgreSQL: MCP analytics from rollups equal a direct
computation, one search (and cursor) over both record kinds, deduped replays, retention."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable

import pytest

from lockgate.store.db import Store
from lockgate.store.logs import LogFilter
from lockgate.telemetry import analytics
from lockgate.telemetry.records import TOOL_CALL_MARK, ToolCallRecord
from lockgate.telemetry.retention import Retention
from tests.store.test_analytics import NOW, RATIO, exact_quantile, synthetic

STATUSES = ["ok", "tool_error", "denied", "error", "timeout", "killed"]


def synthetic_calls(n: int, seed: int = 11) -> list[ToolCallRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        workspace = rng.choice(["ws_a", "ws_b"])
        server = rng.choice(["orders", "mail", None])  # None: the name reached no registered server
        out.append(
            ToolCallRecord(
                id=f"call_{i:06d}",
                created_at=NOW - rng.random() * 50 * 3600,
                method="tools/call",
                server=server,
                server_version="1.0.0" if server else None,
                tool=rng.choice(["lookup", "refund", "send"]),
                key_id=f"key_{workspace}_{rng.randrange(2)}",
                workspace_id=workspace,
                status=rng.choices(STATUSES, weights=[80, 5, 5, 4, 3, 3])[0],
                latency_ms=rng.lognormvariate(math.log(120), 1.0),
            )
        )
    return out


def rows(calls: list[ToolCallRecord]) -> list[dict]:
    return [{**c.to_row(), TOOL_CALL_MARK: True} for c in calls]


@pytest.fixture
async def loaded(store: Store) -> list[ToolCallRecord]:
    calls = synthetic_calls(1200)
    for i in range(0, len(calls), 200):
        await store.insert_request_records(rows(calls[i : i + 200]))
    return calls


def _tool(c: ToolCallRecord) -> str | None:
    return f"{c.server}__{c.tool}" if c.server else None


CASES: list[tuple[str, str, Callable[[ToolCallRecord], str | None]]] = [
    ("hour", "none", lambda c: None),
    ("day", "workspace", lambda c: c.workspace_id),
    ("hour", "server", lambda c: c.server),
    ("minute", "server", lambda c: c.server),
    ("day", "tool", _tool),
    ("hour", "key", lambda c: c.key_id),
]


async def test_mcp_analytics_match_a_direct_computation(store: Store, loaded: list[ToolCallRecord]) -> None:
    for bucket, group_by, key in CASES:
        since = NOW - (2 * 3600 if bucket == "minute" else 3 * 86400)
        q = analytics.Query(since=since, until=NOW + 1, bucket=bucket, group_by=group_by, source="mcp")
        result = await analytics.query(store.engine, q)
        step = analytics.BUCKETS[bucket]
        groups: dict[tuple[int, str | None], list[ToolCallRecord]] = defaultdict(list)
        for c in loaded:
            if c.created_at >= int(since // step) * step:
                groups[(int(c.created_at // step) * step, key(c))].append(c)
        assert {(p["bucket_start"], p["group"]) for p in result["data"]} == set(groups), (bucket, group_by)
        for point in result["data"]:
            calls = groups[(point["bucket_start"], point["group"])]
            errors = sum(1 for c in calls if c.status != "ok")
            assert (point["calls"], point["errors"]) == (len(calls), errors)
            assert point["error_rate"] == pytest.approx(errors / len(calls))
            latencies = [c.latency_ms or 0.0 for c in calls]
            assert point["latency_ms"]["avg"] == pytest.approx(sum(latencies) / len(calls))
            for q_ in (0.5, 0.95, 0.99):
                true = exact_quantile(latencies, q_)
                estimate = point["latency_ms"][f"p{round(q_ * 100)}"]
                assert true / RATIO <= estimate <= true * RATIO or abs(estimate - true) <= 1.0
    # One server's tools only; LLM analytics see none of it.
    q = analytics.Query(since=NOW - 86400, until=NOW, group_by="tool", source="mcp", server="mail")
    assert {t["group"] for t in (await analytics.query(store.engine, q))["totals"]} == {
        "mail__lookup",
        "mail__refund",
        "mail__send",
    }
    llm = await analytics.query(store.engine, analytics.Query(since=NOW - 3 * 86400, until=NOW + 1))
    assert llm["data"] == []


async def test_one_search_over_both_kinds(store: Store, loaded: list[ToolCallRecord]) -> None:
    requests = synthetic(300)
    await store.insert_request_records([r.to_row() for r in requests])
    everything, cursor = [], None
    while True:
        page, cursor = await store.logs.page(LogFilter(kind="all"), limit=97, cursor=cursor)
        everything += page
        if cursor is None:
            break
    assert len(everything) == len(loaded) + len(requests) == len({r["id"] for r in everything})
    assert [(r["created_at"], r["id"]) for r in everything] == sorted(
        ((r["created_at"], r["id"]) for r in everything), reverse=True
    )
    failed, _ = await store.logs.page(LogFilter(kind="all", status="error"), limit=5000)
    assert {r["id"] for r in failed if r["object"] == "tool_call"} == {
        c.id for c in loaded if c.status != "ok"
    }
    assert {r["id"] for r in failed if r["object"] == "request_log"} == {
        r.id for r in requests if r.status >= 400
    }
    f = LogFilter(kind="all", server="orders", tool="refund", workspace_in={"ws_a"}, status="timeout")
    found, _ = await store.logs.page(f, limit=5000)
    assert {r["id"] for r in found} == {
        c.id
        for c in loaded
        if (c.server, c.tool, c.workspace_id, c.status) == ("orders", "refund", "ws_a", "timeout")
    }
    assert (await store.logs.get(loaded[0].id))["object"] == "tool_call"
    assert (await store.logs.get(requests[0].id))["object"] == "request_log"


async def test_replayed_tool_calls_count_once_and_retention_deletes_them(store: Store) -> None:
    calls = synthetic_calls(150, seed=3)
    assert await store.insert_request_records(rows(calls[:100])) == 100
    assert await store.insert_request_records(rows(calls), dedupe=True) == 50  # a crash mid-replay
    q = analytics.Query(since=NOW - 3 * 86400, until=NOW + 1, bucket="day", source="mcp")
    assert sum(t["calls"] for t in (await analytics.query(store.engine, q))["totals"]) == 150
    retention = Retention(store.logs, days=1, rollup_days=30, minute_rollup_hours=1, batch=20, pause=0)
    deleted = await retention.run_once(now=NOW)
    assert deleted == sum(1 for c in calls if c.created_at < NOW - 86400) > 20
    left, _ = await store.logs.page(LogFilter(kind="tool_call"), limit=5000)
    assert len(left) == 150 - deleted and min(r["created_at"] for r in left) >= NOW - 86400
