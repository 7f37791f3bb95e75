"""The spend ledger: settled spend per scope and UTC day, written in batches, read to seed counters.

Each process appends one batch per flush (``writer``, ``flush`` numbered from 1) and
records that flush in ``ledger_writers`` in the same transaction, so a seed knows
exactly which flushes of which process it includes (``governance/spend.py`` relies
on it). Compaction keeps the table bounded: rows older than an hour fold into one
row per (scope, day), and days past the retention fold into one lifetime row per
scope (day 0), so lifetime budgets keep their history.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    String,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.store.tables import budget_alerts, ledger_writers, spend_ledger

_COMPACT_LOCK_ID = 0x10C6A7F
FOLD_AFTER_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class LedgerRow:
    scope: str
    day: int
    cost_usd: float
    tokens: int
    requests: int


@dataclass(frozen=True, slots=True)
class PeriodDays:
    """First ledger day of each period field to seed, e.g. {"d:20250603": 20242, "a": None}."""

    fields: dict[str, int | None]


async def append(
    engine: AsyncEngine, rows: Iterable[LedgerRow], *, writer: str, flush: int, at: float
) -> None:
    values = [
        {
            "scope": r.scope,
            "day": r.day,
            "cost_usd": r.cost_usd,
            "tokens": r.tokens,
            "requests": r.requests,
            "writer": writer,
            "flush": flush,
            "at": at,
        }
        for r in rows
    ]
    async with engine.begin() as conn:
        if values:
            await conn.execute(insert(spend_ledger), values)
        moved = await conn.execute(
            update(ledger_writers).where(ledger_writers.c.writer == writer).values(flush=flush, at=at)
        )
        if moved.rowcount == 0:
            await conn.execute(insert(ledger_writers).values(writer=writer, flush=flush, at=at))


async def totals(
    engine: AsyncEngine, periods: PeriodDays
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Spend per scope for each period field, and each writer's last flush.

    One statement (a UNION), so both come from one snapshot on SQLite and PostgreSQL alike:
    a flush is either in the sums and in its writer's count, or in neither.
    """
    c = spend_ledger.c
    names = list(periods.fields)
    sums = [
        (func.sum(c.cost_usd) if first is None else func.sum(case((c.day >= first, c.cost_usd), else_=0.0)))
        for first in periods.fields.values()
    ]
    spend = select(literal("s").label("kind"), c.scope.label("name"), *sums).group_by(c.scope)
    pad = [literal(0.0) for _ in names[1:]]
    flushes = select(literal("w"), ledger_writers.c.writer, ledger_writers.c.flush * 1.0, *pad)
    async with engine.connect() as conn:
        rows = (await conn.execute(union_all(spend, flushes))).all()
    values: dict[str, dict[str, float]] = {}
    writers: dict[str, int] = {}
    for kind, name, *numbers in rows:
        if kind == "w":
            writers[name] = int(numbers[0])
        else:
            values[name] = {field: float(v) for field, v in zip(names, numbers, strict=True) if v}
    return values, writers


async def daily(engine: AsyncEngine, scope: str, first_day: int) -> list[dict[str, float]]:
    """Spend, tokens and requests per day for one scope since ``first_day``."""
    c = spend_ledger.c
    query = (
        select(c.day, func.sum(c.cost_usd), func.sum(c.tokens), func.sum(c.requests))
        .where(c.scope == scope, c.day >= first_day)
        .group_by(c.day)
        .order_by(c.day)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        {"day": int(d), "cost_usd": float(cost), "tokens": int(tokens), "requests": int(requests)}
        for d, cost, tokens, requests in rows
    ]


async def compact(engine: AsyncEngine, *, now: float, keep_days: int) -> int:
    """Fold old rows; returns how many rows went. Safe to run from several processes at once."""
    c = spend_ledger.c
    cutoff_day = int(now // 86400) - keep_days
    marker = f"~compact-{secrets.token_hex(4)}"
    removed = 0
    async with engine.begin() as conn:
        # Serialise compactors: an advisory lock on PostgreSQL; on SQLite the first write takes the
        # database's write lock, so everything below reads a state no other writer changes.
        if engine.dialect.name == "postgresql":
            got = await conn.execute(text(f"SELECT pg_try_advisory_xact_lock({_COMPACT_LOCK_ID})"))
            if not got.scalar():
                return 0
        await conn.execute(insert(ledger_writers).values(writer=marker, flush=0, at=now))
        last = (await conn.execute(select(func.max(c.seq)))).scalar() or 0
        folded_at = now - FOLD_AFTER_SECONDS
        folds = (
            # Past the retention: one lifetime row per scope (day 0).
            (and_(c.seq <= last, c.day < cutoff_day), [c.scope], literal(0)),
            # Older than an hour: one row per (scope, day).
            (
                and_(c.seq <= last, c.day >= cutoff_day, c.at < now - FOLD_AFTER_SECONDS),
                [c.scope, c.day],
                c.day,
            ),
        )
        for where, keys, day in folds:
            crowded = select(*keys).where(where).group_by(*keys).having(func.count() > 1)
            chosen = and_(where, (tuple_(*keys) if len(keys) > 1 else keys[0]).in_(crowded))
            sums = (
                select(
                    c.scope,
                    day,
                    func.sum(c.cost_usd),
                    func.sum(c.tokens),
                    func.sum(c.requests),
                    literal(None, String),
                    literal(0),
                    literal(folded_at),
                )
                .where(chosen)
                .group_by(*keys)
            )
            columns = ["scope", "day", "cost_usd", "tokens", "requests", "writer", "flush", "at"]
            await conn.execute(insert(spend_ledger).from_select(columns, sums))
            removed += (await conn.execute(delete(spend_ledger).where(chosen))).rowcount
        await conn.execute(delete(ledger_writers).where(ledger_writers.c.writer == marker))
    return removed


async def claim_alert(
    engine: AsyncEngine, *, budget_id: str, scope: str, period: str, threshold: int, spent: float, at: float
) -> bool:
    """True for the one process that records this alert first (the primary key decides)."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(budget_alerts).values(
                    budget_id=budget_id,
                    scope=scope,
                    period=period,
                    threshold=threshold,
                    spent_usd=spent,
                    fired_at=at,
                )
            )
    except IntegrityError:
        return False
    return True
