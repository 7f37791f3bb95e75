"""Redis state through redis-py's asyncio client: one connection pool per worker.

Short socket timeouts: state is an optimisation on the request path, so a slow
or absent Redis must cost a request little; every Redis error surfaces as
``StateUnavailable`` and the caller carries on without it.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockgate.state.base import StateUnavailable

_PREFIX = "lockgate:"
_SOCKET_TIMEOUT = 0.5


class RedisStore:
    name = "redis"

    def __init__(self, url: str) -> None:
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=_SOCKET_TIMEOUT,
            health_check_interval=30,
        )

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"redis GET failed: {exc}") from exc
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        milliseconds = int(ttl * 1000)
        if milliseconds <= 0:
            return
        try:
            await self._client.set(_PREFIX + key, value, px=milliseconds)
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"redis SET failed: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"redis DEL failed: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()
