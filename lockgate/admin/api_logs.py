"""/logs (search, one record, streamed export) and /analytics: read-only views of request records
and MCP tool-call records.

Any role may read; without an org role you see your workspaces' records only
(records that never reached a workspace, e.g. bad keys, are org-only).
Logs come newest first with the usual ``limit``/``cursor`` paging; ``kind``
picks request records (the default), tool calls, or both under one cursor.
``/mcp/tool-calls`` (admin/api_mcp.py) is the same search fixed to tool calls.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from lockgate.admin.app import Ctx, Cursor, Limit, Who
from lockgate.admin.rbac import Actor
from lockgate.errors import BadRequest, NotFound, PermissionDenied
from lockgate.store.logs import LogFilter
from lockgate.telemetry import analytics

router = APIRouter(tags=["logs"])

# Flat columns of a CSV export; the JSON ones (attempts, metadata, ...) are embedded as JSON text.
CSV_COLUMNS = (
    "id", "created_at", "endpoint", "workspace_id", "key_id", "requested_model", "provider", "model",
    "status", "stream", "cache_status", "prompt_tokens", "completion_tokens", "cached_tokens",
    "reasoning_tokens", "cost_usd", "usage_source", "latency_ms", "ttft_ms", "overhead_ms", "attempts",
    "route", "retries", "fallbacks", "stream_failover", "trace_id", "span_id", "limits", "error_type",
    "error_message", "metadata", "attempt_log", "guardrails",
)  # fmt: skip
# A tool call's columns (store/tables.py ``tool_calls``), and an export of both kinds: every column
# of either, with ``object`` first to say which kind a line is.
CALL_CSV_COLUMNS = (
    "id", "created_at", "method", "server", "server_version", "tool", "workspace_id", "key_id",
    "session", "status", "error_code", "error_message", "result_bytes", "latency_ms", "trace_id",
    "span_id", "arguments", "verdicts",
)  # fmt: skip
ALL_CSV_COLUMNS = ("object", *CSV_COLUMNS, *(c for c in CALL_CSV_COLUMNS if c not in CSV_COLUMNS))
_CSV = {"request": CSV_COLUMNS, "tool_call": CALL_CSV_COLUMNS, "all": ALL_CSV_COLUMNS}


def _stamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _tags(values: list[str] | None) -> dict[str, str]:
    tags = {}
    for item in values or ():
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise BadRequest(
                "metadata filters look like key:value, e.g. metadata=env:prod.", param="metadata"
            )
        tags[key] = value
    return tags


def _scope(actor: Actor, workspace_id: str | None) -> set[str] | None:
    if workspace_id is not None and not actor.can_see(workspace_id):
        raise PermissionDenied(f"You have no role in workspace {workspace_id!r}.")
    return actor.visible_workspaces()


def call_filter(
    actor: Who,
    since: Annotated[datetime | None, Query(description="ISO 8601 or Unix seconds.")] = None,
    until: datetime | None = None,
    workspace_id: str | None = None,
    key_id: str | None = None,
    status: Annotated[
        str | None,
        Query(
            description="Requests: 200, 4xx, 5xx. Tool calls: ok, tool_error, denied, timeout, killed. "
            "Both: error (any failure) or success."
        ),
    ] = None,
    min_latency_ms: Annotated[float | None, Query(ge=0)] = None,
    q: Annotated[str | None, Query(description="Text in the error type or message.", max_length=200)] = None,
    trace_id: str | None = None,
    server: Annotated[str | None, Query(description="Tool calls: the MCP server's name.")] = None,
    tool: Annotated[str | None, Query(description="Tool calls: the server's own tool name.")] = None,
) -> LogFilter:
    """The filters tool calls have (``/mcp/tool-calls``); ``log_filter`` adds the request-only ones."""
    return LogFilter(
        since=_stamp(since),
        until=_stamp(until),
        workspace_id=workspace_id,
        workspace_in=_scope(actor, workspace_id),
        key_id=key_id,
        status=status,
        min_latency_ms=min_latency_ms,
        text=q,
        trace_id=trace_id,
        server=server,
        tool=tool,
        kind="tool_call",
    )


def log_filter(
    f: Annotated[LogFilter, Depends(call_filter)],
    kind: Annotated[
        Literal["request", "tool_call", "all"], Query(description="Request records, MCP tool calls, or both.")
    ] = "request",
    model: Annotated[str | None, Query(description="Resolved or requested model.")] = None,
    provider: Annotated[str | None, Query(description="Integration name.")] = None,
    metadata: Annotated[list[str] | None, Query(description="key:value, repeatable.")] = None,
    min_cost: Annotated[float | None, Query(ge=0)] = None,
    cache_status: str | None = None,
    limits: Annotated[
        str | None, Query(description="How limits and budgets held: exact, approximate or local.")
    ] = None,
) -> LogFilter:
    f.kind = kind
    f.model, f.provider, f.tags, f.min_cost = model, provider, _tags(metadata), min_cost
    f.cache_status, f.limits = cache_status, limits
    return f


Filter = Annotated[LogFilter, Depends(log_filter)]
CallFilter = Annotated[LogFilter, Depends(call_filter)]


async def listing(ctx: Ctx, f: LogFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of records; each says what it is in ``object`` (request_log or tool_call)."""
    rows, next_cursor = await ctx.logs.page(f, limit=limit, cursor=cursor)
    return {"object": "list", "data": rows, "has_more": next_cursor is not None, "next_cursor": next_cursor}


@router.get("/logs")
async def list_logs(ctx: Ctx, f: Filter, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    return await listing(ctx, f, limit, cursor)


@router.get("/logs/export")
async def export_logs(ctx: Ctx, f: Filter, format: Literal["jsonl", "csv"] = "jsonl") -> StreamingResponse:
    """Every matching record, newest first, streamed page by page (memory stays flat)."""
    rows = ctx.logs.iterate(f)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if format == "csv":
        body, media = _csv(rows, _CSV[f.kind]), "text/csv"
    else:
        body, media = _jsonl(rows), "application/x-ndjson"
    headers = {"content-disposition": f'attachment; filename="lockgate-logs-{stamp}.{format}"'}
    return StreamingResponse(body, media_type=media, headers=headers)


async def _jsonl(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for row in rows:
        yield orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def csv_cell(value: Any) -> Any:
    """JSON columns (attempts, metadata, arguments ...) go into a CSV cell as JSON text."""
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else value


async def _csv(rows: AsyncIterator[dict[str, Any]], columns: tuple[str, ...]) -> AsyncIterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    count = 0
    async for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
        count += 1
        if count % 500 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


@router.get("/logs/{record_id}")
async def get_log(record_id: str, ctx: Ctx, actor: Who) -> dict[str, Any]:
    """A request record or a tool call, by id."""
    row = await ctx.logs.get(record_id)
    visible = actor.visible_workspaces()
    if row is None or (visible is not None and row["workspace_id"] not in visible):
        raise NotFound(f"No request record or tool call with id {record_id!r}.", param="record_id")
    return row


@router.get("/analytics", tags=["analytics"])
async def get_analytics(
    ctx: Ctx,
    actor: Who,
    since: Annotated[datetime | None, Query(description="Default: 24 hours before until.")] = None,
    until: Annotated[datetime | None, Query(description="Default: now.")] = None,
    bucket: Literal["minute", "hour", "day"] = "hour",
    group_by: Annotated[
        str,
        Query(
            description="llm: none, workspace, key, model, provider or tag:<metadata key>. "
            "mcp: none, workspace, server, tool or key."
        ),
    ] = "none",
    workspace_id: str | None = None,
    source: Annotated[
        Literal["llm", "mcp"], Query(description="llm: request records; mcp: MCP tool calls.")
    ] = "llm",
    server: Annotated[str | None, Query(description="mcp, group_by=tool: this server's tools.")] = None,
) -> dict[str, Any]:
    """Requests, errors, tokens, cost, latency and TTFT percentiles, cache hit rate per bucket and group;
    for ``source=mcp``: tool calls, errors, error rate and latency percentiles."""
    end = _stamp(until) or time.time()
    start = _stamp(since) or end - 86_400
    q = analytics.Query(
        since=start,
        until=end,
        bucket=bucket,
        group_by=group_by,
        workspace_id=workspace_id,
        workspace_in=_scope(actor, workspace_id),
        source=source,
        server=server,
    )
    return await analytics.query(ctx.logs.engine, q)
