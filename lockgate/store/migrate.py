"""Schema migrations (Alembic) and the lock that serialises start-up work across processes.

Every worker runs ``upgrade`` at start; ``lockgate serve`` and ``lockgate db upgrade``
run it first in the parent, so workers normally find the schema at head. The
start-up lock makes concurrent starts safe: a PostgreSQL advisory lock, or an
exclusive ``flock`` on a file beside the SQLite database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.governance.secrets import SecretBox

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_ID = 0x10C6A7E  # any constant shared by every Lockgate process


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def upgrade(engine: AsyncEngine, revision: str = "head", *, secrets: SecretBox | None = None) -> None:
    """``secrets``: the application's ``SecretBox``, for migrations that encrypt stored values
    (without it they load the key as the application would, and only if they need it)."""
    await _run(engine, command.upgrade, revision, secrets)


async def downgrade(engine: AsyncEngine, revision: str, *, secrets: SecretBox | None = None) -> None:
    await _run(engine, command.downgrade, revision, secrets)


async def _run(engine: AsyncEngine, step: Any, revision: str, secrets: SecretBox | None) -> None:
    def run(sync_connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = sync_connection
        config.attributes["secrets"] = secrets
        step(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


@contextlib.asynccontextmanager
async def startup_lock(engine: AsyncEngine, sqlite_path: str | None) -> AsyncIterator[None]:
    """Held while a process migrates and applies the declarative file."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
                await conn.commit()
        return
    if sqlite_path is None:  # in-memory: one process only
        yield
        return
    fd = os.open(f"{sqlite_path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
