"""Request and tool-call records in the store: batched writes with their rollups, filtered reads,
retention.

Only the background writer, the admin API and the CLI come here; the request
path never does (it hands records to ``telemetry/writer.py``). One ``LogFilter``
reads both tables: its ``kind`` picks request records, MCP tool calls or both
(merged newest first under one cursor); a filter that only one kind has (model,
server ...) matches nothing of the other kind.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Table, and_, delete, false, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lockgate.errors import BadRequest
from lockgate.store.tables import request_logs, request_rollups, tool_calls
from lockgate.telemetry import rollups
from lockgate.telemetry.records import TOOL_CALL_MARK

Row = dict[str, Any]


@dataclass(slots=True)
class LogFilter:
    """What the logs API and ``lockgate logs`` can ask for; every field narrows."""

    since: float | None = None
    until: float | None = None
    workspace_id: str | None = None
    # RBAC: None sees every workspace; a set limits to those (rows without one are org-only).
    workspace_in: Collection[str] | None = None
    key_id: str | None = None
    model: str | None = None  # the resolved or the requested model
    provider: str | None = None
    status: str | None = None  # "200", "4xx", "5xx", "error", "success" or a tool-call status
    tags: dict[str, str] = field(default_factory=dict)
    min_cost: float | None = None
    min_latency_ms: float | None = None
    text: str | None = None  # case-insensitive substring of the error message or type
    trace_id: str | None = None
    cache_status: str | None = None
    limits: str | None = None  # how limits and budgets held: exact, approximate or local
    # MCP tool calls: the registered server's name and the server's own tool name.
    server: str | None = None
    tool: str | None = None
    kind: str = "request"  # request | tool_call | all

    def request_only(self) -> bool:
        """A filter only request records have: tool calls never match it."""
        return bool(
            self.model or self.provider or self.tags or self.min_cost is not None
            or self.cache_status or self.limits
        )  # fmt: skip


KINDS = ("request", "tool_call", "all")
# Tool-call statuses (telemetry/records.py ToolCallRecord); "error" as a filter means any failure.
CALL_STATUSES = ("ok", "tool_error", "denied", "timeout", "killed")


def _status_condition(status: str) -> ColumnElement[bool]:
    c = request_logs.c.status
    value = status.strip().lower()
    if value in CALL_STATUSES:
        return false()
    if value == "error":
        return or_(c >= 400, c == 0)
    if value == "success":
        return and_(c >= 200, c < 400)
    if len(value) == 3 and value[0] in "12345" and value[1:] == "xx":
        low = int(value[0]) * 100
        return and_(c >= low, c < low + 100)
    if value.isdigit():
        return c == int(value)
    raise BadRequest(
        "status must be a code (429), a class (4xx), 'error', 'success' or a tool-call status "
        f"({', '.join(CALL_STATUSES)}).",
        param="status",
    )


def _call_status_condition(status: str) -> ColumnElement[bool]:
    c = tool_calls.c.status
    value = status.strip().lower()
    if value == "error":
        return c != "ok"
    if value == "success":
        return c == "ok"
    if value in CALL_STATUSES:
        return c == value
    _status_condition(value)  # an HTTP status or class: valid, but no tool call has one
    return false()


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _shared(f: LogFilter, table: Table) -> list[ColumnElement[bool]]:
    """Conditions on the columns both record tables have."""
    c = table.c
    out: list[ColumnElement[bool]] = []
    if f.since is not None:
        out.append(c.created_at >= f.since)
    if f.until is not None:
        out.append(c.created_at < f.until)
    if f.workspace_id is not None:
        out.append(c.workspace_id == f.workspace_id)
    if f.workspace_in is not None:
        out.append(c.workspace_id.in_(sorted(f.workspace_in)) if f.workspace_in else false())
    if f.key_id is not None:
        out.append(c.key_id == f.key_id)
    if f.min_latency_ms is not None:
        out.append(c.latency_ms >= f.min_latency_ms)
    if f.text:
        pattern = _like(f.text)
        typed = c.error_type if table is request_logs else c.status
        out.append(or_(c.error_message.ilike(pattern, escape="\\"), typed.ilike(pattern, escape="\\")))
    if f.trace_id is not None:
        out.append(c.trace_id == f.trace_id)
    return out


def conditions(f: LogFilter) -> list[ColumnElement[bool]]:
    """``request_logs`` rows that match."""
    c = request_logs.c
    out = _shared(f, request_logs)
    if f.server is not None or f.tool is not None:
        out.append(false())
    if f.model is not None:
        out.append(or_(c.model == f.model, c.requested_model == f.model))
    if f.provider is not None:
        out.append(c.provider == f.provider)
    if f.status is not None:
        out.append(_status_condition(f.status))
    for key, value in f.tags.items():
        out.append(c.metadata[key].as_string() == value)
    if f.min_cost is not None:
        out.append(c.cost_usd >= f.min_cost)
    if f.cache_status is not None:
        out.append(c.cache_status == f.cache_status)
    if f.limits is not None:
        out.append(c.limits == f.limits)
    return out


def call_conditions(f: LogFilter) -> list[ColumnElement[bool]]:
    """``tool_calls`` rows that match."""
    c = tool_calls.c
    out = _shared(f, tool_calls)
    if f.request_only():
        out.append(false())
    if f.server is not None:
        out.append(c.server == f.server)
    if f.tool is not None:
        out.append(c.tool == f.tool)
    if f.status is not None:
        out.append(_call_status_condition(f.status))
    return out


def encode_cursor(row: Row) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([row["created_at"], row["id"]])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(created_at), str(row_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadRequest("The cursor is not one this API returned.", param="cursor") from exc


class LogStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def write(self, rows: Sequence[Row], *, dedupe: bool = False) -> int:
        """Insert records and add them to the rollups, in one transaction; returns rows written.

        Rows marked ``TOOL_CALL_MARK`` are MCP tool calls: they go to ``tool_calls`` (with
        rollups of their own dimensions), in the same transaction. ``dedupe`` (replaying a
        spill file, which may hold records a crash kept from being marked done) skips ids
        already stored, so nothing is counted twice.
        """
        if not rows:
            return 0
        requests, calls = list(rows), []
        if any(TOOL_CALL_MARK in r for r in requests):
            calls = [{k: v for k, v in r.items() if k != TOOL_CALL_MARK} for r in rows if TOOL_CALL_MARK in r]
            requests = [r for r in rows if TOOL_CALL_MARK not in r]
        async with self.engine.begin() as conn:
            if dedupe:
                requests = await _unstored(conn, request_logs, requests)
                calls = await _unstored(conn, tool_calls, calls)
            if requests:
                await conn.execute(insert(request_logs), requests)
            if calls:
                await conn.execute(insert(tool_calls), calls)
            # Request rows' keys, then tool calls' (other dimensions): one lock order for every writer.
            await add_rollups(conn, rollups.deltas(requests) + rollups.call_deltas(calls))
        return len(requests) + len(calls)

    async def page(
        self, f: LogFilter, *, limit: int, cursor: str | None = None
    ) -> tuple[list[Row], str | None]:
        """Newest first; the second value is the cursor of the next page (None at the end).

        Rows carry ``object``: ``request_log`` or ``tool_call``. With ``kind="all"`` each table
        gives its newest ``limit + 1`` after the cursor and the merge keeps the newest ``limit``,
        so one (created_at, id) cursor pages through both.
        """
        if f.kind not in KINDS:
            raise BadRequest("kind must be request, tool_call or all.", param="kind")
        after = decode_cursor(cursor) if cursor is not None else None
        sources = []
        if f.kind in ("request", "all"):
            sources.append((request_logs, conditions(f), "request_log"))
        if f.kind in ("tool_call", "all"):
            sources.append((tool_calls, call_conditions(f), "tool_call"))
        rows: list[Row] = []
        async with self.engine.connect() as conn:
            for table, where, name in sources:
                rows.extend(await _newest(conn, table, where, after, limit + 1, name))
        if len(sources) > 1:
            rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]) if more and rows else None

    async def iterate(self, f: LogFilter, *, page_size: int = 1000) -> AsyncIterator[Row]:
        """Every matching record, newest first, a page per short read (exports hold no transaction)."""
        cursor: str | None = None
        while True:
            rows, cursor = await self.page(f, limit=page_size, cursor=cursor)
            for row in rows:
                yield row
            if cursor is None:
                return

    async def get(self, record_id: str) -> Row | None:
        """A request record or a tool call (``object`` says which)."""
        async with self.engine.connect() as conn:
            for table, name in ((request_logs, "request_log"), (tool_calls, "tool_call")):
                found = (await conn.execute(select(table).where(table.c.id == record_id))).first()
                if found is not None:
                    return {"object": name, **_row(found)}
        return None

    async def delete_before(self, cutoff: float, *, batch: int) -> int:
        """Delete at most ``batch`` request records and ``batch`` tool calls older than ``cutoff``;
        short transactions, bounded locks. Fewer than ``batch`` deleted: none of either is left."""
        deleted = 0
        for table in (request_logs, tool_calls):
            oldest = select(table.c.id).where(table.c.created_at < cutoff).limit(batch)
            async with self.engine.begin() as conn:
                result = await conn.execute(delete(table).where(table.c.id.in_(oldest)))
            deleted += result.rowcount or 0
        return deleted

    async def prune_rollups(self, *, minute_before: float, hour_before: float) -> int:
        r = request_rollups.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(request_rollups).where(
                    or_(
                        and_(r.res == rollups.MINUTE, r.bucket < minute_before),
                        and_(r.res == rollups.HOUR, r.bucket < hour_before),
                    )
                )
            )
        return result.rowcount or 0


async def _unstored(conn: AsyncConnection, table: Any, rows: list[Row]) -> list[Row]:
    """The rows whose id is not in ``table`` yet."""
    if not rows:
        return rows
    found = await conn.execute(select(table.c.id).where(table.c.id.in_([r["id"] for r in rows])))
    present = set(found.scalars())
    return [r for r in rows if r["id"] not in present]


async def _newest(
    conn: AsyncConnection,
    table: Table,
    where: list[ColumnElement[bool]],
    after: tuple[float, str] | None,
    limit: int,
    name: str,
) -> list[Row]:
    c = table.c
    query = select(table).where(*where)
    if after is not None:
        at, row_id = after
        query = query.where(or_(c.created_at < at, and_(c.created_at == at, c.id < row_id)))
    query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
    return [{"object": name, **_row(r)} for r in await conn.execute(query)]


def _row(record: Any) -> Row:
    # Plain str keys: SQLAlchemy's are a str subclass that orjson will not take as keys.
    return {str(k): v for k, v in record._mapping.items()}


_ROLLUP_COLUMNS = (*rollups.KEY_COLUMNS, *rollups.SUM_COLUMNS)


@functools.cache
def _upsert_sql(dialect: str) -> str:
    """The rollup upsert as driver SQL, built once per dialect.

    Plain driver SQL with tuples: a batch adds to a few hundred 165-column rows, and
    SQLAlchemy's per-parameter processing cost 3-5x the database's own work on SQLite.
    The names are this module's constants, never input.
    """
    marks = ", ".join(f"${i + 1}" if dialect == "postgresql" else "?" for i in range(len(_ROLLUP_COLUMNS)))
    table = request_rollups.name
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in rollups.SUM_COLUMNS)
    return (
        f"INSERT INTO {table} ({', '.join(_ROLLUP_COLUMNS)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(rollups.KEY_COLUMNS)}) DO UPDATE SET {adds}"
    )


async def add_rollups(conn: AsyncConnection, deltas: list[Row]) -> None:
    """``+=`` each delta onto its rollup row (created at zero when absent)."""
    if deltas:
        values = [tuple(d[c] for c in _ROLLUP_COLUMNS) for d in deltas]
        await conn.exec_driver_sql(_upsert_sql(conn.dialect.name), values)
