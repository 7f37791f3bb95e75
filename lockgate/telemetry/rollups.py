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

MCP tool calls share the table under dimensions of their own (``MCP_DIMENSIONS``:
the workspace's total, per server, per tool as ``server__tool``, per key), with
the same counts and latency histogram and no tokens, cost, cache or TTFT. A call
is an error unless its status is ``ok`` (tool errors, refusals, timeouts, kills).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lockgate.telemetry.histogram import BUCKETS, bucket_of

MINUTE, HOUR = 60, 3600
# Dimensions a rollup row can be about; "all" is the workspace's total.
DIMENSIONS = ("all", "key", "model", "provider", "tag")
MINUTE_DIMENSIONS = ("all", "model", "provider")
MCP_DIMENSIONS = ("mcp", "mcp.srv", "mcp.tool", "mcp.key")
MCP_MINUTE_DIMENSIONS = ("mcp", "mcp.srv")
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
TOOL_SEPARATOR = "__"  # a tool's rollup value: server__tool, as the aggregate /mcp names it


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


def _call_values(row: Mapping[str, Any], dim: str) -> Iterable[str]:
    if dim == "mcp":
        return ("",)
    if dim == "mcp.key":
        return (row.get("key_id") or "",)
    server = row.get("server") or ""
    if dim == "mcp.srv":
        return (server,)
    # A name that reached no registered server is the client's, whatever it is: not kept.
    return (f"{server}{TOOL_SEPARATOR}{row.get('tool') or ''}"[:VALUE_MAX] if server else "",)


_NUMBERS = SUM_COLUMNS[:12]  # requests .. ttft_ms_sum, in the order of _contribution's tuple
# Cache verdicts that read the cache (the hit rate's denominator); refresh, no-store and
# bypass never look (gateway/cache.py).
_CACHE_READS = frozenset({"hit", "miss"})


def _contribution(row: Mapping[str, Any]) -> tuple[float, ...]:
    """The record's addends in _NUMBERS order, then its latency and TTFT bucket (-1: no TTFT)."""
    status = row["status"]
    latency = row.get("latency_ms") or 0.0
    ttft = row.get("ttft_ms")
    cache = row.get("cache_status")
    return (
        1,
        1 if status >= 400 or status == 0 else 0,
        1 if cache in _CACHE_READS else 0,
        1 if cache == "hit" else 0,
        row.get("prompt_tokens") or 0,
        row.get("completion_tokens") or 0,
        row.get("cached_tokens") or 0,
        row.get("reasoning_tokens") or 0,
        row.get("cost_usd") or 0.0,
        latency,
        1 if ttft is not None else 0,
        ttft or 0.0,
        bucket_of(latency),
        bucket_of(ttft) if ttft is not None else -1,
    )


def _call_contribution(row: Mapping[str, Any]) -> tuple[float, ...]:
    latency = row.get("latency_ms") or 0.0
    error = 0 if row["status"] == "ok" else 1
    return (1, error, 0, 0, 0, 0, 0, 0, 0.0, latency, 0, 0.0, bucket_of(latency), -1)


def deltas(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Request records' rollup rows to add (see ``_deltas``)."""
    plan = ((MINUTE, MINUTE_DIMENSIONS), (HOUR, DIMENSIONS))
    return _deltas(rows, _contribution, _values, plan)


def call_deltas(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls' rollup rows to add (their own dimensions, so never a key of ``deltas``)."""
    plan = ((MINUTE, MCP_MINUTE_DIMENSIONS), (HOUR, MCP_DIMENSIONS))
    return _deltas(rows, _call_contribution, _call_values, plan)


def _deltas(
    rows: Iterable[Mapping[str, Any]],
    contribute: Callable[[Mapping[str, Any]], tuple[float, ...]],
    values: Callable[[Mapping[str, Any], str], Iterable[str]],
    plan: tuple[tuple[int, tuple[str, ...]], ...],
) -> list[dict[str, Any]]:
    """Rollup rows to add, one per key, sorted by key (a fixed lock order for the upserts).

    Each record's addends are computed once and appended to the list of every key it
    counts for; the sums are then taken column by column with C-speed builtins.
    """
    groups: dict[RollupKey, list[tuple[float, ...]]] = {}
    for row in rows:
        contribution = contribute(row)
        at = row["created_at"]
        workspace = row.get("workspace_id") or ""
        for res, dims in plan:
            bucket = int(at // res) * res
            for dim in dims:
                for value in values(row, dim):
                    groups.setdefault((res, dim, bucket, workspace, value), []).append(contribution)
    out = []
    for key in sorted(groups):
        columns = list(zip(*groups[key], strict=True))
        delta: dict[str, Any] = dict(zip(KEY_COLUMNS, key, strict=True))
        delta.update(zip(_NUMBERS, map(sum, columns[:12]), strict=True))
        delta.update(dict.fromkeys(LATENCY_COLUMNS, 0))
        delta.update(dict.fromkeys(TTFT_COLUMNS, 0))
        for index, count in Counter(columns[12]).items():
            delta[LATENCY_COLUMNS[index]] = count
        for index, count in Counter(columns[13]).items():
            if index >= 0:
                delta[TTFT_COLUMNS[index]] = count
        out.append(delta)
    return out
