"""Analytics: which rollup rows answer a question, and the numbers made from their sums.

Minute buckets come from minute rollups (kept ``rollup_minute_hours``; only the
workspace total, model and provider dimensions), hour buckets from hour
rollups, day buckets (UTC) by summing hour rollups. Percentiles come from the
merged latency histograms (accuracy: see telemetry/histogram.py).

``source="mcp"`` asks the same of MCP tool calls (their own rollup dimensions):
calls, errors, error rate and latency per server, tool (``server__tool``),
workspace or key; minute buckets for the total and per server.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.errors import BadRequest
from lockgate.store.analytics import rollup_sums
from lockgate.telemetry.histogram import quantile
from lockgate.telemetry.rollups import (
    HOUR,
    LATENCY_COLUMNS,
    MCP_MINUTE_DIMENSIONS,
    MINUTE,
    MINUTE_DIMENSIONS,
    SUM_COLUMNS,
    TOOL_SEPARATOR,
    TTFT_COLUMNS,
)

BUCKETS = {"minute": MINUTE, "hour": HOUR, "day": 86_400}
GROUPS = ("none", "workspace", "key", "model", "provider", "tag:<key>")
# source=mcp: group_by -> rollup dimension (workspace: the total, grouped by its workspace column).
MCP_GROUPS = {"none": "mcp", "workspace": "mcp", "server": "mcp.srv", "tool": "mcp.tool", "key": "mcp.key"}
MAX_POINTS = 5000


@dataclass(slots=True)
class Query:
    since: float
    until: float
    bucket: str = "hour"
    group_by: str = "none"
    workspace_id: str | None = None
    workspace_in: Collection[str] | None = None
    source: str = "llm"  # llm: request records; mcp: tool calls
    server: str | None = None  # source=mcp, group_by=tool: only this server's tools


def _dimension(q: Query) -> tuple[str, str | None, tuple[str, ...]]:
    """The rollup dimension, a value prefix to keep (or None), and the dimensions minute rows have."""
    group = q.group_by
    if q.source == "mcp":
        if group not in MCP_GROUPS:
            groups = ", ".join(MCP_GROUPS)
            raise BadRequest(f"group_by for source=mcp must be one of {groups}.", param="group_by")
        if q.server is not None and group != "tool":
            raise BadRequest("server narrows group_by=tool only.", param="server")
        prefix = q.server + TOOL_SEPARATOR if q.server is not None else None
        return MCP_GROUPS[group], prefix, MCP_MINUTE_DIMENSIONS
    if q.source != "llm":
        raise BadRequest("source must be llm or mcp.", param="source")
    if q.server is not None:
        raise BadRequest("server goes with source=mcp.", param="server")
    if group in ("none", "workspace"):
        return "all", None, MINUTE_DIMENSIONS
    if group in ("key", "model", "provider"):
        return group, None, MINUTE_DIMENSIONS
    if group.startswith("tag:") and len(group) > 4:
        return "tag", group[4:] + "=", MINUTE_DIMENSIONS
    raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}.", param="group_by")


def _plan(q: Query) -> dict[str, Any]:
    if q.bucket not in BUCKETS:
        raise BadRequest("bucket must be minute, hour or day.", param="bucket")
    step = BUCKETS[q.bucket]
    res = MINUTE if q.bucket == "minute" else HOUR
    dim, prefix, minute_dims = _dimension(q)
    if res == MINUTE and dim not in minute_dims:
        groups = "none, workspace and server" if q.source == "mcp" else "none, workspace, model and provider"
        raise BadRequest(f"Minute buckets exist for group_by {groups}; use hour or day.", param="group_by")
    if q.until <= q.since:
        raise BadRequest("until must be after since.", param="until")
    since = int(q.since // step) * step
    if (q.until - since) / step > MAX_POINTS:
        raise BadRequest(f"At most {MAX_POINTS} buckets per query; widen the bucket.", param="bucket")
    return {"res": res, "dim": dim, "since": since, "until": q.until, "step": step, "prefix": prefix}


async def query(engine: AsyncEngine, q: Query) -> dict[str, Any]:
    plan = _plan(q)
    rows = await rollup_sums(
        engine,
        res=plan["res"],
        dim=plan["dim"],
        since=plan["since"],
        until=int(-(-q.until // 1)),
        step=plan["step"],
        by_workspace=q.group_by == "workspace",
        value_prefix=plan["prefix"],
        workspace_id=q.workspace_id,
        workspace_in=q.workspace_in,
    )
    # A tag's prefix (key=) goes; a server's stays, so a tool reads server__tool in every answer.
    strip = len(plan["prefix"]) if plan["prefix"] and q.source == "llm" else 0
    figures = numbers if q.source == "llm" else call_numbers
    data, totals = [], {}
    for row in rows:
        group = row["group"][strip:] if row["group"] else None
        data.append({"bucket_start": int(row["bucket"]), "group": group, **figures(row)})
        into = totals.setdefault(group, dict.fromkeys(SUM_COLUMNS, 0))
        for name in SUM_COLUMNS:
            into[name] += row[name] or 0
    return {
        "object": "analytics",
        "bucket": q.bucket,
        "bucket_seconds": plan["step"],
        "group_by": q.group_by,
        "source": q.source,
        "since": plan["since"],
        "until": q.until,
        "data": data,
        "totals": [{"group": g, **figures(sums)} for g, sums in totals.items()],
    }


def call_numbers(sums: Mapping[str, Any]) -> dict[str, Any]:
    """Tool calls' figures: a call has no tokens, cost, cache or time to first token."""
    calls = int(sums["requests"] or 0)
    errors = int(sums["errors"] or 0)
    latency = [int(sums[c] or 0) for c in LATENCY_COLUMNS]
    return {
        "calls": calls,
        "errors": errors,
        "error_rate": errors / calls if calls else None,
        "latency_ms": _distribution(float(sums["latency_ms_sum"] or 0.0), calls, latency),
    }


def numbers(sums: Mapping[str, Any]) -> dict[str, Any]:
    """The reported figures from one set of summed rollup columns."""
    requests = int(sums["requests"] or 0)
    errors = int(sums["errors"] or 0)
    lookups = int(sums["cache_lookups"] or 0)
    ttft_count = int(sums["ttft_count"] or 0)
    latency = [int(sums[c] or 0) for c in LATENCY_COLUMNS]
    ttft = [int(sums[c] or 0) for c in TTFT_COLUMNS]
    tokens = {k: int(sums[f"{k}_tokens"] or 0) for k in ("prompt", "completion", "cached", "reasoning")}
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "tokens": {**tokens, "total": tokens["prompt"] + tokens["completion"]},
        "cost_usd": float(sums["cost_usd"] or 0.0),
        "latency_ms": _distribution(float(sums["latency_ms_sum"] or 0.0), requests, latency),
        "ttft_ms": _distribution(float(sums["ttft_ms_sum"] or 0.0), ttft_count, ttft),
        "cache_hit_rate": int(sums["cache_hits"] or 0) / lookups if lookups else None,
        "cache_lookups": lookups,
    }


def _distribution(total: float, count: int, histogram: list[int]) -> dict[str, float | None]:
    if count == 0:
        return {"avg": None, "p50": None, "p95": None, "p99": None}
    return {
        "avg": total / count,
        "p50": quantile(histogram, 0.50),
        "p95": quantile(histogram, 0.95),
        "p99": quantile(histogram, 0.99),
    }
