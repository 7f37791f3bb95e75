"""The migration chain (SQLite and PostgreSQL): one head; a fresh database is exactly tables.py;
observability's revision upgrades a database at the revision before it, keeping its request
records (budgets' and routing's columns included), and downgrades back to it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select

from lockgate.store import migrate
from lockgate.store.db import Store
from lockgate.store.tables import metadata, request_rollups, workspaces
from lockgate.telemetry.records import RequestRecord
from tests.store.conftest import fresh_database_url

OBSERVABILITY = "0008_observability"
SCRIPTS = ScriptDirectory.from_config(migrate.alembic_config())
BEFORE = SCRIPTS.get_revision(OBSERVABILITY).down_revision
# request_logs as it is at BEFORE: routing's and budgets' columns, no overhead, trace or body yet.
logs_before = sa.table(
    "request_logs",
    *(sa.column(c) for c in ("id", "created_at", "endpoint", "workspace_id", "key_id", "status")),
    *(sa.column(c) for c in ("stream", "attempts", "cost_usd", "limits", "route", "retries", "cache_status")),
)


def test_one_head_and_observability_after_main() -> None:
    assert len(SCRIPTS.get_heads()) == 1
    chain = [s.revision for s in SCRIPTS.walk_revisions()]  # newest first
    assert chain.index(OBSERVABILITY) < chain.index("0007_mcp") < chain.index("0004_budgets")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_fresh_database_is_exactly_the_tables(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = Store(await fresh_database_url(kind, tmp_path, request))
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
        assert differences == []
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_upgrade_from_the_revision_before_keeps_records_and_downgrades(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = Store(await fresh_database_url(kind, tmp_path, request))
    try:
        await migrate.upgrade(store.engine, BEFORE)
        old = {"id": "req_old", "created_at": time.time() - 60, "endpoint": "chat",
               "workspace_id": "ws_default", "key_id": "k1", "status": 429, "stream": False,
               "attempts": 0, "cost_usd": None, "limits": "local", "route": "alias:fast",
               "retries": 1, "cache_status": "miss"}  # fmt: skip
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(logs_before), [old])

        await migrate.upgrade(store.engine, OBSERVABILITY)  # later migrations come after it
        assert await migrate.current_revision(store.engine) == OBSERVABILITY
        kept = await store.logs.get("req_old")
        assert kept is not None and (kept["status"], kept["limits"]) == (429, "local")
        assert (kept["route"], kept["retries"], kept["cache_status"]) == ("alias:fast", 1, "miss")
        assert kept["overhead_ms"] is None and kept["trace_id"] is None and kept["bodies"] is None
        async with store.engine.connect() as conn:
            assert set((await conn.execute(select(workspaces.c.log_bodies))).scalars()) == {False}
        # The writer's path works on the upgraded schema: a record and its rollups.
        new = RequestRecord(id="req_new", created_at=time.time(), endpoint="chat", workspace_id="ws_default")
        new.status, new.limits = 200, "exact"
        new.finish(12.5)
        assert await store.insert_request_records([new.to_row()]) == 1
        assert (await store.logs.get("req_new") or {})["limits"] == "exact"
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(sa.func.sum(request_rollups.c.requests)))).scalar() > 0

        await migrate.downgrade(store.engine, BEFORE)
        assert await migrate.current_revision(store.engine) == BEFORE
        async with store.engine.connect() as conn:
            rows = {r.id: r.limits for r in await conn.execute(select(logs_before))}
        assert rows == {"req_old": "local", "req_new": "exact"}
    finally:
        await store.close()
