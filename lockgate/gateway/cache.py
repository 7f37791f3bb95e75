"""Exact-match response cache (DESIGN §2 step 6), on a ``state/`` backend (memory or Redis).

The key is a SHA-256 over: the endpoint; the plan's identity (alias, saved config,
or inline config hash: the resolved route); the caller's scope (key id, so one
tenant never reads another's answers); the answer's shape (JSON, SSE, SSE with a
usage chunk); when the plan routes conditionally, the metadata and path it routes
on; and the request body as canonical JSON (sorted keys, no whitespace) without
fields that do not change the answer: ``user``, ``metadata``, ``store``,
``stream``, ``stream_options`` (the shape already covers the last two).

Only complete 200 answers are stored: never an error, never a stream that broke
or was spliced from two targets. Streams are stored as the exact sequence of
body pieces sent to the client and replayed piece by piece as SSE. ``max_age``
comes from the ``cache`` policy of the target that answered (default 7 days).
``semantic`` mode is served by exact matching (an exact hit is a semantic hit too).

Request header ``x-lockgate-cache``: ``no-store`` (neither read nor write) or
``refresh`` (skip the read, store the fresh answer). Requests with output guardrails
bypass the cache: a stored answer replayed would not pass through them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.errors import BadRequest
from lockgate.gateway.exchange import Exchange
from lockgate.gateway.plan import Plan
from lockgate.gateway.route_config import CacheConfig
from lockgate.state import KeyValueStore, StateUnavailable

log = logging.getLogger("lockgate.cache")

DEFAULT_MAX_AGE = 7 * 24 * 3600
_NOISE = frozenset({"user", "metadata", "store", "stream", "stream_options"})
_DIRECTIVES = frozenset({"no-store", "refresh"})
_WARN_EVERY = 60.0
_FORMAT = 1


@dataclass(slots=True)
class CachedAnswer:
    kind: str  # "json" or "sse"
    provider: str
    model: str
    usage: dict[str, Any] | None
    pieces: list[bytes]  # json: the body; sse: every body piece as it was sent

    def encode(self) -> bytes:
        meta = orjson.dumps(
            {
                "v": _FORMAT,
                "kind": self.kind,
                "provider": self.provider,
                "model": self.model,
                "usage": self.usage,
                "sizes": [len(p) for p in self.pieces],
            }
        )
        return len(meta).to_bytes(4, "big") + meta + b"".join(self.pieces)

    @classmethod
    def decode(cls, raw: bytes) -> CachedAnswer | None:
        """None for anything that is not a well-formed entry of this format."""
        try:
            size = int.from_bytes(raw[:4], "big")
            meta = orjson.loads(raw[4 : 4 + size])
            pieces, offset = [], 4 + size
            for length in meta["sizes"]:
                pieces.append(raw[offset : offset + length])
                offset += length
            if meta["v"] != _FORMAT or offset != len(raw) or meta["kind"] not in ("json", "sse"):
                return None
            return cls(meta["kind"], meta["provider"], meta["model"], meta["usage"], pieces)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


@dataclass(slots=True)
class CacheLookup:
    """One request's cache decision."""

    key: str
    read: bool
    write: bool
    status: str  # recorded: miss, refresh, no-store, bypass (hit is set when the read succeeds)


class ResponseCache:
    def __init__(self, store: KeyValueStore) -> None:
        self.store = store
        self._warned_at = -_WARN_EVERY

    def lookup(
        self,
        plan: Plan,
        exchange: Exchange,
        *,
        scope: str,
        directive: str | None,
        metadata: Mapping[str, str] | None,
        path: str,
        bypass: bool = False,
    ) -> CacheLookup | None:
        """None when the route does not cache."""
        if not plan.caches:
            return None
        if bypass:
            return CacheLookup("", read=False, write=False, status="bypass")
        if directive is not None:
            directive = directive.strip().lower()
            if directive not in _DIRECTIVES:
                raise BadRequest(
                    "x-lockgate-cache must be 'no-store' or 'refresh'.", param="x-lockgate-cache"
                )
            if directive == "no-store":
                return CacheLookup("", read=False, write=False, status="no-store")
        key = cache_key(plan, exchange, scope, metadata, path)
        return CacheLookup(key, read=directive is None, write=True, status=directive or "miss")

    async def get(self, lookup: CacheLookup) -> CachedAnswer | None:
        if not lookup.read:
            return None
        try:
            raw = await self.store.get("cache:" + lookup.key)
        except StateUnavailable as exc:
            self._warn(exc)
            return None
        return CachedAnswer.decode(raw) if raw is not None else None

    async def put(self, lookup: CacheLookup, policy: CacheConfig | None, answer: CachedAnswer) -> None:
        """Store a complete 200 answer when the policy of the target that gave it caches."""
        if not lookup.write or policy is None:
            return
        ttl = policy.max_age if policy.max_age is not None else DEFAULT_MAX_AGE
        try:
            await self.store.set("cache:" + lookup.key, answer.encode(), ttl)
        except StateUnavailable as exc:
            self._warn(exc)

    async def close(self) -> None:
        await self.store.close()

    def _warn(self, exc: Exception) -> None:
        # The cache is an optimisation: a backend outage costs hits, never requests.
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("response cache unavailable (%s backend): %s", self.store.name, exc)


def cache_key(
    plan: Plan, exchange: Exchange, scope: str, metadata: Mapping[str, str] | None, path: str
) -> str:
    body = {k: v for k, v in exchange.body.data.items() if k not in _NOISE}
    shape = ("sse+usage" if exchange.wants_usage else "sse") if exchange.stream else "json"
    digest = hashlib.sha256()
    for part in (exchange.endpoint.name, plan.name, scope, shape):
        digest.update(part.encode())
        digest.update(b"\0")
    if plan.conditional:
        digest.update(orjson.dumps({"metadata": metadata or {}, "path": path}, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\0")
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()
