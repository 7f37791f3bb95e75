"""Analytics reads: sums of rollup rows per time bucket and group (see telemetry/rollups.py).

One ``GROUP BY`` over the rollup table's primary-key range (resolution,
dimension, time), so the cost depends on the number of rollup rows in the
window, not on the number of requests.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, false, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.store.tables import request_rollups
from lockgate.telemetry.rollups import SUM_COLUMNS


async def rollup_sums(
    engine: AsyncEngine,
    *,
    res: int,
    dim: str,
    since: int,
    until: int,
    step: int,
    by_workspace: bool,
    value_prefix: str | None = None,
    workspace_id: str | None = None,
    workspace_in: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of (bucket, group, sums...) ordered by bucket then group.

    ``step`` is the reported bucket width: equal to ``res``, or a multiple of it
    (day buckets from hour rows). ``by_workspace`` groups by workspace instead of
    the dimension's value; ``value_prefix`` keeps one tag key's values.
    """
    r = request_rollups.c
    bucket = r.bucket if step == res else r.bucket - (r.bucket % step)
    group = r.workspace_id if by_workspace else r.value if dim != "all" else None
    where: list[ColumnElement[bool]] = [r.res == res, r.dim == dim, r.bucket >= since, r.bucket < until]
    if value_prefix is not None:
        escaped = value_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(r.value.like(escaped + "%", escape="\\"))
    if workspace_id is not None:
        where.append(r.workspace_id == workspace_id)
    if workspace_in is not None:
        where.append(r.workspace_id.in_(sorted(workspace_in)) if workspace_in else false())
    keys = [bucket] if group is None else [bucket, group]  # PostgreSQL refuses constants here
    query = (
        select(
            bucket.label("bucket"),
            (group if group is not None else literal_column("''")).label("group"),
            *(func.sum(r[name]).label(name) for name in SUM_COLUMNS),
        )
        .where(*where)
        .group_by(*keys)
        .order_by(*keys)
    )
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]
