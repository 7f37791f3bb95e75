"""Shared state (DESIGN §4, §6); the only package that speaks Redis.

``counters*.py``: limits and budgets; ``notify.py``: config-change notices; this module:
the key-value store under the response cache. Its backends come from a small registry of
import strings, loaded lazily so the memory backend never imports redis:

- ``memory``: this process only; a size-bounded LRU with TTLs. The default.
- ``redis``: every replica shares it; chosen when ``LOCKGATE_REDIS_URL`` is set.
"""

from __future__ import annotations

import importlib

from lockgate.state.base import KeyValueStore, StateUnavailable

__all__ = ["BACKENDS", "KeyValueStore", "StateUnavailable", "open_store"]

BACKENDS = {
    "memory": "lockgate.state.memory:MemoryStore",
    "redis": "lockgate.state.redis:RedisStore",
}


def open_store(redis_url: str | None, *, max_bytes: int, max_entries: int) -> KeyValueStore:
    """The configured backend: Redis when a URL is given, else process memory."""
    name = "redis" if redis_url else "memory"
    module_name, _, class_name = BACKENDS[name].partition(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    if name == "redis":
        return backend(redis_url)  # type: ignore[no-any-return]
    return backend(max_bytes=max_bytes, max_entries=max_entries)  # type: ignore[no-any-return]
