"""The audit log: one row per admin change, hash-chained so tampering is detectable.

``hash = sha256(prev_hash + canonical JSON of the row's content)``, where the
content is every column except ``seq`` and the hashes themselves. The newest
hash is also kept in ``config_state.audit_head``, so cutting rows off the end
is detected too. Appends happen inside the change transaction that holds the
``config_state`` row, so the chain is linear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lockgate.store.tables import GENESIS_HASH, audit_log, config_state

_CONTENT = (
    "at",
    "config_version",
    "actor_id",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "workspace_id",
    "before",
    "after",
)


def _canonical(value: Any) -> Any:
    """JSON-roundtripped, so what is hashed is exactly what the database gives back."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def chain_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    payload = orjson.dumps({k: content[k] for k in _CONTENT}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


async def append(conn: AsyncConnection, *, prev_hash: str, **content: Any) -> dict[str, Any]:
    content["before"] = _canonical(content["before"])
    content["after"] = _canonical(content["after"])
    row = {**content, "prev_hash": prev_hash, "hash": chain_hash(prev_hash, content)}
    await conn.execute(insert(audit_log).values(**row))
    return row


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    checked: int
    head: str
    broken_at: int | None = None  # seq of the first row that does not verify
    reason: str | None = None


async def verify(engine: AsyncEngine) -> Verdict:
    expected_prev = GENESIS_HASH
    checked = 0
    async with engine.connect() as conn:
        head = (await conn.execute(select(config_state.c.audit_head))).scalar_one()
        result = await conn.stream(select(audit_log).order_by(audit_log.c.seq))
        async for record in result:
            row = record._mapping
            if row["prev_hash"] != expected_prev:
                return Verdict(False, checked, head, row["seq"], "prev_hash does not match the previous row")
            if chain_hash(row["prev_hash"], row) != row["hash"]:
                return Verdict(False, checked, head, row["seq"], "row content does not match its hash")
            expected_prev = row["hash"]
            checked += 1
    if expected_prev != head:
        return Verdict(False, checked, head, None, "the newest rows are missing (chain head mismatch)")
    return Verdict(True, checked, head)


async def entries(
    engine: AsyncEngine,
    *,
    equals: Mapping[str, Any],
    workspace_in: list[str] | None,
    since: float | None,
    until: float | None,
    after_seq: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the rows and the seq to pass as ``after_seq`` for the next page."""
    query = select(audit_log).order_by(audit_log.c.seq.desc())
    for column, value in equals.items():
        query = query.where(audit_log.c[column] == value)
    if workspace_in is not None:
        query = query.where(audit_log.c.workspace_id.in_(workspace_in))
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    if after_seq is not None:
        query = query.where(audit_log.c.seq < after_seq)
    async with engine.connect() as conn:
        rows = [
            {str(k): v for k, v in r._mapping.items()} for r in await conn.execute(query.limit(limit + 1))
        ]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["seq"] if more else None)
