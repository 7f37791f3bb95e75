"""Counters in this process: exact for one process, the semantics of the Redis scripts in Python.

Each call runs without awaiting, so on one event loop it is as atomic as a Lua script.
"""

from __future__ import annotations

import secrets

from lockgate.state.counters import (
    BUCKETS_PER_WINDOW,
    Admission,
    BudgetCheck,
    Charge,
    ConcurrencyCheck,
    Refusal,
    Settled,
    Ticket,
    TokenSettle,
    Unseeded,
    WindowCheck,
    window_bucket,
)

RESERVED = "r"


class MemoryCounters:
    name = "memory"
    shared = False

    def __init__(self) -> None:
        self._epoch: str | None = None
        self._claim: str | None = None
        self._seeded: dict[str, int] = {}
        self._spend: dict[str, dict[str, float]] = {}  # scope -> field -> USD (and "r")
        self._leases: dict[str, dict[str, tuple[float, float]]] = {}  # scope -> req -> (until, amount)
        self._windows: dict[str, dict[int, int]] = {}  # key -> bucket -> count
        self._slots: dict[str, dict[str, float]] = {}  # key -> req -> until

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
        if budgets and self._epoch is None:
            raise Unseeded("spend counters are not seeded")
        scopes: list[str] = []
        for check in budgets:
            if check.scope not in scopes:
                scopes.append(check.scope)
                self._expire_leases(check.scope, now)
            values = self._spend.get(check.scope, {})
            used = values.get(check.field, 0.0) + values.get(RESERVED, 0.0)
            if used + reserve > check.limit:
                return Admission(None, Refusal("budget", check.ident, check.limit, used))
        placed: list[tuple[WindowCheck, int, int]] = []
        for w in windows:
            total, bucket, retry = self._window(w.key, w.window, now, w.amount, w.limit)
            if retry is not None:
                return Admission(None, Refusal("window", w.ident, w.limit, total, retry))
            placed.append((w, bucket, total))
        for c in slots:
            held = self._slots.setdefault(c.key, {})
            for req in [r for r, until in held.items() if until <= now]:
                del held[req]
            if len(held) >= c.limit:
                return Admission(None, Refusal("concurrency", c.ident, c.limit, len(held), 1.0))
        # Every check passed: commit.
        if reserve > 0:
            for scope in scopes:
                values = self._spend.setdefault(scope, {})
                values[RESERVED] = values.get(RESERVED, 0.0) + reserve
                self._leases.setdefault(scope, {})[request_id] = (lease_until, reserve)
        remaining = []
        for w, bucket, total in placed:
            buckets = self._windows.setdefault(w.key, {})
            buckets[bucket] = buckets.get(bucket, 0) + w.amount
            remaining.append(w.limit - total - w.amount)
        for c in slots:
            self._slots[c.key][request_id] = lease_until
        ticket = Ticket(
            request_id,
            self._epoch,
            reserve if reserve > 0 else 0.0,
            tuple(scopes) if reserve > 0 else (),
            tuple((w.key, bucket, w.amount, w.window) for w, bucket, _ in placed if w.tokens),
            tuple(c.key for c in slots),
        )
        return Admission(ticket, None, tuple(remaining))

    def _window(
        self, key: str, window: float, now: float, amount: int, limit: int
    ) -> tuple[int, int, float | None]:
        """(count in window, current bucket, retry-after if amount does not fit)."""
        width, current = window_bucket(window, now)
        oldest = current - BUCKETS_PER_WINDOW  # one bucket more than the window: conservative
        buckets = self._windows.get(key, {})
        for index in [i for i in buckets if i < oldest]:
            del buckets[index]
        total = sum(buckets.values())
        if total + amount <= limit:
            return total, current, None
        need = total + amount - limit
        for index in sorted(buckets):
            need -= buckets[index]
            if need <= 0:
                return total, current, (index + BUCKETS_PER_WINDOW + 1) * width - now
        return total, current, window

    def _expire_leases(self, scope: str, now: float) -> None:
        leases = self._leases.get(scope)
        if not leases:
            return
        for req, (until, amount) in list(leases.items()):
            if until <= now:
                del leases[req]
                self._unreserve(scope, amount, leases)

    def _unreserve(self, scope: str, amount: float, leases: dict[str, tuple[float, float]]) -> None:
        values = self._spend.setdefault(scope, {})
        if leases:
            values[RESERVED] = values.get(RESERVED, 0.0) - amount
        else:  # no live reservation: exactly zero, whatever rounding accumulated
            values.pop(RESERVED, None)

    async def settle(
        self,
        ticket: Ticket | None,
        now: float,
        charges: tuple[Charge, ...],
        tokens: tuple[TokenSettle, ...] = (),
    ) -> Settled:
        if ticket is not None:
            self._free(ticket)
            for key, bucket, estimate, _window in ticket.token_buckets:
                buckets = self._windows.get(key)
                if buckets is not None and bucket in buckets:
                    buckets[bucket] -= estimate
        for t in tokens:
            _, current = window_bucket(t.window, now)
            buckets = self._windows.setdefault(t.key, {})
            buckets[current] = buckets.get(current, 0) + t.tokens
        if self._epoch is None:
            return Settled(None)
        return Settled(self._epoch, self._charge(charges))

    def _free(self, ticket: Ticket) -> None:
        if ticket.epoch == self._epoch:
            for scope in ticket.reserved_scopes:
                leases = self._leases.get(scope, {})
                if leases.pop(ticket.request_id, None) is not None:
                    self._unreserve(scope, ticket.reserve, leases)
        for key in ticket.slots:
            self._slots.get(key, {}).pop(ticket.request_id, None)

    def _charge(self, charges: tuple[Charge, ...]) -> dict[tuple[str, str], float]:
        values: dict[tuple[str, str], float] = {}
        for charge in charges:
            spend = self._spend.setdefault(charge.scope, {})
            for name in charge.fields:
                if name not in spend:
                    _prune(spend, name)
                spend[name] = spend.get(name, 0.0) + charge.amount
                values[(charge.scope, name)] = spend[name]
        return values

    async def release(self, ticket: Ticket) -> None:
        self._free(ticket)
        for key, bucket, estimate, _window in ticket.token_buckets:
            buckets = self._windows.get(key)
            if buckets is not None and bucket in buckets:
                buckets[bucket] -= estimate

    async def read(self, scopes: tuple[str, ...]) -> dict[str, dict[str, float]]:
        return {scope: dict(self._spend.get(scope, {})) for scope in scopes}

    async def window_count(self, key: str, window: float, now: float) -> int:
        _, current = window_bucket(window, now)
        oldest = current - BUCKETS_PER_WINDOW
        return sum(v for i, v in self._windows.get(key, {}).items() if i >= oldest)

    async def epoch(self, writer: str) -> tuple[str | None, int]:
        return self._epoch, self._seeded.get(writer, 0)

    async def begin_seed(self) -> str:
        self._claim = secrets.token_hex(8)
        return self._claim

    async def seed(
        self, token: str, epoch: str, values: dict[str, dict[str, float]], writers: dict[str, int]
    ) -> bool:
        if self._claim != token or self._epoch is not None:
            return False
        self._spend = {scope: dict(fields) for scope, fields in values.items()}
        self._leases = {}
        self._seeded = dict(writers)
        self._epoch, self._claim = epoch, None
        return True

    async def readd(self, epoch: str, charges: tuple[Charge, ...]) -> bool:
        if epoch != self._epoch:
            return False
        self._charge(charges)
        return True

    async def reset(self, epoch: str) -> None:
        if self._epoch == epoch:
            self._epoch, self._claim, self._seeded = None, None, {}

    async def close(self) -> None:
        self._windows.clear()
        self._slots.clear()


def _prune(spend: dict[str, float], name: str) -> None:
    """A new period field: drop older fields of the same kind (``d:`` before ``d:20250603``)."""
    if len(name) < 3:
        return
    prefix = name[:2]
    for old in [k for k in spend if k.startswith(prefix) and k < name]:
        del spend[old]
