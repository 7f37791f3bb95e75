"""Pre-aggregated analytics: what a batch of records adds to the rollup rows.

The writer turns each batch into rollup deltas and the store adds them to
``request_rollups`` in the same transaction as the records (``+=`` upserts, so
concurrent workers never lose an update). Analytics then read a few thousand
rollup rows instead of scanning millions of records.

Rollups are *marginal*: a record adds to one row per dimension (its workspace
total, its key, its model, its provider, each metadata tag), not to one row per
combination of them, so the row count grows with the number of distinct
values, not their product. Minute rows carry only the low-cardinality
dimensions (workspace total, model, provider) and are kept for a short time;
hour rows carry every dimension (day buckets are summed from hours).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lockgate.telemetry.histogram import BUCKETS, bucket_of

MINUTE, HOUR = 60, 3600
# Dimensions a rollup row can be about; "all" is the workspace's total.
DIMENSIONS = ("all", "key", "model", "provider", "tag")
MINUTE_DIMENSIONS = ("all", "model", "provider")
MAX_TAGS_PER_RECORD = 16
VALUE_MAX = 200

LATENCY_COLUMNS = tuple(f"lat_{i:02d}" for i in range(BUCKETS))
TTFT_COLUMNS = tuple(f"ttft_{i:02d}" for i in range(BUCKETS))
SUM_COLUMNS = (
    "requests",
    "errors",
    "cache_lookups",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms_sum",
    "ttft_count",
    "ttft_ms_sum",
    *LATENCY_COLUMNS,
    *TTFT_COLUMNS,
)
KEY_COLUMNS = ("res", "dim", "bucket", "workspace_id", "value")
RollupKey = tuple[int, str, int, str, str]


def _values(row: Mapping[str, Any], dim: str) -> Iterable[str]:
    if dim == "all":
        return ("",)
    if dim == "key":
        return (row.get("key_id") or "",)
    if dim == "model":
        return ((row.get("model") or row.get("requested_model") or "")[:VALUE_MAX],)
    if dim == "provider":
        return (row.get("provider") or "",)
    metadata = row.get("metadata") or {}
    return [f"{k}={v}"[:VALUE_MAX] for k, v in list(metadata.items())[:MAX_TAGS_PER_RECORD]]


def _contribution(row: Mapping[str, Any]) -> dict[str, float]:
    status = row["status"]
    latency = row.get("latency_ms") or 0.0
    ttft = row.get("ttft_ms")
    cache = row.get("cache_status")
    out: dict[str, float] = {
        "requests": 1,
        "errors": 1 if status >= 400 or status == 0 else 0,
        "cache_lookups": 1 if cache is not None else 0,
        "cache_hits": 1 if cache == "hit" else 0,
        "prompt_tokens": row.get("prompt_tokens") or 0,
        "completion_tokens": row.get("completion_tokens") or 0,
        "cached_tokens": row.get("cached_tokens") or 0,
        "reasoning_tokens": row.get("reasoning_tokens") or 0,
        "cost_usd": row.get("cost_usd") or 0.0,
        "latency_ms_sum": latency,
        "ttft_count": 1 if ttft is not None else 0,
        "ttft_ms_sum": ttft or 0.0,
        LATENCY_COLUMNS[bucket_of(latency)]: 1,
    }
    if ttft is not None:
        out[TTFT_COLUMNS[bucket_of(ttft)]] = 1
    return out


def deltas(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rollup rows to add, one per key, sorted by key (a fixed lock order for the upserts)."""
    acc: dict[RollupKey, dict[str, float]] = {}
    for row in rows:
        contribution = _contribution(row)
        at = row["created_at"]
        workspace = row.get("workspace_id") or ""
        for res, dims in ((MINUTE, MINUTE_DIMENSIONS), (HOUR, DIMENSIONS)):
            bucket = int(at // res) * res
            for dim in dims:
                for value in _values(row, dim):
                    into = acc.setdefault((res, dim, bucket, workspace, value), {})
                    for name, amount in contribution.items():
                        into[name] = into.get(name, 0) + amount
    out = []
    for key in sorted(acc):
        sums = acc[key]
        out.append({**dict(zip(KEY_COLUMNS, key, strict=True)), **{c: sums.get(c, 0) for c in SUM_COLUMNS}})
    return out
