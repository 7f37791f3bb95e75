"""The store: one async engine, its tables, and the few queries the rest of Lockgate needs.

SQLite by default (WAL, so the batched writer never blocks readers), PostgreSQL
when ``LOCKGATE_DATABASE_URL`` is a ``postgresql://`` URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lockgate.governance.secrets import SecretBox
from lockgate.store import migrate
from lockgate.store.logs import LogFilter, LogStore
from lockgate.store.tables import request_logs, tool_calls


def async_url(url: str) -> str:
    """Map a plain database URL onto the async driver Lockgate uses for it."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Store:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.sqlite_path: str | None = None
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.sqlite_path = parsed.database
        # orjson for JSON columns: request records carry four, and the stdlib encoder was a
        # fifth of the writer's time.
        self.engine: AsyncEngine = create_async_engine(
            self.url, json_serializer=_json_dumps, json_deserializer=orjson.loads
        )
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.logs = LogStore(self.engine)

    @property
    def data_dir(self) -> Path | None:
        """Where a SQLite database lives; local files that belong with it go there too."""
        return Path(self.sqlite_path).parent if self.sqlite_path else None

    async def migrate(self, *, lock: bool = True, secrets: SecretBox | None = None) -> None:
        """Bring the schema to the newest migration (a no-op when it is there).

        ``lock=False`` when the caller already holds ``startup_lock`` (it is not re-entrant).
        ``secrets`` is the ``SecretBox`` for migrations that encrypt stored values.
        """
        if not lock:
            await migrate.upgrade(self.engine, secrets=secrets)
            return
        async with self.startup_lock():
            await migrate.upgrade(self.engine, secrets=secrets)

    def startup_lock(self) -> Any:
        return migrate.startup_lock(self.engine, self.sqlite_path)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def insert_request_records(self, rows: Sequence[dict[str, Any]], *, dedupe: bool = False) -> int:
        """Records and their rollups in one transaction (see ``store/logs.py``)."""
        return await self.logs.write(rows, dedupe=dedupe)

    async def insert_tool_call_records(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            async with self.engine.begin() as conn:
                await conn.execute(insert(tool_calls), list(rows))

    async def tool_call_records(
        self, *, limit: int = 100, server: str | None = None, tool: str | None = None
    ) -> list[dict[str, Any]]:
        """Most recent first (the logs API's reader, ``kind="tool_call"``)."""
        f = LogFilter(kind="tool_call", server=server, tool=tool)
        rows, _ = await self.logs.page(f, limit=limit)
        return [{k: v for k, v in r.items() if k != "object"} for r in rows]

    async def recent_request_records(
        self, limit: int = 20, after: float | None = None
    ) -> list[dict[str, Any]]:
        query = select(request_logs).order_by(request_logs.c.created_at.desc()).limit(limit)
        if after is not None:
            query = query.where(request_logs.c.created_at > after)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            rows = [dict(row._mapping) for row in result]
        rows.reverse()
        return rows

    async def close(self) -> None:
        await self.engine.dispose()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Several worker processes may flush at once: wait rather than fail.
    cursor.execute("PRAGMA busy_timeout=5000")
    # Freed space is zeroed, so a replaced value (a secret sealed by a migration) leaves no copy.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
