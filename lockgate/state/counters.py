"""Counters for budgets and rate limits: the API both backends implement.

Two calls per request at most, each one atomic step (one Lua script on Redis):

- ``admit`` checks every limit that applies and, only if all pass, reserves the
  request's worst-case cost on its budgets, counts it in its windows and takes a
  concurrency slot (all or nothing). It returns a ``Ticket`` or the first refusal.
- ``settle`` replaces a ticket's reservation with the real cost, charges spend to
  scopes, swaps the token estimate for the real count and frees the slot.
  ``release`` is a settle that charges nothing.

Spend lives in one hash per scope (``key:…``, ``ws:…``, ``meta:user=alice``) with a
field per period (see ``governance/periods.py``) and ``r``, the sum of live
reservations. Each reservation and slot is a lease that expires, so a process
that dies mid-request cannot hold budget or concurrency forever.

Windows are sliding windows of 60 buckets (a minute in seconds, an hour in
minutes, a day in 24-minute buckets). A bucket counts until a whole window has
passed since its *end*, so no trailing window ever holds more than the limit; a
refused caller may wait up to one bucket longer than a perfect log would make it.

Spend counters belong to an *epoch*: the seed that filled them from the ledger.
A Redis restart loses the epoch; the next admission sees ``Unseeded`` and the
spend book (``governance/spend.py``) seeds a new one. See that module for how
spend settled around a restart is neither lost nor counted twice.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Literal, Protocol

BUCKETS_PER_WINDOW = 60

__all__ = [
    "BUCKETS_PER_WINDOW",
    "Admission",
    "BudgetCheck",
    "Charge",
    "ConcurrencyCheck",
    "Counters",
    "CountersUnavailable",
    "Refusal",
    "Settled",
    "Ticket",
    "TokenSettle",
    "Unseeded",
    "WindowCheck",
    "open_counters",
]


class CountersUnavailable(Exception):
    """The backend could not be reached in time or answered wrongly."""


class Unseeded(Exception):
    """Budgets were checked but the spend counters hold no epoch yet (first start, Redis restart)."""


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """Refuse unless spent(field) + reserved + this request's reservation <= limit."""

    scope: str
    field: str
    limit: float
    ident: str  # names the budget in a refusal


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """Refuse unless the window's count + amount <= limit; then add amount now."""

    key: str
    window: float  # seconds
    limit: int
    amount: int
    ident: str
    tokens: bool = False  # a token estimate, replaced by the real count at settle


@dataclass(frozen=True, slots=True)
class ConcurrencyCheck:
    key: str
    limit: int
    ident: str


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: Literal["budget", "window", "concurrency"]
    ident: str
    limit: float
    used: float  # spent + reserved, the window's count, or slots in use
    retry_after: float | None = None  # seconds; None for budgets (they do not come back by waiting)


@dataclass(frozen=True, slots=True)
class Ticket:
    """What an admission holds until settle or release."""

    request_id: str
    epoch: str | None
    reserve: float
    reserved_scopes: tuple[str, ...]
    # (key, bucket, estimate, window) of each token window the estimate went into.
    token_buckets: tuple[tuple[str, int, int, float], ...]
    slots: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Admission:
    ticket: Ticket | None
    refusal: Refusal | None = None
    # Per WindowCheck, what is left after this request (only when admitted).
    remaining: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Charge:
    """Add ``amount`` USD to every period field of ``scope``."""

    scope: str
    fields: tuple[str, ...]
    amount: float


@dataclass(frozen=True, slots=True)
class TokenSettle:
    """Real tokens of a request, counted now in this token window."""

    key: str
    window: float
    tokens: int


@dataclass(frozen=True, slots=True)
class Settled:
    epoch: str | None  # the epoch the charges went into; None: they did not (unseeded)
    # (scope, field) -> value after the charge, for alert thresholds.
    values: dict[tuple[str, str], float] = field(default_factory=dict)


class Counters(Protocol):
    name: str
    shared: bool  # every process sees the same counters

    async def admit(
        self,
        request_id: str,
        now: float,
        lease_until: float,
        reserve: float,
        budgets: tuple[BudgetCheck, ...],
        windows: tuple[WindowCheck, ...],
        slots: tuple[ConcurrencyCheck, ...],
    ) -> Admission:
        """Raises ``Unseeded`` when budgets are given and no epoch is seeded."""
        ...

    async def settle(
        self,
        ticket: Ticket | None,
        now: float,
        charges: tuple[Charge, ...],
        tokens: tuple[TokenSettle, ...] = (),
    ) -> Settled: ...

    async def release(self, ticket: Ticket) -> None: ...

    async def read(self, scopes: tuple[str, ...]) -> dict[str, dict[str, float]]:
        """Current spend fields and ``r`` (reserved) of each scope, in the current epoch."""
        ...

    async def window_count(self, key: str, window: float, now: float) -> int: ...

    # Seeding and reconciliation (used by governance/spend.py, off the request path).

    async def epoch(self, writer: str) -> tuple[str | None, int]:
        """The current epoch and the highest ledger flush of ``writer`` its seed included."""
        ...

    async def begin_seed(self) -> str:
        """Claim the next seed; a later claim (or a reset) makes this one's ``seed`` a no-op."""
        ...

    async def seed(
        self, token: str, epoch: str, values: dict[str, dict[str, float]], writers: dict[str, int]
    ) -> bool:
        """Install a new epoch if none exists and ``token`` still holds the claim."""
        ...

    async def readd(self, epoch: str, charges: tuple[Charge, ...]) -> bool:
        """Apply charges to ``epoch`` if it is still current (False: it is not)."""
        ...

    async def reset(self, epoch: str) -> None:
        """Drop ``epoch`` if current, forcing a reseed from the ledger."""
        ...

    async def close(self) -> None: ...


BACKENDS = {
    "memory": "lockgate.state.counters_memory:MemoryCounters",
    "redis": "lockgate.state.counters_redis:RedisCounters",
}


def open_counters(redis_url: str | None, *, timeout: float = 0.25) -> Counters:
    """Redis when a URL is given (every replica shares one set of counters), else this process."""
    name = "redis" if redis_url else "memory"
    module_name, _, class_name = BACKENDS[name].partition(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    if name == "redis":
        return backend(redis_url, timeout=timeout)  # type: ignore[no-any-return]
    return backend()  # type: ignore[no-any-return]


def window_bucket(window: float, now: float) -> tuple[float, int]:
    """(bucket width, index of the bucket holding ``now``)."""
    width = window / BUCKETS_PER_WINDOW
    return width, int(now // width)
