"""The real test servers come up and answer (they back the PostgreSQL and Redis suites)."""

import asyncio

import redis.asyncio as redis
from sqlalchemy import text

from lockgate.store.db import Store


def test_redis_answers(redis_url: str) -> None:
    async def main() -> None:
        client = redis.from_url(redis_url)
        assert await client.ping()
        await client.aclose()

    asyncio.run(main())


def test_postgres_answers(postgres_url: str) -> None:
    async def main() -> None:
        store = Store(postgres_url)
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        await store.close()

    asyncio.run(main())
