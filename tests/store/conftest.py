"""Store tests run against both SQLite and a real PostgreSQL server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lockgate.store.control import ControlStore
from lockgate.store.db import Store, async_url

_databases = itertools.count()


async def fresh_database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server = request.getfixturevalue("postgres_url")
    name = f"store_{next(_databases)}"
    admin = create_async_engine(async_url(server), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    await admin.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = await fresh_database_url(request.param, tmp_path, request)
    db = Store(url)
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture
def control(store: Store) -> ControlStore:
    return ControlStore(store)
