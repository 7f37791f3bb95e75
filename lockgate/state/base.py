"""The interface every state backend implements."""

from __future__ import annotations

from typing import Protocol


class StateUnavailable(Exception):
    """The backend could not be reached or answered wrongly; callers degrade, never fail a request."""


class KeyValueStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None:
        """The live value under ``key``, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (a backend may evict it sooner to stay in bounds)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...
