"""Config-change notices over Redis pub/sub (``state/`` is the only package that speaks Redis).

A notice only says "the config version moved"; workers then read the version
from the store as they would on a poll. Losing a notice (Redis down, a
reconnect) costs at most one poll interval, so errors are logged, not raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis

log = logging.getLogger("lockgate.state")

CHANNEL = "lockgate:config-version"
_RECONNECT_DELAY = 1.0


class ConfigNotifier:
    def __init__(self, url: str) -> None:
        self._redis = Redis.from_url(url)
        self._callbacks: list[Callable[[int], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def subscribe(self, callback: Callable[[int], None]) -> None:
        self._callbacks.append(callback)
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="lockgate-config-notices")

    async def publish(self, version: int) -> None:
        try:
            await self._redis.publish(CHANNEL, str(version))
        except Exception as exc:  # the version poll still carries the change
            log.warning("publishing config version %s to Redis failed: %s", version, exc)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            version = int(message["data"])
                            for callback in self._callbacks:
                                callback(version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning("Redis config notices interrupted (%s); retrying", exc)
                await asyncio.sleep(_RECONNECT_DELAY)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()
